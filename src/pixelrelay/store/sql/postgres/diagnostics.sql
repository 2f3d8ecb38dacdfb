-- Named queries of the PostgreSQL ingest log and diagnostics read models
-- (store/postgres/diagnostics.py): SQLite's queries with the event body read as jsonb.
-- Every count must equal SQLite's for the same data (tests/contract/test_read_models.py).

-- name: insert_rejections
INSERT INTO ingest_rejections (at, channel, event, field, reason, problems, event_id,
                               order_id, sample)
SELECT * FROM unnest(%(at)s::float8[], %(channel)s::text[], %(event)s::text[],
                     %(field)s::text[], %(reason)s::text[], %(problems)s::integer[],
                     %(event_id)s::text[], %(order_id)s::text[], %(sample)s::text[])

-- name: insert_duplicates
INSERT INTO ingest_duplicates (at, channel, event, event_id, merged)
SELECT * FROM unnest(%(at)s::float8[], %(channel)s::text[], %(event)s::text[],
                     %(event_id)s::text[], %(merged)s::boolean[])

-- name: insert_notices
INSERT INTO ingest_notices (at, channel, event, field, kind)
SELECT * FROM unnest(%(at)s::float8[], %(channel)s::text[], %(event)s::text[],
                     %(field)s::text[], %(kind)s::text[])

-- name: prune_rejections
-- Range deletes on the `at` indexes keep the tables bounded without a separate job.
DELETE FROM ingest_rejections WHERE at < %s

-- name: prune_duplicates
DELETE FROM ingest_duplicates WHERE at < %s

-- name: prune_notices
DELETE FROM ingest_notices WHERE at < %s

-- name: insert_refusal
INSERT INTO collect_refusals (at, reason, origin) VALUES (%s, %s, %s)

-- name: prune_refusals
DELETE FROM collect_refusals WHERE at < %s

-- name: rejections
SELECT at, channel, event, event_id, order_id, coalesce(sample, '[]') FROM ingest_rejections
 WHERE (%(event_id)s::text IS NOT NULL AND event_id = %(event_id)s)
    OR (%(order_id)s::text IS NOT NULL AND order_id = %(order_id)s)
 ORDER BY at DESC LIMIT 20

-- name: later_copies
SELECT at, channel, merged FROM ingest_duplicates WHERE event_id = %s ORDER BY at LIMIT 50

-- The window_* queries count one time range [lo, hi) each: a settled minute (stored in
-- window_minutes, store/rollup.py) or a part of the window no clean minute covers. Summed
-- over the ranges of a window they give the counts of one scan of the whole window.

-- name: window_accepted
SELECT name, count(*) FROM events WHERE received_at >= %(lo)s AND received_at < %(hi)s
 GROUP BY name

-- name: window_duplicates
SELECT event, count(*), count(*) FILTER (WHERE merged) FROM ingest_duplicates
 WHERE at >= %(lo)s AND at < %(hi)s GROUP BY event

-- name: window_ingest_rejections
SELECT event, field, reason, count(*) FROM ingest_rejections
 WHERE at >= %(lo)s AND at < %(hi)s GROUP BY event, field, reason

-- name: window_deliveries
-- In flight counts as pending: a claim changes no count (nor a stored minute).
SELECT d.destination, e.name, d.dest_event,
       CASE d.state WHEN 'in_flight' THEN 'pending' ELSE d.state END AS st, d.dead_reason,
       count(*)
  FROM deliveries AS d JOIN events AS e ON e.id = d.event_ref
 WHERE d.created_at >= %(lo)s AND d.created_at < %(hi)s
 GROUP BY d.destination, e.name, d.dest_event, st, d.dead_reason

-- name: window_dead
SELECT d.destination, e.name, d.dead_reason, d.last_code, d.last_message, count(*)
  FROM deliveries AS d JOIN events AS e ON e.id = d.event_ref
 WHERE d.created_at >= %(lo)s AND d.created_at < %(hi)s AND d.state = 'dead'
 GROUP BY d.destination, e.name, d.dead_reason, d.last_code, d.last_message

