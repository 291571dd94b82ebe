-- 0004: entry metadata (issue 11). A write's optional JSON object (at most 512 bytes encoded
-- compactly), kept with the entry and archived with its season. json, not jsonb: the text stays
-- exactly as the client sent it (key order included); NULL = none. Adding a nullable column
-- rewrites no rows.
ALTER TABLE leaderboard ADD COLUMN metadata JSON;
ALTER TABLE archive_entries ADD COLUMN metadata JSON;
