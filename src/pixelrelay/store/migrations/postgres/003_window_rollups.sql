-- The diagnostics window as per-minute partial results (store/rollup.py): a page sums about
-- 1,440 small rows for 24 h instead of scanning every event of the day. A settled minute is
-- computed once (window_minutes); a later change to any row it counted marks it dirty
-- (window_dirty, by the triggers below), and reads scan dirty minutes exactly until a
-- delivery process computes them again. The same rules as SQLite's migration 012.
CREATE TABLE window_minutes (
    minute      bigint PRIMARY KEY,  -- floor(unix seconds / 60)
    computed_at float8 NOT NULL,
    rows        bytea                -- JSON: window query -> its rows; NULL when empty
);
-- Whole hours of clean stored minutes, added up, so a 7 d window sums 168 rows, not 10,080.
CREATE TABLE window_hours (
    hour        bigint PRIMARY KEY,  -- minute / 60
    computed_at float8 NOT NULL,
    rows        bytea
);
-- Append-only marks, not a set: concurrent writers never wait on each other's mark, and
-- the roll-up deletes only the marks it read.
CREATE TABLE window_dirty (
    id     bigserial PRIMARY KEY,
    minute bigint NOT NULL
);
CREATE INDEX window_dirty_minute ON window_dirty (minute);

-- Dedup readiness looks up the browser copies of each server arrival's event_id.
CREATE INDEX events_event_id ON events (event_id);
-- The latency percentiles read the window's newest delivered rows: from this index, instead
-- of stepping over every pending row newer than them.
CREATE INDEX deliveries_delivered ON deliveries (created_at) INCLUDE (destination, delivered_at)
    WHERE state = 'delivered';

-- Statement triggers with transition tables: one INSERT per UPDATE of a claimed batch.
-- A delivery's counts live in the minute of its created_at (replay moves it to a new one);
-- the window counts in_flight as pending and a code only on dead rows, so a claim or a retry
-- changes nothing it counts;
-- coverage counts an event in the minute of its newest live delivery, so when one starts or
-- stops being live, or moves, its siblings' minutes may change too.
CREATE FUNCTION window_dirty_deliveries_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH changed AS (
        SELECT o.created_at AS old_at, n.created_at AS new_at, n.event_ref,
               (o.state IN ('delivered', 'pending', 'in_flight'))
                   <> (n.state IN ('delivered', 'pending', 'in_flight'))
               OR o.created_at <> n.created_at AS moved
          FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id
         WHERE replace(o.state, 'in_flight', 'pending')
                   <> replace(n.state, 'in_flight', 'pending')
            OR o.dead_reason IS DISTINCT FROM n.dead_reason
            OR o.dest_event <> n.dest_event OR o.created_at <> n.created_at
            OR o.delivered_at IS DISTINCT FROM n.delivered_at
            OR (n.state = 'dead' AND (o.last_code IS DISTINCT FROM n.last_code
                                      OR o.last_message IS DISTINCT FROM n.last_message)))
    INSERT INTO window_dirty (minute)
    SELECT DISTINCT floor(t / 60)::bigint FROM (
        SELECT old_at AS t FROM changed
        UNION ALL SELECT new_at FROM changed
        UNION ALL SELECT d.created_at FROM deliveries AS d
                   WHERE d.event_ref IN (SELECT event_ref FROM changed WHERE moved)) AS x;
    RETURN NULL;
END $$;
CREATE TRIGGER window_dirty_delivery AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION window_dirty_deliveries_updated();

CREATE FUNCTION window_dirty_deliveries_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO window_dirty (minute)
    SELECT DISTINCT floor(t / 60)::bigint FROM (
        SELECT created_at AS t FROM old_rows
        UNION ALL SELECT d.created_at FROM deliveries AS d
                   WHERE d.event_ref IN (SELECT event_ref FROM old_rows)) AS x;
    RETURN NULL;
END $$;
CREATE TRIGGER window_dirty_delivery_gone AFTER DELETE ON deliveries
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION window_dirty_deliveries_deleted();

-- A merge rewrites the first copy: its match keys and enrichment are counted again, and
-- (its channel may change) the dedup of every arrival of its event_id.
CREATE FUNCTION window_dirty_events_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO window_dirty (minute)
    SELECT DISTINCT floor(t / 60)::bigint FROM (
        SELECT d.created_at AS t FROM deliveries AS d
         WHERE d.event_ref IN (SELECT id FROM new_rows)
        UNION ALL SELECT e.received_at FROM events AS e
         WHERE e.event_id IN (SELECT event_id FROM new_rows)
        UNION ALL SELECT x.at FROM ingest_duplicates AS x
         WHERE x.event_id IN (SELECT event_id FROM new_rows)) AS x;
    RETURN NULL;
END $$;
CREATE TRIGGER window_dirty_event AFTER UPDATE ON events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION window_dirty_events_updated();

