-- Every event refused at ingest can be found again: its event_id (as given or as it would
-- have been derived), its order id, and every problem (field and reason, never a value).
ALTER TABLE ingest_rejections ADD COLUMN event_id TEXT;
ALTER TABLE ingest_rejections ADD COLUMN order_id TEXT;
ALTER TABLE ingest_rejections ADD COLUMN sample TEXT;  -- JSON [{"field", "reason"}, ...]
CREATE INDEX ingest_rejections_event_id ON ingest_rejections (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX ingest_rejections_order_id ON ingest_rejections (order_id) WHERE order_id IS NOT NULL;

-- A duplicate folded into its pending first copy is a merge, not a loss: say which.
ALTER TABLE ingest_duplicates ADD COLUMN merged INTEGER NOT NULL DEFAULT 0;
CREATE INDEX ingest_duplicates_event_id ON ingest_duplicates (event_id);

-- /v1/collect hits refused before any event was read (unknown site key, origin not
-- allowed): by reason, with the origin that sent them (a site, not a person).
CREATE TABLE collect_refusals (
    id     INTEGER PRIMARY KEY,
    at     REAL NOT NULL,
    reason TEXT NOT NULL,  -- unknown_key | origin_not_allowed
    origin TEXT
);
CREATE INDEX collect_refusals_at ON collect_refusals (at);
