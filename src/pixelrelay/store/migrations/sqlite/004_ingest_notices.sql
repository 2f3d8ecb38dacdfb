-- Diagnostics: what ingest changed about events it kept (a key dropped, a phone it could not
-- verify). The field path only (user.foo, data keys masked), never a value.
CREATE TABLE ingest_notices (
    id      INTEGER PRIMARY KEY,
    at      REAL NOT NULL,
    channel TEXT NOT NULL,
    event   TEXT NOT NULL,
    field   TEXT NOT NULL,
    kind    TEXT NOT NULL  -- unknown_field | dropped_value | unverified
);
CREATE INDEX ingest_notices_at ON ingest_notices (at);
