-- 0005: which users renamed themselves (PATCH /users/me). Their name lives in a profile hash in
-- Redis (shown on every board instead of the name an entry was written with); after Redis
-- loses its data the rebuild restores those profiles from here, so a token issued before the
-- rename cannot write the old name again. Renames made before this migration are not marked
-- (the feature shipped one build earlier); renaming once more marks them.
ALTER TABLE credentials ADD COLUMN renamed_at TIMESTAMPTZ;
CREATE INDEX credentials_renamed_idx ON credentials (renamed_at) WHERE renamed_at IS NOT NULL;
