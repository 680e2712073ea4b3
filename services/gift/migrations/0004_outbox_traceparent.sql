-- The trace context of the request that paid the order (W3C traceparent), stored with its outbox
-- event so the relay publishes the event inside that trace and the effect consumers continue it.
-- NULL when the request was not traced.
ALTER TABLE outbox ADD COLUMN traceparent VARCHAR(128) NULL;