-- A deleted browser copy (a NULL channel is in the body: maybe one) leaves the server
-- arrivals of its event_id without a browser copy: their minutes are counted again.
CREATE FUNCTION window_dirty_events_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO window_dirty (minute)
    SELECT DISTINCT floor(t / 60)::bigint FROM (
        SELECT received_at AS t FROM old_rows
        UNION ALL SELECT e.received_at FROM old_rows AS o JOIN events AS e
            ON e.event_id = o.event_id WHERE coalesce(o.channel, 'browser') = 'browser'
        UNION ALL SELECT x.at FROM old_rows AS o JOIN ingest_duplicates AS x
            ON x.event_id = o.event_id WHERE coalesce(o.channel, 'browser') = 'browser') AS y;
    RETURN NULL;
END $$;
CREATE TRIGGER window_dirty_event_gone AFTER DELETE ON events
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION window_dirty_events_deleted();

-- A browser copy that comes after the server's makes that server arrival "also from the
-- browser": the minutes of every arrival of the same event_id are counted again.
CREATE FUNCTION window_dirty_browser_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO window_dirty (minute)
    SELECT DISTINCT floor(t / 60)::bigint FROM (
        SELECT e.received_at AS t FROM new_rows AS n JOIN events AS e
            ON e.event_id = n.event_id AND e.id <> n.id WHERE n.channel = 'browser'
        UNION ALL SELECT x.at FROM new_rows AS n JOIN ingest_duplicates AS x
            ON x.event_id = n.event_id WHERE n.channel = 'browser') AS y;
    RETURN NULL;
END $$;
CREATE TRIGGER window_dirty_browser_event AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION window_dirty_browser_events();

CREATE FUNCTION window_dirty_browser_copies() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO window_dirty (minute)
    SELECT DISTINCT floor(t / 60)::bigint FROM (
        SELECT e.received_at AS t FROM new_rows AS n JOIN events AS e
            ON e.event_id = n.event_id WHERE n.channel = 'browser'
        UNION ALL SELECT x.at FROM new_rows AS n JOIN ingest_duplicates AS x
            ON x.event_id = n.event_id AND x.id <> n.id WHERE n.channel = 'browser') AS y;
    RETURN NULL;
END $$;
CREATE TRIGGER window_dirty_browser_copy AFTER INSERT ON ingest_duplicates
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION window_dirty_browser_copies();

CREATE FUNCTION window_dirty_browser_copies_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO window_dirty (minute)
    SELECT DISTINCT floor(t / 60)::bigint FROM (
        SELECT e.received_at AS t FROM old_rows AS o JOIN events AS e
            ON e.event_id = o.event_id WHERE o.channel = 'browser'
        UNION ALL SELECT x.at FROM old_rows AS o JOIN ingest_duplicates AS x
            ON x.event_id = o.event_id WHERE o.channel = 'browser') AS y;
    RETURN NULL;
END $$;
CREATE TRIGGER window_dirty_browser_copy_gone AFTER DELETE ON ingest_duplicates
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION window_dirty_browser_copies_deleted();

-- Rows are stamped with the writer's clock, so they land in unsettled minutes; one stamped
-- into a minute already stored (a clock behind the others, a caller's own time) marks it.
CREATE FUNCTION window_dirty_late_received_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO window_dirty (minute)
    SELECT DISTINCT m FROM (SELECT floor(received_at / 60)::bigint AS m FROM new_rows) AS x
     WHERE m IN (SELECT minute FROM window_minutes);
    RETURN NULL;
END $$;
CREATE FUNCTION window_dirty_late_created_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO window_dirty (minute)
    SELECT DISTINCT m FROM (SELECT floor(created_at / 60)::bigint AS m FROM new_rows) AS x
     WHERE m IN (SELECT minute FROM window_minutes);
    RETURN NULL;
END $$;
CREATE FUNCTION window_dirty_late_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO window_dirty (minute)
    SELECT DISTINCT m FROM (SELECT floor(at / 60)::bigint AS m FROM new_rows) AS x
     WHERE m IN (SELECT minute FROM window_minutes);
    RETURN NULL;
END $$;
CREATE TRIGGER window_dirty_late_events AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION window_dirty_late_received_at();
CREATE TRIGGER window_dirty_late_deliveries AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION window_dirty_late_created_at();
CREATE TRIGGER window_dirty_late_ingest_duplicates AFTER INSERT ON ingest_duplicates
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION window_dirty_late_at();
CREATE TRIGGER window_dirty_late_ingest_rejections AFTER INSERT ON ingest_rejections
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION window_dirty_late_at();
CREATE TRIGGER window_dirty_late_ingest_notices AFTER INSERT ON ingest_notices
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION window_dirty_late_at();
CREATE TRIGGER window_dirty_late_collect_refusals AFTER INSERT ON collect_refusals
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION window_dirty_late_at();
