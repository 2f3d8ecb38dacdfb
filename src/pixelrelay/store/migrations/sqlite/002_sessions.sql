-- Browser sessions, cart/checkout token links and identity links: context to restore onto
-- server events. No raw personal data: identities are SHA-256 digests, as in events.

-- One row per browser session (the first-party session cookie); match keys as last seen.
CREATE TABLE sessions (
    session_id  TEXT PRIMARY KEY,
    ttclid      TEXT,
    ttp         TEXT,
    ip          TEXT,
    user_agent  TEXT,
    landing_url TEXT,            -- the first page of the session
    first_seen  REAL NOT NULL,
    last_seen   REAL NOT NULL
);
CREATE INDEX sessions_last_seen ON sessions (last_seen);

-- A cart or checkout token (Shopify) -> the session it was created in; the latest link wins.
CREATE TABLE session_tokens (
    kind       TEXT NOT NULL,    -- cart_token | checkout_token
    token      TEXT NOT NULL,
    session_id TEXT NOT NULL,
    linked_at  REAL NOT NULL,
    PRIMARY KEY (kind, token)
);
CREATE INDEX session_tokens_linked_at ON session_tokens (linked_at);

-- An identity ("email:<sha256>" or "external_id:<sha256>") seen with a session.
CREATE TABLE session_identities (
    identity   TEXT NOT NULL,
    session_id TEXT NOT NULL,
    linked_at  REAL NOT NULL,
    PRIMARY KEY (identity, session_id)
);
CREATE INDEX session_identities_recent ON session_identities (identity, linked_at);
CREATE INDEX session_identities_linked_at ON session_identities (linked_at);
