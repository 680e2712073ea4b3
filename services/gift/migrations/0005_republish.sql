-- When the recovery worker last put a paid order's event back in the outbox because its effects
-- were still missing (see Recovery: a JetStream that lost an acknowledged event). NULL: never.
ALTER TABLE orders ADD COLUMN republished_at DATETIME(3) NULL;
