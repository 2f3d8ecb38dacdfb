-- Named queries of the PostgreSQL outbox (store/postgres/outbox.py). Each starts with a
-- "-- name:" line; parameters are psycopg's %(name)s.

-- name: insert_group
-- The insert calls of one writer group in one statement, so a group costs one round trip
-- (and the COMMIT): ids, idempotency, events, deliveries and the NOTIFY of the destinations
-- given work. Returns the slots (1-based numbers of the routes that offered a key) whose
-- key was taken; a key not taken is a duplicate.
-- `ids`: the ids of the group's events and deliveries, drawn in the calls' order (a claim
-- breaks ties in next_attempt_at by id). Referenced by every part, so drawn once.
-- `taken`: inserts each new key, or re-accepts one older than the window. Another process
-- inserting the same key waits here for this one's commit: the database decides, across
-- processes. Keys come sorted, and are inserted in that order (a scan of the array, no
-- join), so two processes lock overlapping keys in the same order. Each key carries its
-- own call's time.
-- An event goes in when one of its routes took its key, or when it has no route at all
-- (its last field). The rows arrive as one JSON array each: psycopg dumps array parameters
-- element by element in Python, which cost more than the rest of a batch's writes. Each
-- event's body is embedded as the JSON document it is and stored as that jsonb; a payload
-- arrives as a JSON string and is stored as its UTF-8 bytes, unchanged.
-- The NOTIFY is sent inside the transaction: delivered on commit, dropped with a rollback.
WITH ids AS (
    SELECT ARRAY(SELECT nextval('events_id_seq') FROM generate_series(1, %(events)s)) AS refs,
           ARRAY(SELECT nextval('deliveries_id_seq')
                   FROM generate_series(1, %(deliveries)s)) AS dids
),
taken AS (
    INSERT INTO idempotency AS i (event_id, destination, dest_event, accepted_at, delivery_id)
    SELECT k ->> 0, k ->> 1, k ->> 2, (k ->> 3)::float8, ids.dids[(k ->> 4)::int]
      FROM ids, jsonb_array_elements(%(keys)s::jsonb) AS k
    ON CONFLICT (event_id, destination, dest_event) DO UPDATE
        SET accepted_at = excluded.accepted_at, delivery_id = excluded.delivery_id
        WHERE i.accepted_at <= excluded.accepted_at - %(window)s
    RETURNING delivery_id
),
new_routes AS (
    SELECT r, (r ->> 0)::int AS slot, ids.dids[(r ->> 0)::int] AS id,
           ids.refs[(r ->> 1)::int] AS ref
      FROM ids, jsonb_array_elements(%(routes)s::jsonb) AS r
     WHERE ids.dids[(r ->> 0)::int] IN (SELECT delivery_id FROM taken)
),
new_events AS (
    INSERT INTO events (id, event_id, name, source, event_time, received_at, session_id,
                        order_source, body, channel, enriched, match_keys)
    SELECT ids.refs[(r ->> 0)::int], r ->> 1, r ->> 2, r ->> 3, (r ->> 4)::bigint,
           (r ->> 5)::float8, r ->> 6, r ->> 7, r -> 8, r ->> 9, (r ->> 10)::integer,
           (r ->> 11)::integer
      FROM ids, jsonb_array_elements(%(event_rows)s::jsonb) AS r
     WHERE (r ->> 12)::boolean OR ids.refs[(r ->> 0)::int] IN (SELECT ref FROM new_routes)
),
new_deliveries AS (
    INSERT INTO deliveries (id, event_ref, destination, dest_event, event_id, batch_key, state,
                            payload, reason, next_attempt_at, created_at, updated_at)
    SELECT id, ref, r ->> 2, r ->> 3, r ->> 4, r ->> 5, r ->> 6, convert_to(r ->> 7, 'UTF8'),
           r ->> 8, (r ->> 9)::float8, (r ->> 10)::float8, (r ->> 10)::float8
      FROM new_routes
    RETURNING destination, state
)
SELECT ARRAY(SELECT slot FROM new_routes),
       (SELECT count(pg_notify('pixelrelay_work', w.destination))
          FROM (SELECT DISTINCT destination FROM new_deliveries WHERE state = 'pending') AS w)

-- name: notify
-- The destinations a merge made due. Sent inside the insert's transaction: delivered on
-- commit, dropped with a rollback.
SELECT pg_notify('pixelrelay_work', d) FROM unnest(%(destinations)s::text[]) AS d

-- name: pending_copy
-- The first copy of an idempotency key, when its delivery is still waiting to be sent. The
-- row locks keep a claim from taking it half-merged (claims skip locked rows) and make a
-- concurrent merge of the same event wait and then read the body this one wrote.
SELECT d.id, d.event_ref, e.body::text, d.destination
  FROM idempotency AS i
  JOIN deliveries AS d ON d.id = i.delivery_id
  JOIN events AS e ON e.id = d.event_ref
 WHERE i.event_id = %s AND i.destination = %s AND i.dest_event = %s AND d.state = 'pending'
   FOR UPDATE OF d, e

