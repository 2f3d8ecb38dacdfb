-- pixelrelay PostgreSQL schema, version 1: the same logical schema as SQLite's migrations
-- 001-009 (plus the retention indexes of SQLite's 010), in one file. Times are Unix seconds
-- (float8); text keys compare bytewise (COLLATE "C"), as SQLite's BINARY does, so prefix
-- ranges on event_id and every ORDER BY give the same answer on both engines.

-- Normalised events as accepted (PII already hashed upstream). Not unique on event_id:
-- a repeat older than the 48 h idempotency window is accepted (and stored) again.
CREATE TABLE events (
    id           bigserial PRIMARY KEY,
    event_id     text COLLATE "C" NOT NULL,
    name         text COLLATE "C" NOT NULL,
    source       text NOT NULL,
    event_time   bigint NOT NULL,
    received_at  float8 NOT NULL,
    session_id   text,
    order_source text,
    body         jsonb NOT NULL  -- store/codec.py JSON; jsonb so the read models index into it
);
CREATE INDEX events_received_at ON events (received_at);

-- One row per (event, destination) that considered it.
CREATE TABLE deliveries (
    id               bigserial PRIMARY KEY,
    event_ref        bigint NOT NULL REFERENCES events (id),
    destination      text COLLATE "C" NOT NULL,
    dest_event       text COLLATE "C" NOT NULL,
    event_id         text COLLATE "C" NOT NULL,
    batch_key        text COLLATE "C" NOT NULL,
    state            text NOT NULL,  -- pending|in_flight|delivered|dead|suppressed|filtered
    payload          bytea,          -- the destination's serialised item; NULL unless sendable
    reason           text,           -- why suppressed / filtered
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  float8,
    lease_token      text,
    lease_expires_at float8,
    created_at       float8 NOT NULL,
    updated_at       float8 NOT NULL,
    delivered_at     float8,
    last_http_status integer,
    last_code        integer,
    last_message     text,
    last_request_id  text,
    dead_reason      text
);
-- Claiming: due pending rows of one destination, oldest first. Partial, so delivered rows
-- (the vast majority over time) cost nothing here, however many millions there are.
CREATE INDEX deliveries_due ON deliveries (destination, next_attempt_at, id)
    WHERE state = 'pending';
-- A claim takes one batch_key: the due rows of that key, oldest first, without scanning past
-- the due rows of other keys.
CREATE INDEX deliveries_due_by_key ON deliveries (destination, batch_key, next_attempt_at, id)
    WHERE state = 'pending';
-- Expiry and "oldest pending" without scanning the table.
CREATE INDEX deliveries_pending_age ON deliveries (destination, created_at)
    WHERE state = 'pending';
-- The lease reaper and the in-flight count (in-flight rows are few).
CREATE INDEX deliveries_leased ON deliveries (destination, lease_expires_at)
    WHERE state = 'in_flight';
-- Windowed counts of the read models, and retention (oldest first).
CREATE INDEX deliveries_created_at ON deliveries (created_at);
-- The foreign key's own index: deleting an event checks it, and retention asks it whether an
-- event still has deliveries. event_ref only grows, so this index appends at its right edge.
CREATE INDEX deliveries_event_ref ON deliveries (event_ref);

-- (destination, destination event name, event_id) accepted within the last 48 h, and the
-- delivery row that acceptance created. Keyed by event_id first, it also serves
-- GET /v1/deliveries?event_id=. Every process inserts here in its ingest transaction, so the
-- key is unique across processes: the database, not a process, decides what is a duplicate.
CREATE TABLE idempotency (
    event_id    text COLLATE "C" NOT NULL,
    destination text COLLATE "C" NOT NULL,
    dest_event  text COLLATE "C" NOT NULL,
    accepted_at float8 NOT NULL,
    delivery_id bigint NOT NULL,
    PRIMARY KEY (event_id, destination, dest_event)
);

-- Append-only log: one row per HTTP request to a destination.
CREATE TABLE attempts (
    id          bigserial PRIMARY KEY,
    destination text COLLATE "C" NOT NULL,
    event_ids   text[] NOT NULL,
    http_status integer,
    code        integer,
    message     text,
    request_id  text,
    latency_ms  float8 NOT NULL,
    outcome     text NOT NULL,
    at          float8 NOT NULL
);
CREATE INDEX attempts_by_destination ON attempts (destination, at);
CREATE INDEX attempts_at ON attempts (at);  -- retention, oldest first

-- Pause state of each destination (a setup error pauses; its queue waits).
CREATE TABLE destinations (
    name              text COLLATE "C" PRIMARY KEY,
    paused            boolean NOT NULL,
    reason            text,
    token_fingerprint text,
    updated_at        float8 NOT NULL
);

-- Browser sessions, cart/checkout token links and identity links: context to restore onto
-- server events. No raw personal data: identities are SHA-256 digests, as in events.
CREATE TABLE sessions (
    session_id  text COLLATE "C" PRIMARY KEY,
    ttclid      text,
    ttp         text,
    ip          text,
    user_agent  text,
    landing_url text,            -- the first page of the session
    first_seen  float8 NOT NULL,
    last_seen   float8 NOT NULL,
    consent     text             -- store/session_codec.py JSON, NULL before any answer
);
CREATE INDEX sessions_last_seen ON sessions (last_seen);

CREATE TABLE session_tokens (
    kind       text COLLATE "C" NOT NULL,  -- cart_token | checkout_token
    token      text COLLATE "C" NOT NULL,
    session_id text NOT NULL,
    linked_at  float8 NOT NULL,
    PRIMARY KEY (kind, token)
);
CREATE INDEX session_tokens_linked_at ON session_tokens (linked_at);

CREATE TABLE session_identities (
    identity   text COLLATE "C" NOT NULL,
    session_id text COLLATE "C" NOT NULL,
    linked_at  float8 NOT NULL,
    PRIMARY KEY (identity, session_id)
);
CREATE INDEX session_identities_recent ON session_identities (identity, linked_at);
CREATE INDEX session_identities_linked_at ON session_identities (linked_at);

-- The ingest log: what ingest refused, absorbed or changed (the outbox keeps none of it).
-- Fields and reasons only, never a value.
CREATE TABLE ingest_rejections (
    id       bigserial PRIMARY KEY,
    at       float8 NOT NULL,
    channel  text COLLATE "C" NOT NULL,
    event    text COLLATE "C" NOT NULL,
    field    text COLLATE "C" NOT NULL,
    reason   text COLLATE "C" NOT NULL,
    problems integer NOT NULL DEFAULT 1,
    event_id text COLLATE "C",
    order_id text COLLATE "C",
    sample   text  -- JSON [{"field", "reason"}, ...]
);
CREATE INDEX ingest_rejections_at ON ingest_rejections (at);
CREATE INDEX ingest_rejections_event_id ON ingest_rejections (event_id)
    WHERE event_id IS NOT NULL;
CREATE INDEX ingest_rejections_order_id ON ingest_rejections (order_id)
    WHERE order_id IS NOT NULL;

CREATE TABLE ingest_duplicates (
    id       bigserial PRIMARY KEY,
    at       float8 NOT NULL,
    channel  text COLLATE "C" NOT NULL,
    event    text COLLATE "C" NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    merged   boolean NOT NULL DEFAULT false
);
CREATE INDEX ingest_duplicates_at ON ingest_duplicates (at);
CREATE INDEX ingest_duplicates_event_id ON ingest_duplicates (event_id);

CREATE TABLE ingest_notices (
    id      bigserial PRIMARY KEY,
    at      float8 NOT NULL,
    channel text COLLATE "C" NOT NULL,
    event   text COLLATE "C" NOT NULL,
    field   text COLLATE "C" NOT NULL,
    kind    text COLLATE "C" NOT NULL  -- unknown_field | dropped_value | unverified
);
CREATE INDEX ingest_notices_at ON ingest_notices (at);

CREATE TABLE collect_refusals (
    id     bigserial PRIMARY KEY,
    at     float8 NOT NULL,
    reason text COLLATE "C" NOT NULL,  -- unknown_key | origin_not_allowed
    origin text COLLATE "C"
);
CREATE INDEX collect_refusals_at ON collect_refusals (at);

-- Admin sessions of the diagnostics page (the key is an HMAC of the cookie's session id).
CREATE TABLE admin_sessions (
    id_hash    text PRIMARY KEY,
    created_at float8 NOT NULL,
    expires_at float8 NOT NULL
);
CREATE INDEX admin_sessions_expires_at ON admin_sessions (expires_at);

-- The gateway's processes on this database: each delivery process beats here, so a
-- destination's max_qps is split between the live ones.
CREATE TABLE processes (
    process_id text PRIMARY KEY,
    role       text NOT NULL,  -- delivery | api
    seen_at    float8 NOT NULL
);
