-- One Ledger shard. Every shard database has the same tables; which rows a shard serves is
-- decided per virtual bucket (bucket = hash(owner) mod 256) by bucket_state below. Every row of
-- bucket-scoped data leads its primary key with the bucket, so a bucket is one contiguous range
-- that a migration can copy, replay and delete without touching other buckets.

-- Who serves each bucket on this shard: the authority for writes. Writers take a shared lock on
-- the rows of the buckets they touch for the length of their transaction; a migration takes an
-- exclusive lock to change a state, which waits for in-flight writers and holds back new ones.
-- 1 = owned, 2 = migrating (owned, and changes are logged to bucket_changes),
-- 3 = fenced (writers wait), 4 = not owned (routed elsewhere).
CREATE TABLE bucket_state (
  bucket SMALLINT UNSIGNED NOT NULL,
  state TINYINT UNSIGNED NOT NULL,
  migration_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  updated_at DATETIME(3) NOT NULL,
  PRIMARY KEY (bucket)
) ENGINE=InnoDB;

-- One row per (owner, asset) that has ever been written. The issuer (owner 0) has no row.
-- The CHECKs are the last line of defence behind the conditional UPDATE: a user balance can
-- never go negative, and no balance passes 10^18 minor units.
CREATE TABLE accounts (
  bucket SMALLINT UNSIGNED NOT NULL,
  owner_id BIGINT UNSIGNED NOT NULL,
  asset TINYINT UNSIGNED NOT NULL,
  balance BIGINT NOT NULL DEFAULT 0,
  allow_negative TINYINT(1) NOT NULL DEFAULT 0,
  created_at DATETIME(3) NOT NULL,
  updated_at DATETIME(3) NOT NULL,
  PRIMARY KEY (bucket, owner_id, asset),
  CONSTRAINT ck_accounts_not_negative CHECK (balance >= 0 OR allow_negative = 1),
  CONSTRAINT ck_accounts_max CHECK (balance <= 1000000000000000000)
) ENGINE=InnoDB;

-- Transfers, on the shard of their home owner (the payer, or the payee of a mint). Written once,
-- never updated: a user-to-user transfer is pending while its outbox row exists and settled once
-- the applier has deleted it (its credit entry, on the payee's shard, records when and the
-- balance after). Mints and burns are settled when written and record settled_at and
-- credit_balance_after here. voided = 1 marks a tombstone written by VoidTransfer.
CREATE TABLE transfers (
  bucket SMALLINT UNSIGNED NOT NULL,
  home_owner_id BIGINT UNSIGNED NOT NULL,
  transfer_id VARCHAR(80) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  voided TINYINT(1) NOT NULL DEFAULT 0,
  kind TINYINT UNSIGNED NOT NULL,
  payer_owner_id BIGINT UNSIGNED NOT NULL,
  payer_asset TINYINT UNSIGNED NOT NULL,
  payer_bucket SMALLINT UNSIGNED NOT NULL,
  payee_owner_id BIGINT UNSIGNED NOT NULL,
  payee_asset TINYINT UNSIGNED NOT NULL,
  payee_bucket SMALLINT UNSIGNED NOT NULL,
  amount BIGINT NOT NULL,
  debit_balance_after BIGINT NOT NULL DEFAULT 0,
  credit_balance_after BIGINT NOT NULL DEFAULT 0,
  reference VARCHAR(128) NOT NULL DEFAULT '',
  request_hash BINARY(16) NOT NULL,
  created_by BIGINT UNSIGNED NOT NULL,
  created_at DATETIME(3) NOT NULL,
  settled_at DATETIME(3) NULL,
  day DATE NOT NULL,
  PRIMARY KEY (bucket, home_owner_id, transfer_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per applied side of a transfer, on the shard of the account it changed, keyed so that
-- an account's history is one primary-key range in time order and a credit can be applied only
-- once (the key is the same however often the credit is retried). Transfer fields are copied in,
-- so an account's history reads from its own shard even when the transfer lives on another.
CREATE TABLE entries (
  bucket SMALLINT UNSIGNED NOT NULL,
  owner_id BIGINT UNSIGNED NOT NULL,
  asset TINYINT UNSIGNED NOT NULL,
  created_at DATETIME(3) NOT NULL,
  home_owner_id BIGINT UNSIGNED NOT NULL,
  transfer_id VARCHAR(80) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  side TINYINT UNSIGNED NOT NULL,
  kind TINYINT UNSIGNED NOT NULL,
  amount BIGINT NOT NULL,
  balance_after BIGINT NOT NULL,
  payer_owner_id BIGINT UNSIGNED NOT NULL,
  payer_asset TINYINT UNSIGNED NOT NULL,
  payer_bucket SMALLINT UNSIGNED NOT NULL,
  payee_owner_id BIGINT UNSIGNED NOT NULL,
  payee_asset TINYINT UNSIGNED NOT NULL,
  payee_bucket SMALLINT UNSIGNED NOT NULL,
  debit_balance_after BIGINT NOT NULL,
  reference VARCHAR(128) NOT NULL DEFAULT '',
  created_by BIGINT UNSIGNED NOT NULL,
  applied_at DATETIME(3) NOT NULL,
  day DATE NOT NULL,
  PRIMARY KEY (bucket, owner_id, asset, created_at, home_owner_id, transfer_id, side),
  KEY idx_entries_day (day, asset, side)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Credits debited here and not yet applied to the payee: the key of the transfer (on this same
-- shard) whose credit is in flight. Written in the debit's transaction, deleted once the credit
-- is applied, so it only ever holds what is in flight. No secondary index, nothing copied from
-- the transfer: every debit pays for each byte here twice, once to insert and once to delete.
CREATE TABLE outbox (
  bucket SMALLINT UNSIGNED NOT NULL,
  home_owner_id BIGINT UNSIGNED NOT NULL,
  transfer_id VARCHAR(80) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  PRIMARY KEY (bucket, home_owner_id, transfer_id)
) ENGINE=InnoDB;

-- A streamer's INCOME per business day, kept up by the credit applier and checked by Reconcile.
CREATE TABLE daily_income (
  bucket SMALLINT UNSIGNED NOT NULL,
  streamer_id BIGINT UNSIGNED NOT NULL,
  day DATE NOT NULL,
  income BIGINT NOT NULL DEFAULT 0,
  transfer_count BIGINT NOT NULL DEFAULT 0,
  reconciled TINYINT(1) NOT NULL DEFAULT 0,
  updated_at DATETIME(3) NOT NULL,
  PRIMARY KEY (bucket, streamer_id, day),
  KEY idx_daily_income_day (day, bucket)
) ENGINE=InnoDB;

-- TopUp's payment references, unique across all owners. Bucketed by a hash of the reference.
CREATE TABLE topup_refs (
  bucket SMALLINT UNSIGNED NOT NULL,
  payment_reference VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  owner_id BIGINT UNSIGNED NOT NULL,
  amount BIGINT NOT NULL,
  provider VARCHAR(32) NOT NULL DEFAULT '',
  created_at DATETIME(3) NOT NULL,
  PRIMARY KEY (bucket, payment_reference)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Keys of rows changed in a bucket while it migrates away, written in the changing transaction.
-- The migration replays and deletes them; this table is shard-local and never migrated.
CREATE TABLE bucket_changes (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  bucket SMALLINT UNSIGNED NOT NULL,
  table_name VARCHAR(32) CHARACTER SET ascii NOT NULL,
  row_key VARCHAR(512) NOT NULL,
  PRIMARY KEY (id),
  KEY idx_bucket_changes_bucket (bucket, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