-- name: update_event_body
-- The merged body may hold more keys: its facets are read from it again.
UPDATE events SET body = convert_from(%s, 'UTF8')::jsonb, channel = NULL, enriched = NULL,
                  match_keys = NULL
 WHERE id = %s

-- name: update_pending_copy
-- A merged copy's new item; a due time (not null) ends a hold. Only while still pending.
UPDATE deliveries
   SET state = %(state)s, payload = %(payload)s, reason = %(reason)s, updated_at = %(now)s,
       next_attempt_at = CASE WHEN %(state)s::text <> 'pending' THEN NULL
                              ELSE coalesce(%(due)s::float8, next_attempt_at) END
 WHERE id = %(id)s AND state = 'pending'

-- name: claim
-- SQLite's claim (store/sql/sqlite/outbox.sql) with row locks: one request's worth of one
-- batch_key, the key of the oldest due row, topped up with the other due rows of that key.
-- SKIP LOCKED lets concurrent claimers (other processes) pass each other's rows instead of
-- waiting, and never hands one row to two of them. The transaction ends with the statement:
-- the HTTP request goes out afterwards, covered by the lease alone. `id = ANY(ARRAY(...))`
-- rather than `id IN (...)`: the picked ids are then fetched by primary key, where IN may
-- plan as a hash join over the whole table (docs/postgres.md shows both plans).
UPDATE deliveries
   SET state = 'in_flight', lease_token = %(token)s, lease_expires_at = %(lease_expires_at)s,
       updated_at = %(now)s
 WHERE id = ANY(ARRAY(
       SELECT id FROM deliveries
        WHERE destination = %(destination)s AND state = 'pending'
          AND batch_key = (SELECT batch_key FROM deliveries
                            WHERE destination = %(destination)s AND state = 'pending'
                              AND next_attempt_at <= %(due_by)s
                              AND (next_attempt_at <= %(now)s
                                   OR (attempts > 0 AND updated_at < %(retry_before)s))
                            ORDER BY next_attempt_at, id
                            LIMIT 1
                              FOR UPDATE SKIP LOCKED)
          AND next_attempt_at <= %(due_by)s
          AND (next_attempt_at <= %(now)s OR (attempts > 0 AND updated_at < %(retry_before)s))
        ORDER BY next_attempt_at, id
        LIMIT %(limit)s
          FOR UPDATE SKIP LOCKED))
RETURNING id, event_id, dest_event, batch_key, payload, attempts, created_at,
          next_attempt_at, retry_streak, suspect

-- name: finish_attempt
-- A result of a request: counts as an attempt and replaces the last_* columns. Fenced by the
-- lease token: a row whose lease expired (and was claimed again) is not overwritten.
UPDATE deliveries
   SET state = %(state)s, attempts = attempts + 1, next_attempt_at = %(next_attempt_at)s,
       retry_streak = %(retry_streak)s, suspect = %(suspect)s,
       lease_token = NULL, lease_expires_at = NULL, updated_at = %(now)s,
       delivered_at = CASE WHEN %(state)s::text = 'delivered' THEN %(now)s
                           ELSE delivered_at END,
       last_http_status = %(http_status)s, last_code = %(code)s, last_message = %(message)s,
       last_request_id = %(request_id)s, dead_reason = %(dead_reason)s
 WHERE id = ANY(%(ids)s::bigint[]) AND lease_token = %(token)s AND state = 'in_flight'

-- name: finish_note
-- A result without a request (pause, expiry at pickup): keeps attempts and the last answer.
UPDATE deliveries
   SET state = %(state)s, next_attempt_at = %(next_attempt_at)s,
       lease_token = NULL, lease_expires_at = NULL, updated_at = %(now)s,
       delivered_at = CASE WHEN %(state)s::text = 'delivered' THEN %(now)s
                           ELSE delivered_at END,
       last_message = coalesce(%(message)s::text, last_message),
       dead_reason = %(dead_reason)s
 WHERE id = ANY(%(ids)s::bigint[]) AND lease_token = %(token)s AND state = 'in_flight'

-- name: insert_attempt
INSERT INTO attempts (destination, event_ids, http_status, code, message, request_id,
                      latency_ms, outcome, at)
VALUES (%s, %s::text[], %s, %s, %s, %s, %s, %s, %s)

-- name: reap_leases
-- The row alone says its lease is over: no process needs to be asked, or to be alive.
UPDATE deliveries
   SET state = 'pending', lease_token = NULL, lease_expires_at = NULL, updated_at = %(now)s
 WHERE id = ANY(ARRAY(SELECT id FROM deliveries
                      WHERE state = 'in_flight' AND lease_expires_at < %(now)s
                        FOR UPDATE SKIP LOCKED))

