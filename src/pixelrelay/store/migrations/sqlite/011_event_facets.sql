-- What the diagnostics count of each event, written at insert (store.codec.event_facets), so
-- the window queries read columns instead of parsing every body: one json_extract over a
-- million bodies cost 2.8 s, and the match-key coverage read 15. NULL (rows stored before,
-- or merged since) means "read the body", so the numbers stay exact.
ALTER TABLE events ADD COLUMN channel TEXT;
ALTER TABLE events ADD COLUMN enriched INTEGER;
ALTER TABLE events ADD COLUMN match_keys INTEGER;