-- name: window_coverage
-- Coverage of what is (or will be) sent: events with a delivered or pending delivery, each
-- counted in the range of its newest such delivery (a replayed one restarts created_at).
-- Each key from events.match_keys (bit i = store.codec.MATCH_KEY_BITS[i]), else the body:
-- a list counts when it is a non-empty array (SQLite's json_array_length is 0 otherwise),
-- a scalar when it is present, not null and not empty. Bits 3 and 4 are click and browser
-- ids a destination type declares (bits 3, 4, 12, 13), named by id_key_<bit>
-- (store.codec.ID_KEY_PARAMS).
SELECT e.name, min(r.dest_event), count(*),
       count(*) FILTER (WHERE CASE WHEN e.match_keys IS NULL THEN jsonb_typeof(e.body #> '{user,email}') = 'array' AND jsonb_array_length(e.body #> '{user,email}') > 0
                              ELSE (e.match_keys & 1) <> 0 END),
       count(*) FILTER (WHERE CASE WHEN e.match_keys IS NULL THEN jsonb_typeof(e.body #> '{user,phone}') = 'array' AND jsonb_array_length(e.body #> '{user,phone}') > 0
                              ELSE (e.match_keys & 2) <> 0 END),
       count(*) FILTER (WHERE CASE WHEN e.match_keys IS NULL THEN jsonb_typeof(e.body #> '{user,external_id}') = 'array' AND jsonb_array_length(e.body #> '{user,external_id}') > 0
                              ELSE (e.match_keys & 4) <> 0 END),
       count(*) FILTER (WHERE CASE WHEN e.match_keys IS NULL THEN coalesce(e.body -> 'user' ->> %(id_key_3)s, '') <> ''
                              ELSE (e.match_keys & 8) <> 0 END),
       count(*) FILTER (WHERE CASE WHEN e.match_keys IS NULL THEN coalesce(e.body -> 'user' ->> %(id_key_4)s, '') <> ''
                              ELSE (e.match_keys & 16) <> 0 END),
       count(*) FILTER (WHERE CASE WHEN e.match_keys IS NULL THEN coalesce(e.body #>> '{user,ip}', '') <> '' AND coalesce(e.body #>> '{user,user_agent}', '') <> ''
                              ELSE (e.match_keys & 32) <> 0 END),
       count(*) FILTER (WHERE CASE WHEN e.match_keys IS NULL THEN coalesce(e.body #>> '{user,first_name}', '') <> ''
                              ELSE (e.match_keys & 64) <> 0 END),
       count(*) FILTER (WHERE CASE WHEN e.match_keys IS NULL THEN coalesce(e.body #>> '{user,last_name}', '') <> ''
                              ELSE (e.match_keys & 128) <> 0 END),
       count(*) FILTER (WHERE CASE WHEN e.match_keys IS NULL THEN coalesce(e.body #>> '{user,zip_code}', '') <> ''
                              ELSE (e.match_keys & 256) <> 0 END),
       count(*) FILTER (WHERE CASE WHEN e.match_keys IS NULL THEN coalesce(e.body #>> '{user,city}', '') <> ''
                              ELSE (e.match_keys & 512) <> 0 END),
       count(*) FILTER (WHERE CASE WHEN e.match_keys IS NULL THEN coalesce(e.body #>> '{user,state}', '') <> ''
                              ELSE (e.match_keys & 1024) <> 0 END),
       count(*) FILTER (WHERE CASE WHEN e.match_keys IS NULL THEN coalesce(e.body #>> '{user,country}', '') <> ''
                              ELSE (e.match_keys & 2048) <> 0 END),
       count(*) FILTER (WHERE CASE WHEN e.match_keys IS NULL THEN coalesce(e.body -> 'user' ->> %(id_key_12)s, '') <> ''
                              ELSE (e.match_keys & 4096) <> 0 END),
       count(*) FILTER (WHERE CASE WHEN e.match_keys IS NULL THEN coalesce(e.body -> 'user' ->> %(id_key_13)s, '') <> ''
                              ELSE (e.match_keys & 8192) <> 0 END)
  FROM (SELECT d.event_ref, min(d.dest_event) AS dest_event FROM deliveries AS d
         WHERE d.created_at >= %(lo)s AND d.created_at < %(hi)s
           AND d.state IN ('delivered', 'pending', 'in_flight')
           AND NOT EXISTS (SELECT 1 FROM deliveries AS l
                            WHERE l.event_ref = d.event_ref AND l.created_at >= %(hi)s
                              AND l.state IN ('delivered', 'pending', 'in_flight'))
         GROUP BY d.event_ref) AS r
  -- The range's events by primary key, so the work grows with the range, not the table:
  -- OFFSET 0 keeps the planner from a hash join over every event (docs/postgres.md).
  CROSS JOIN LATERAL (SELECT name, body, match_keys FROM events WHERE id = r.event_ref
                       OFFSET 0) AS e
 GROUP BY e.name

-- name: window_notices
SELECT event, field, kind, count(*) FROM ingest_notices WHERE at >= %(lo)s AND at < %(hi)s
 GROUP BY event, field, kind

-- name: window_collect_refusals
SELECT reason, origin, count(*) FROM collect_refusals WHERE at >= %(lo)s AND at < %(hi)s
 GROUP BY reason, origin

-- name: window_dedup
-- Server-side arrivals (stored or absorbed as duplicates) whose event_id the browser also
-- sent, at most 48 h (172,800 s) before the arrival's minute or any time after: browser
-- copies usually come first. Per arrival, so any split of the window counts the same.
WITH arrivals AS (
    SELECT e.name AS name, e.event_id AS event_id, e.received_at AS at FROM events AS e
     WHERE e.received_at >= %(lo)s AND e.received_at < %(hi)s AND coalesce(e.channel, e.body ->> 'channel', 'server') <> 'browser'
    UNION ALL
    SELECT event, event_id, at FROM ingest_duplicates
     WHERE at >= %(lo)s AND at < %(hi)s AND channel <> 'browser')
SELECT a.name, count(*),
       count(*) FILTER (WHERE EXISTS (
                    SELECT 1 FROM events AS e
                     WHERE e.event_id = a.event_id AND e.received_at >= floor(a.at / 60) * 60 - 172800
                       AND coalesce(e.channel, e.body ->> 'channel', 'server') = 'browser')
                 OR EXISTS (
                    SELECT 1 FROM ingest_duplicates AS x
                     WHERE x.event_id = a.event_id AND x.at >= floor(a.at / 60) * 60 - 172800
                       AND x.channel = 'browser'))
  FROM arrivals AS a GROUP BY a.name

-- name: window_enrichment
SELECT e.name, count(*),
       count(*) FILTER (WHERE CASE WHEN e.enriched IS NULL
                                   THEN (e.body ->> 'enriched_from') IS NOT NULL
                                   ELSE e.enriched = 1 END)
  FROM events AS e
 WHERE e.received_at >= %(lo)s AND e.received_at < %(hi)s AND coalesce(e.channel, e.body ->> 'channel', 'server') <> 'browser'
 GROUP BY e.name

-- name: window_trend_received
SELECT floor(received_at / 60)::bigint AS m, count(*) FROM events
 WHERE received_at >= %(lo)s AND received_at < %(hi)s GROUP BY m

-- name: window_trend_delivered
-- By the minute of delivery, for the deliveries accepted in the range.
SELECT floor(delivered_at / 60)::bigint AS m, count(*) FROM deliveries
 WHERE created_at >= %(lo)s AND created_at < %(hi)s AND state = 'delivered'
   AND delivered_at IS NOT NULL GROUP BY m

-- name: window_latencies
-- Read exactly, not per range: the newest deliveries of the window are a sample.
SELECT destination, delivered_at - created_at FROM deliveries
 WHERE created_at >= %(since)s AND state = 'delivered' AND delivered_at IS NOT NULL
 ORDER BY created_at DESC LIMIT %(sample)s

-- name: window_hours
-- Stored hours wholly in the window with no dirty minute.
SELECT hour, rows FROM window_hours
 WHERE hour >= %(first_hour)s AND hour NOT IN (SELECT minute / 60 FROM window_dirty)

-- name: window_minutes
-- Clean stored minutes of the window outside the hours above.
SELECT minute, rows FROM window_minutes
 WHERE minute >= %(first)s AND minute NOT IN (SELECT minute FROM window_dirty)
   AND minute / 60 NOT IN (
       SELECT hour FROM window_hours
        WHERE hour >= %(first_hour)s AND hour NOT IN (SELECT minute / 60 FROM window_dirty))

-- name: rollup_lock
-- One process computes minutes at a time; the others skip their turn.
SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.window_minutes'))

-- name: rollup_busy
-- The minutes of [lo, hi) that hold any row a window query counts; the rest are empty.
SELECT DISTINCT floor(t / 60)::bigint FROM (
    SELECT received_at AS t FROM events WHERE received_at >= %(lo)s AND received_at < %(hi)s
    UNION ALL SELECT created_at FROM deliveries WHERE created_at >= %(lo)s AND created_at < %(hi)s
    UNION ALL SELECT at FROM ingest_duplicates WHERE at >= %(lo)s AND at < %(hi)s
    UNION ALL SELECT at FROM ingest_rejections WHERE at >= %(lo)s AND at < %(hi)s
    UNION ALL SELECT at FROM ingest_notices WHERE at >= %(lo)s AND at < %(hi)s
    UNION ALL SELECT at FROM collect_refusals WHERE at >= %(lo)s AND at < %(hi)s) AS x

-- name: rollup_first
-- The time of the oldest row a window query counts (each an index's first entry), or NULL:
-- the minutes before it are empty, and stay so (rows come in with the time they come in).
SELECT min(t) FROM (
    SELECT min(received_at) AS t FROM events
    UNION ALL SELECT min(created_at) FROM deliveries
    UNION ALL SELECT min(at) FROM ingest_duplicates
    UNION ALL SELECT min(at) FROM ingest_rejections
    UNION ALL SELECT min(at) FROM ingest_notices
    UNION ALL SELECT min(at) FROM collect_refusals) AS x

-- name: rollup_stored
SELECT minute FROM window_minutes

-- name: rollup_dirty
SELECT id, minute FROM window_dirty

-- name: rollup_forget
DELETE FROM window_minutes WHERE minute < %(oldest)s

-- name: rollup_forget_dirty
DELETE FROM window_dirty WHERE minute < %(oldest)s

-- name: rollup_store
INSERT INTO window_minutes (minute, computed_at, rows)
VALUES (%(minute)s, %(now)s, %(rows)s)
ON CONFLICT (minute) DO UPDATE SET computed_at = excluded.computed_at, rows = excluded.rows

-- name: rollup_clean
-- Only the marks read before the minute was computed: one committed since stays.
DELETE FROM window_dirty WHERE id = ANY(%(ids)s)

-- name: rollup_hour
-- An hour's stored minutes, and whether any of them is dirty.
SELECT (SELECT count(*) FROM window_dirty WHERE minute >= %(lo)s AND minute < %(hi)s),
       rows
  FROM window_minutes WHERE minute >= %(lo)s AND minute < %(hi)s

-- name: rollup_store_hour
INSERT INTO window_hours (hour, computed_at, rows) VALUES (%(hour)s, %(now)s, %(rows)s)
ON CONFLICT (hour) DO UPDATE SET computed_at = excluded.computed_at, rows = excluded.rows

-- name: rollup_drop_hour
DELETE FROM window_hours WHERE hour = %(hour)s

-- name: rollup_forget_hours
DELETE FROM window_hours WHERE hour < %(oldest)s

-- name: rollup_drop
DELETE FROM window_minutes

-- name: rollup_drop_hours
DELETE FROM window_hours

-- name: queue
SELECT (SELECT count(*) FROM deliveries WHERE destination = %(d)s AND state = 'pending'),
       (SELECT count(*) FROM deliveries WHERE destination = %(d)s AND state = 'in_flight'),
       (SELECT created_at FROM deliveries WHERE destination = %(d)s AND state = 'pending'
         ORDER BY created_at LIMIT 1),
       (SELECT paused FROM destinations WHERE name = %(d)s),
       (SELECT reason FROM destinations WHERE name = %(d)s),
       (SELECT updated_at FROM destinations WHERE name = %(d)s)

-- name: window_queue_head
-- A destination's queue beside a window from since (rollup.queues): what waits from before
-- it (the window counts its own), what is in flight, the oldest pending row, the pause. Each
-- count reads a partial index of waiting rows, and only rows older than the window.
SELECT (SELECT count(*) FROM deliveries
         WHERE destination = %(d)s AND state = 'pending' AND created_at < %(since)s)
     + (SELECT count(*) FROM deliveries
         WHERE destination = %(d)s AND state = 'in_flight' AND created_at < %(since)s),
       (SELECT count(*) FROM deliveries WHERE destination = %(d)s AND state = 'in_flight'),
       (SELECT created_at FROM deliveries WHERE destination = %(d)s AND state = 'pending'
         ORDER BY created_at LIMIT 1),
       (SELECT paused FROM destinations WHERE name = %(d)s),
       (SELECT reason FROM destinations WHERE name = %(d)s),
       (SELECT updated_at FROM destinations WHERE name = %(d)s)

-- name: recent_by_id
-- An event_id prefix is found through the idempotency key (indexed on event_id first;
-- COLLATE "C" makes the range the prefix, as in SQLite).
SELECT e.event_id, e.name, e.received_at, coalesce(e.channel, e.body ->> 'channel', 'server'),
       (SELECT string_agg(d.destination || ':' || d.state, ', '
                          ORDER BY d.destination, d.dest_event COLLATE "C")
          FROM deliveries AS d WHERE d.event_ref = e.id)
  FROM events AS e
 WHERE e.id IN (SELECT d.event_ref FROM idempotency AS i JOIN deliveries AS d
                    ON d.id = i.delivery_id
                 WHERE i.event_id >= %(q)s AND i.event_id < %(hi)s LIMIT 500)
   AND (%(channel)s::text = '' OR coalesce(e.channel, e.body ->> 'channel', 'server') = %(channel)s)
   AND (%(dest)s::text = '' AND %(state)s::text = ''
        OR EXISTS (SELECT 1 FROM deliveries AS f WHERE f.event_ref = e.id
                      AND (%(dest)s::text = '' OR f.destination = %(dest)s)
                      AND (%(state)s::text = '' OR f.state = %(state)s)))
 ORDER BY e.id DESC LIMIT %(limit)s

-- name: recent
-- Newest first; a state or destination filter holds on one delivery of the event.
SELECT e.event_id, e.name, e.received_at, coalesce(e.channel, e.body ->> 'channel', 'server'),
       (SELECT string_agg(d.destination || ':' || d.state, ', '
                          ORDER BY d.destination, d.dest_event COLLATE "C")
          FROM deliveries AS d WHERE d.event_ref = e.id)
  FROM events AS e
 WHERE (%(name)s::text = '' OR e.name = %(name)s)
   AND (%(channel)s::text = '' OR coalesce(e.channel, e.body ->> 'channel', 'server') = %(channel)s)
   AND (%(dest)s::text = '' AND %(state)s::text = ''
        OR EXISTS (SELECT 1 FROM deliveries AS f WHERE f.event_ref = e.id
                      AND (%(dest)s::text = '' OR f.destination = %(dest)s)
                      AND (%(state)s::text = '' OR f.state = %(state)s)))
 ORDER BY e.id DESC LIMIT %(limit)s

-- name: trace
SELECT d.destination, d.dest_event, d.state, d.attempts, d.last_code, d.last_message,
       d.last_request_id, d.dead_reason, d.reason, d.created_at, d.delivered_at, d.payload,
       e.body::text, d.updated_at
  FROM idempotency AS i
  JOIN deliveries AS d ON d.id = i.delivery_id
  JOIN events AS e ON e.id = d.event_ref
 WHERE i.event_id = %s
 ORDER BY d.destination, d.dest_event

-- name: trace_attempts
-- Requests that carried the event: attempts of its destination between acceptance and
-- last update.
SELECT a.at, a.http_status, a.code, a.message, a.request_id, a.latency_ms, a.outcome,
       cardinality(a.event_ids)
  FROM attempts AS a
 WHERE a.destination = %s AND a.at >= %s AND a.at <= %s AND %s = ANY(a.event_ids)
 ORDER BY a.at, a.id
