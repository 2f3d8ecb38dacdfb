-- pixelrelay SQLite schema, version 1: the durable outbox.

-- Normalised events as accepted (PII already hashed upstream). Not unique on event_id:
-- a repeat older than the 48 h idempotency window is accepted (and stored) again.
CREATE TABLE events (
    id           INTEGER PRIMARY KEY,
    event_id     TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    event_time   INTEGER NOT NULL,
    received_at  REAL    NOT NULL,
    session_id   TEXT,
    order_source TEXT,
    body         BLOB    NOT NULL  -- store/codec.py JSON
);

-- One row per (event, destination) that considered it.
CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY,
    event_ref        INTEGER NOT NULL REFERENCES events (id),
    destination      TEXT    NOT NULL,
    dest_event       TEXT    NOT NULL,
    event_id         TEXT    NOT NULL,
    batch_key        TEXT    NOT NULL,
    state            TEXT    NOT NULL,  -- pending|in_flight|delivered|dead|suppressed|filtered
    payload          BLOB,              -- the destination's serialised item; NULL unless sendable
    reason           TEXT,              -- why suppressed / filtered
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL,
    lease_token      TEXT,
    lease_expires_at REAL,
    created_at       REAL    NOT NULL,
    updated_at       REAL    NOT NULL,
    delivered_at     REAL,
    last_http_status INTEGER,
    last_code        INTEGER,
    last_message     TEXT,
    last_request_id  TEXT,
    dead_reason      TEXT
);

-- Claiming: due pending rows of one destination, oldest first. Partial, so delivered rows
-- (the vast majority over time) cost nothing here.
CREATE INDEX deliveries_due ON deliveries (destination, next_attempt_at, id)
    WHERE state = 'pending';
-- Expiry and "oldest pending" without scanning the table.
CREATE INDEX deliveries_pending_age ON deliveries (destination, created_at)
    WHERE state = 'pending';
-- The lease reaper and the in-flight count (in-flight rows are few: a scan is cheap).
CREATE INDEX deliveries_leased ON deliveries (destination, lease_expires_at)
    WHERE state = 'in_flight';
-- (destination, destination event name, event_id) accepted within the last 48 h, and the
-- delivery row that acceptance created. Keyed by event_id first, it also serves
-- GET /v1/deliveries?event_id= (the latest delivery per destination and name), which spares
-- deliveries a second index on random keys: under random event_ids each such index costs a
-- page write per event at commit.
CREATE TABLE idempotency (
    event_id    TEXT    NOT NULL,
    destination TEXT    NOT NULL,
    dest_event  TEXT    NOT NULL,
    accepted_at REAL    NOT NULL,
    delivery_id INTEGER NOT NULL,
    PRIMARY KEY (event_id, destination, dest_event)
) WITHOUT ROWID;

-- Append-only log: one row per HTTP request to a destination.
CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY,
    destination TEXT NOT NULL,
    event_ids   TEXT NOT NULL,  -- JSON array
    http_status INTEGER,
    code        INTEGER,
    message     TEXT,
    request_id  TEXT,
    latency_ms  REAL NOT NULL,
    outcome     TEXT NOT NULL,
    at          REAL NOT NULL
);
CREATE INDEX attempts_by_destination ON attempts (destination, at);

-- Pause state of each destination (a setup error pauses; its queue waits).
CREATE TABLE destinations (
    name              TEXT PRIMARY KEY,
    paused            INTEGER NOT NULL,
    reason            TEXT,
    token_fingerprint TEXT,
    updated_at        REAL NOT NULL
);
