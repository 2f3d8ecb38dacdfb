-- Admin sessions of the diagnostics page, server-side so that /logout ends one and every
-- process sharing the database sees it. The key is an HMAC of the cookie's session id keyed
-- with the admin token: a copy of the database signs nobody in, and a new token ends every
-- session without storing anything derived from the token alone.
CREATE TABLE admin_sessions (
    id_hash    TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX admin_sessions_expires_at ON admin_sessions (expires_at);
