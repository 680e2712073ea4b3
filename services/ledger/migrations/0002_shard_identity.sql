-- Which ledger, and which of its shards, this database is: one row, written once at the first
-- start (store/identity.ts) and recorded in the shard map beside the shard. A replica whose
-- configured servers hold other identities than the map records refuses to start, so a replica
-- pointed at the wrong server can never serve an empty copy of a shard (and, say, mint a top-up a
-- second time). database_uid is random per database, so two empty databases given the same ledger
-- and shard number still differ; a restored backup keeps it, and is the same shard.
CREATE TABLE shard_identity (
  singleton TINYINT UNSIGNED NOT NULL DEFAULT 1,
  ledger_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  shard_id SMALLINT UNSIGNED NOT NULL,
  database_uid CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at DATETIME(3) NOT NULL,
  PRIMARY KEY (singleton),
  CONSTRAINT shard_identity_one_row CHECK (singleton = 1)
) ENGINE=InnoDB;
