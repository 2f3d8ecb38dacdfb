-- What the diagnostics count of each event, written at insert (store.codec.event_facets), so
-- the window queries read columns instead of the jsonb body. NULL (rows stored before, or
-- merged since) means "read the body", so the numbers stay exact.
ALTER TABLE events ADD COLUMN channel text, ADD COLUMN enriched integer,
                   ADD COLUMN match_keys integer;
