-- The gateway's processes on this database (serve, serve --no-delivery, deliver): each
-- delivery process beats here, so a destination's max_qps is split between the live ones.
CREATE TABLE processes (
    process_id TEXT PRIMARY KEY,
    role       TEXT NOT NULL,  -- delivery | api
    seen_at    REAL NOT NULL
);
