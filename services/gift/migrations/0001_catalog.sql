-- The gift catalog. Rooms point at a group (Room's gift_group_id; 0 = the default group).
CREATE TABLE gifts (
  gift_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  name VARCHAR(32) NOT NULL,
  -- Unit price in COIN minor units.
  price_minor BIGINT UNSIGNED NOT NULL,
  icon_key VARCHAR(200) NOT NULL DEFAULT '',
  effect_key VARCHAR(64) NOT NULL DEFAULT '',
  -- 1 = active, 2 = disabled (GiftStatus numbering).
  status TINYINT UNSIGNED NOT NULL DEFAULT 1,
  version BIGINT UNSIGNED NOT NULL DEFAULT 1,
  updated_at DATETIME(3) NOT NULL,
  PRIMARY KEY (gift_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE gift_groups (
  gift_group_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  name VARCHAR(64) NOT NULL,
  -- Gift ids in display order, as a JSON array of decimal strings.
  gift_ids JSON NOT NULL,
  -- At most one group is the default; the column is 1 for it and NULL otherwise, so a unique key holds.
  is_default TINYINT UNSIGNED NULL,
  version BIGINT UNSIGNED NOT NULL DEFAULT 1,
  updated_at DATETIME(3) NOT NULL,
  PRIMARY KEY (gift_group_id),
  UNIQUE KEY uk_gift_groups_default (is_default)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
