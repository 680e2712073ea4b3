-- Group commit of SendGift: orders are created many to one multi-row statement and paid many to
-- one transaction (services/gift/store/mysql-orders.ts).

-- The token of the batch whose statement inserted the row: a batch tells the orders it created
-- from those a retry (or a concurrent send with the same key) found already there.
ALTER TABLE orders ADD COLUMN create_token BIGINT UNSIGNED NOT NULL DEFAULT 0;

-- The order whose send opened the combo: a batch opening several combos at once finds their ids
-- by it. NULL for combos opened before this migration.
ALTER TABLE combos ADD COLUMN opened_by_order_id BIGINT UNSIGNED NULL, ADD UNIQUE KEY uk_combos_opened_by (opened_by_order_id);