-- name: expire
UPDATE deliveries
   SET state = 'dead', dead_reason = 'expired', next_attempt_at = NULL, updated_at = %(now)s
 WHERE id = ANY(ARRAY(SELECT id FROM deliveries
                      WHERE destination = %(destination)s AND state = 'pending'
                        AND created_at < %(cutoff)s
                        FOR UPDATE SKIP LOCKED))

-- name: next_due
SELECT next_attempt_at FROM deliveries
 WHERE destination = %s AND state = 'pending'
 ORDER BY next_attempt_at LIMIT 1

-- name: get_destination
SELECT name, paused, reason, token_fingerprint, updated_at FROM destinations WHERE name = %s

-- name: set_destination
INSERT INTO destinations (name, paused, reason, token_fingerprint, updated_at)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (name) DO UPDATE
    SET paused = excluded.paused, reason = excluded.reason,
        token_fingerprint = excluded.token_fingerprint, updated_at = excluded.updated_at

-- name: deliveries_by_event
SELECT d.destination, d.event_id, d.dest_event, d.state, d.attempts, d.last_http_status,
       d.last_code, d.last_message, d.last_request_id, d.dead_reason, d.reason, d.created_at,
       d.updated_at, d.next_attempt_at
  FROM idempotency AS i
  JOIN deliveries AS d ON d.id = i.delivery_id
 WHERE i.event_id = %s
 ORDER BY d.created_at, d.id

-- name: admin_session_open
INSERT INTO admin_sessions (id_hash, created_at, expires_at)
VALUES (%(id_hash)s, %(now)s, %(expires_at)s)

-- name: admin_sessions_prune
DELETE FROM admin_sessions WHERE expires_at <= %(now)s

-- name: admin_session_valid
SELECT 1 FROM admin_sessions WHERE id_hash = %(id_hash)s AND expires_at > %(now)s

-- name: admin_session_close
DELETE FROM admin_sessions WHERE id_hash = %(id_hash)s

-- name: heartbeat
INSERT INTO processes (process_id, role, seen_at) VALUES (%(id)s, %(role)s, %(now)s)
ON CONFLICT (process_id) DO UPDATE SET role = excluded.role, seen_at = excluded.seen_at

-- name: forget_silent
DELETE FROM processes WHERE seen_at < %(cutoff)s

-- name: count_alive
SELECT count(*) FROM processes WHERE role = %(role)s

-- name: leave
DELETE FROM processes WHERE process_id = %(id)s

-- name: prune_deliveries
-- Retention: finished rows accepted before the cut-off, oldest first, a small batch per
-- statement (row locks on that batch only; SKIP LOCKED never waits on a worker), with the
-- idempotency keys that still point at them (long out of their 48 h window).
WITH gone AS (
    DELETE FROM deliveries
     WHERE id = ANY(ARRAY(SELECT id FROM deliveries
                          WHERE created_at < %(cutoff)s
                            AND state IN ('delivered', 'dead', 'suppressed', 'filtered')
                          ORDER BY created_at LIMIT %(limit)s
                            FOR UPDATE SKIP LOCKED))
    RETURNING id, event_id, destination, dest_event, event_ref),
keys AS (
    DELETE FROM idempotency AS i USING gone
     WHERE i.event_id = gone.event_id AND i.destination = gone.destination
       AND i.dest_event = gone.dest_event AND i.delivery_id = gone.id)
SELECT event_ref FROM gone

-- name: prune_freed_events
-- The events of the deliveries just pruned, once none of theirs is left (same transaction).
-- "(SELECT ... LIMIT 1) IS NULL" rather than NOT EXISTS: an index probe per event, where an
-- anti join may hash the whole deliveries table.
DELETE FROM events AS e
 WHERE e.id = ANY(%(refs)s::bigint[])
   AND (SELECT 1 FROM deliveries AS d WHERE d.event_ref = e.id LIMIT 1) IS NULL

-- name: prune_events
-- The sweep for the rest (events that never had a delivery): old events no delivery refers
-- to, looked for only before the oldest delivery, so the scan never walks the events whose
-- deliveries retention has yet to reach.
DELETE FROM events
 WHERE id = ANY(ARRAY(
       SELECT e.id FROM events AS e
        WHERE e.received_at < least(%(cutoff)s, coalesce(
                  (SELECT created_at FROM deliveries ORDER BY created_at LIMIT 1), %(cutoff)s))
          AND (SELECT 1 FROM deliveries AS d WHERE d.event_ref = e.id LIMIT 1) IS NULL
        ORDER BY e.received_at LIMIT %(limit)s
          FOR UPDATE SKIP LOCKED))

-- name: prune_attempts
DELETE FROM attempts
 WHERE id = ANY(ARRAY(SELECT id FROM attempts
                      WHERE at < %(cutoff)s ORDER BY at LIMIT %(limit)s))
