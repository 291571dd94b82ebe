-- The durable record: Redis can always be rebuilt from these rows.
CREATE TABLE IF NOT EXISTS leaderboard (
  user_id TEXT PRIMARY KEY,
  name VARCHAR(200) NOT NULL,
  region VARCHAR(50) NOT NULL,
  score BIGINT NOT NULL DEFAULT 0,
  updated_at TIMESTAMP DEFAULT NOW(),
  version BIGINT NOT NULL DEFAULT 0,
  -- version at which the user reached this score: the tie-break, so a rebuild ranks exactly
  reached BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS leaderboard_region_idx ON leaderboard (region);
CREATE INDEX IF NOT EXISTS leaderboard_score_idx ON leaderboard (score DESC);
CREATE INDEX IF NOT EXISTS leaderboard_region_score_idx ON leaderboard (region, score DESC);

CREATE TABLE IF NOT EXISTS credentials (
  user_id TEXT PRIMARY KEY,
  name VARCHAR(200) NOT NULL,
  region VARCHAR(50) NOT NULL,
  password_hash TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
