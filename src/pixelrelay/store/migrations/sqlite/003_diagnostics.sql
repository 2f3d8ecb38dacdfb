-- Diagnostics: what ingest refused or absorbed (never stored as events), and read-model indexes.

-- One row per event refused at ingest: the field and a reason with digits masked, never the value.
CREATE TABLE ingest_rejections (
    id       INTEGER PRIMARY KEY,
    at       REAL NOT NULL,
    channel  TEXT NOT NULL,  -- server | browser | shopify | tiktok_api
    event    TEXT NOT NULL,  -- the incoming name as given (or "(none)")
    field    TEXT NOT NULL,  -- the first problem's field
    reason   TEXT NOT NULL,
    problems INTEGER NOT NULL DEFAULT 1  -- how many problems the event had in all
);
CREATE INDEX ingest_rejections_at ON ingest_rejections (at);

-- One row per duplicate (a repeat within the 48 h idempotency window): the store keeps no copy,
-- so this is the only record of it. event_id (an id, not personal data) lets dedup readiness
-- see a server copy that arrived after the browser's.
CREATE TABLE ingest_duplicates (
    id       INTEGER PRIMARY KEY,
    at       REAL NOT NULL,
    channel  TEXT NOT NULL,
    event    TEXT NOT NULL,
    event_id TEXT NOT NULL
);
CREATE INDEX ingest_duplicates_at ON ingest_duplicates (at);

-- Windowed counts (1 h / 24 h / 7 d) read ranges of these instead of scanning the tables.
CREATE INDEX events_received_at ON events (received_at);
CREATE INDEX deliveries_created_at ON deliveries (created_at);
