-- Rooms: the source of truth. Viewers never read this table; Redis holds every room in full.
CREATE TABLE rooms (
  room_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  streamer_id BIGINT UNSIGNED NOT NULL,
  title VARCHAR(100) NOT NULL,
  category VARCHAR(32) NOT NULL DEFAULT '',
  cover_key VARCHAR(200) NOT NULL DEFAULT '',
  notice VARCHAR(200) NOT NULL DEFAULT '',
  -- 1 = offline, 2 = live (RoomStatus numbering).
  status TINYINT UNSIGNED NOT NULL DEFAULT 1,
  gift_group_id BIGINT UNSIGNED NOT NULL DEFAULT 0,
  -- Bumped by every write; caches and regions keep the highest version they have seen.
  version BIGINT UNSIGNED NOT NULL DEFAULT 1,
  -- CreateRoom idempotency: the client's key and a hash of the fields it was first used with.
  request_id VARCHAR(64) NOT NULL,
  request_hash CHAR(64) NOT NULL,
  created_at DATETIME(3) NOT NULL,
  updated_at DATETIME(3) NOT NULL,
  live_started_at DATETIME(3) NULL,
  PRIMARY KEY (room_id),
  UNIQUE KEY uk_rooms_streamer_request (streamer_id, request_id),
  KEY idx_rooms_streamer (streamer_id, room_id),
  KEY idx_rooms_live (status, live_started_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
