-- SendGift orders: the saga's state, one row per send.
CREATE TABLE orders (
  order_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  sender_id BIGINT UNSIGNED NOT NULL,
  idempotency_key VARCHAR(64) NOT NULL,
  -- Hash of the request fields, to tell a retry from a reused key.
  request_hash CHAR(64) NOT NULL,
  sender_name VARCHAR(32) NOT NULL DEFAULT '',
  room_id BIGINT UNSIGNED NOT NULL,
  streamer_id BIGINT UNSIGNED NOT NULL,
  gift_id BIGINT UNSIGNED NOT NULL,
  count INT UNSIGNED NOT NULL,
  unit_price_minor BIGINT UNSIGNED NOT NULL,
  amount_minor BIGINT UNSIGNED NOT NULL,
  income_minor BIGINT UNSIGNED NOT NULL,
  exp_minor BIGINT UNSIGNED NOT NULL,
  -- 1 CREATED, 2 PAID, 3 DONE, 4 FAILED (OrderState numbering).
  state TINYINT UNSIGNED NOT NULL,
  -- GiftErrorReason number when FAILED.
  failure_reason SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  combo_id BIGINT UNSIGNED NOT NULL DEFAULT 0,
  combo_count BIGINT UNSIGNED NOT NULL DEFAULT 0,
  -- The sender's COIN balance right after the debit, when the Ledger reported it.
  sender_balance_after BIGINT NULL,
  live_started_at DATETIME(3) NULL,
  created_at DATETIME(3) NOT NULL,
  paid_at DATETIME(3) NULL,
  ended_at DATETIME(3) NULL,
  PRIMARY KEY (order_id),
  UNIQUE KEY uk_orders_sender_key (sender_id, idempotency_key),
  KEY idx_orders_state_created (state, created_at),
  KEY idx_orders_room_paid (room_id, paid_at),
  KEY idx_orders_streamer_paid (streamer_id, paid_at),
  KEY idx_orders_sender_created (sender_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Each paid order's effects; the order is DONE when every required effect is.
CREATE TABLE order_effects (
  order_id BIGINT UNSIGNED NOT NULL,
  -- OrderEffect numbering: 1 EXP, 2 BARRAGE, 3 RANKING, 4 COMBO.
  effect TINYINT UNSIGNED NOT NULL,
  done_at DATETIME(3) NULL,
  attempts INT UNSIGNED NOT NULL DEFAULT 0,
  last_error VARCHAR(300) NOT NULL DEFAULT '',
  PRIMARY KEY (order_id, effect)
) ENGINE=InnoDB;

-- Events waiting for the relay; a row is deleted once JetStream has acknowledged it.
CREATE TABLE outbox (
  outbox_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  order_id BIGINT UNSIGNED NOT NULL,
  subject_room_id BIGINT UNSIGNED NOT NULL,
  msg_id VARCHAR(64) NOT NULL,
  payload VARBINARY(1024) NOT NULL,
  created_at DATETIME(3) NOT NULL,
  PRIMARY KEY (outbox_id)
) ENGINE=InnoDB;

-- Consumption records: one per combo (same sender, room and gift within 3 minutes of the last send).
CREATE TABLE combos (
  combo_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  sender_id BIGINT UNSIGNED NOT NULL,
  sender_name VARCHAR(32) NOT NULL DEFAULT '',
  streamer_id BIGINT UNSIGNED NOT NULL,
  room_id BIGINT UNSIGNED NOT NULL,
  gift_id BIGINT UNSIGNED NOT NULL,
  combo_count BIGINT UNSIGNED NOT NULL,
  send_count BIGINT UNSIGNED NOT NULL,
  amount_minor BIGINT UNSIGNED NOT NULL,
  first_send_at DATETIME(3) NOT NULL,
  last_send_at DATETIME(3) NOT NULL,
  PRIMARY KEY (combo_id),
  KEY idx_combos_sender (sender_id, last_send_at),
  KEY idx_combos_streamer (streamer_id, last_send_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The current combo of each (sender, room, gift): its row lock serializes one viewer's concurrent
-- sends of one gift, so no increment is lost and two sends never open two combos.
CREATE TABLE combo_heads (
  sender_id BIGINT UNSIGNED NOT NULL,
  room_id BIGINT UNSIGNED NOT NULL,
  gift_id BIGINT UNSIGNED NOT NULL,
  combo_id BIGINT UNSIGNED NOT NULL,
  last_send_at DATETIME(3) NOT NULL,
  PRIMARY KEY (sender_id, room_id, gift_id)
) ENGINE=InnoDB;
