-- 0002: many boards with seasons (docs/boards.md, "Postgres"). The leaderboard table's primary
-- key becomes (board, season, user_id) (the writers' UPSERT conflicts on it); the rows of a
-- database made by 0001 become board 'default', season 1.

-- The board definitions: the source of truth, cached by every process (docs/boards.md, "Cache").
CREATE TABLE boards (
  id TEXT PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  title VARCHAR(200) NOT NULL,
  sort_order TEXT NOT NULL DEFAULT 'desc' CHECK (sort_order IN ('desc', 'asc')),
  operator TEXT NOT NULL DEFAULT 'set' CHECK (operator IN ('set', 'best', 'incr')),
  reset_seconds BIGINT CHECK (reset_seconds >= 1),
  reset_cron TEXT,
  start_at TIMESTAMPTZ NOT NULL,
  -- part of every Redis key of the board: a board deleted and created again never meets its
  -- predecessor's keys (base36 of the creation time in µs; '' for default, whose keys are legacy)
  generation TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  deleted_at TIMESTAMPTZ,  -- tombstone while the purge runs; the row goes when it is done
  purge_after BIGINT,  -- max over instances of the clock after the registry HDEL (µs)
  archived_through BIGINT NOT NULL DEFAULT 0,  -- every season <= this is archived (or was empty)
  rev BIGINT NOT NULL,  -- from boards_rev: caches reload WHERE rev > their last
  CHECK (reset_seconds IS NULL OR reset_cron IS NULL)
);
CREATE SEQUENCE boards_rev OWNED BY boards.rev;
ALTER TABLE boards ALTER COLUMN rev SET DEFAULT nextval('boards_rev');
CREATE INDEX boards_rev_idx ON boards (rev);
INSERT INTO boards (id, title, start_at, generation)
VALUES ('default', 'default', '1970-01-01T00:00:00Z', '');

-- Every row so far is board 'default', season 1. Adding a column with a constant default is
-- instant; the new primary key is built by one scan of the table.
ALTER TABLE leaderboard
  ADD COLUMN board TEXT NOT NULL DEFAULT 'default',
  ADD COLUMN season BIGINT NOT NULL DEFAULT 1;
ALTER TABLE leaderboard DROP CONSTRAINT leaderboard_pkey;
ALTER TABLE leaderboard ADD PRIMARY KEY (board, season, user_id);
DROP INDEX IF EXISTS leaderboard_region_idx;
DROP INDEX IF EXISTS leaderboard_score_idx;
DROP INDEX IF EXISTS leaderboard_region_score_idx;
-- warming reads (top, rank counts) of the live season, either order (backward scans for desc)
CREATE INDEX leaderboard_board_score_idx ON leaderboard (board, season, score);
CREATE INDEX leaderboard_board_region_score_idx ON leaderboard (board, season, region, score);

-- One row per archived season that had entries (empty seasons are not archived).
CREATE TABLE season_archive (
  board TEXT NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
  season BIGINT NOT NULL,
  started_at TIMESTAMPTZ NOT NULL,
  ended_at TIMESTAMPTZ NOT NULL,
  entries INTEGER NOT NULL,  -- GLOBAL count
  archived_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  PRIMARY KEY (board, season)
);

-- The final standings, ranks materialised: top, rank and around are index range reads.
CREATE TABLE archive_entries (
  board TEXT NOT NULL,
  season BIGINT NOT NULL,
  user_id TEXT NOT NULL,
  name VARCHAR(200) NOT NULL,
  region VARCHAR(50) NOT NULL,
  score BIGINT NOT NULL,
  version BIGINT NOT NULL,
  reached BIGINT NOT NULL,
  global_rank INTEGER NOT NULL,
  region_rank INTEGER NOT NULL,  -- within region; unused for users whose region is GLOBAL
  PRIMARY KEY (board, season, user_id),
  FOREIGN KEY (board, season) REFERENCES season_archive (board, season) ON DELETE CASCADE
);
CREATE UNIQUE INDEX archive_entries_global_rank_idx ON archive_entries (board, season, global_rank);
CREATE UNIQUE INDEX archive_entries_region_rank_idx
  ON archive_entries (board, season, region, region_rank);

-- Per shard: every write this shard's Redis instance applied up to drained_through is in
-- Postgres (streams drained past a fence taken at that time, nothing unconfirmed in memory).
CREATE TABLE drain_marks (
  shard TEXT PRIMARY KEY,
  drained_through BIGINT NOT NULL,  -- µs since the epoch, the instance's Redis TIME at the fence
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
