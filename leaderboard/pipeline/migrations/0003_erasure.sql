-- 0003: the right to erasure (DELETE /users/me). A row per erased user while their data is
-- purged (purged_at NULL) and afterwards: a write of theirs still in a stream is dropped by the
-- purge that follows the streams' drain, and the id can only be signed up again once purged.
CREATE TABLE erased_users (
  user_id TEXT PRIMARY KEY,
  erased_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  purged_at TIMESTAMPTZ
);
