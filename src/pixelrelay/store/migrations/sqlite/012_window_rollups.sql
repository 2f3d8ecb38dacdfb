-- The diagnostics window as per-minute partial results (store/rollup.py): a page sums about
-- 1,440 small rows for 24 h instead of scanning every event of the day. A settled minute is
-- computed once (window_minutes); a later change to any row it counted marks it dirty
-- (window_dirty, by the triggers below), and reads scan dirty minutes exactly until the
-- delivery process computes them again.
CREATE TABLE window_minutes (
    minute      INTEGER PRIMARY KEY,  -- floor(unix seconds / 60)
    computed_at REAL NOT NULL,
    rows        BLOB                  -- JSON: window query -> its rows; NULL when empty
);
-- Whole hours of clean stored minutes, added up, so a 7 d window sums 168 rows, not 10,080.
CREATE TABLE window_hours (
    hour        INTEGER PRIMARY KEY,  -- minute / 60
    computed_at REAL NOT NULL,
    rows        BLOB
);
CREATE TABLE window_dirty (minute INTEGER PRIMARY KEY) WITHOUT ROWID;

-- Dedup readiness looks up the browser copies of each server arrival's event_id.
CREATE INDEX events_event_id ON events (event_id);
-- The latency percentiles read the window's newest delivered rows: from this index alone,
-- instead of stepping over every pending row newer than them (0.2 s at 500k pending).
CREATE INDEX deliveries_delivered ON deliveries (created_at, destination, delivered_at)
    WHERE state = 'delivered';

-- A delivery's counts live in the minute of its created_at (replay moves it to a new one).
-- The window counts in_flight as pending and a code only on dead rows, so a claim or a retry
-- changes nothing it counts; a minute not stored yet is computed from the rows as they are.
-- (WHEN clauses without IN lists or function calls: SQLite evaluates them for every row a
-- statement updates, and an IN list costs several microseconds each time.)
CREATE TRIGGER window_dirty_delivery AFTER UPDATE ON deliveries
WHEN ((CASE old.state WHEN 'in_flight' THEN 'pending' ELSE old.state END)
          != (CASE new.state WHEN 'in_flight' THEN 'pending' ELSE new.state END)
      OR old.dead_reason IS NOT new.dead_reason OR old.dest_event != new.dest_event
      OR old.created_at != new.created_at OR old.delivered_at IS NOT new.delivered_at
      OR (new.state = 'dead' AND (old.last_code IS NOT new.last_code
                                  OR old.last_message IS NOT new.last_message)))
 AND (EXISTS (SELECT 1 FROM window_minutes WHERE minute = CAST(old.created_at / 60 AS INTEGER))
      OR EXISTS (SELECT 1 FROM window_minutes
                  WHERE minute = CAST(new.created_at / 60 AS INTEGER)))
BEGIN
    INSERT OR IGNORE INTO window_dirty (minute)
    VALUES (CAST(old.created_at / 60 AS INTEGER)), (CAST(new.created_at / 60 AS INTEGER));
END;

-- Coverage counts an event in the minute of its newest live delivery: when one starts or
-- stops being live, or moves, its siblings' minutes may change too.
CREATE TRIGGER window_dirty_siblings AFTER UPDATE ON deliveries
WHEN (old.state = 'delivered' OR old.state = 'pending' OR old.state = 'in_flight')
        != (new.state = 'delivered' OR new.state = 'pending' OR new.state = 'in_flight')
  OR old.created_at != new.created_at
BEGIN
    INSERT OR IGNORE INTO window_dirty (minute)
    SELECT CAST(created_at / 60 AS INTEGER) FROM deliveries WHERE event_ref = new.event_ref;
END;

CREATE TRIGGER window_dirty_delivery_gone AFTER DELETE ON deliveries
BEGIN
    INSERT OR IGNORE INTO window_dirty (minute)
    VALUES (CAST(old.created_at / 60 AS INTEGER));
    INSERT OR IGNORE INTO window_dirty (minute)
    SELECT CAST(created_at / 60 AS INTEGER) FROM deliveries WHERE event_ref = old.event_ref;
END;

-- A merge rewrites the first copy: its match keys and enrichment are counted again, and
-- (its channel may change) the dedup of every arrival of its event_id.
CREATE TRIGGER window_dirty_event AFTER UPDATE OF name, body, channel, enriched, match_keys
    ON events
BEGIN
    INSERT OR IGNORE INTO window_dirty (minute)
    SELECT CAST(created_at / 60 AS INTEGER) FROM deliveries WHERE event_ref = new.id;
    INSERT OR IGNORE INTO window_dirty (minute)
    SELECT CAST(received_at / 60 AS INTEGER) FROM events WHERE event_id = new.event_id;
    INSERT OR IGNORE INTO window_dirty (minute)
    SELECT CAST(at / 60 AS INTEGER) FROM ingest_duplicates WHERE event_id = new.event_id;
END;

CREATE TRIGGER window_dirty_event_gone AFTER DELETE ON events
BEGIN
    INSERT OR IGNORE INTO window_dirty (minute)
    VALUES (CAST(old.received_at / 60 AS INTEGER));
END;

-- A deleted browser copy leaves the server arrivals of its event_id without one: their
-- minutes are counted again. (A NULL channel is in the body: taken as maybe browser.)
CREATE TRIGGER window_dirty_browser_event_gone AFTER DELETE ON events
WHEN coalesce(old.channel, 'browser') = 'browser'
BEGIN
    INSERT OR IGNORE INTO window_dirty (minute)
    SELECT CAST(received_at / 60 AS INTEGER) FROM events WHERE event_id = old.event_id;
    INSERT OR IGNORE INTO window_dirty (minute)
    SELECT CAST(at / 60 AS INTEGER) FROM ingest_duplicates WHERE event_id = old.event_id;
END;

CREATE TRIGGER window_dirty_browser_copy_gone AFTER DELETE ON ingest_duplicates
WHEN old.channel = 'browser'
BEGIN
    INSERT OR IGNORE INTO window_dirty (minute)
    SELECT CAST(received_at / 60 AS INTEGER) FROM events WHERE event_id = old.event_id;
    INSERT OR IGNORE INTO window_dirty (minute)
    SELECT CAST(at / 60 AS INTEGER) FROM ingest_duplicates WHERE event_id = old.event_id;
END;

-- Inserts are marked by the store's own insert code, a set per transaction
-- (store/sqlite/diagnostics.py `mark_inserted`): the minutes already stored that new rows
-- land in (a writer whose clock is behind, a caller's own time), and for browser copies
-- those of every arrival of the same event_id, which are now "also from the browser". A row
-- trigger per inserted row cost about 12 us an event.
