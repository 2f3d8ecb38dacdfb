-- Named queries of the PostgreSQL outbox (store/postgres/outbox.py). Each starts with a
-- "-- name:" line; parameters are psycopg's %(name)s.

-- name: allocate_ids
-- Ids for one insert call, taken before its rows are written so that idempotency can point
-- at the delivery it creates and everything goes in with one statement per table. A
-- duplicate wastes its ids: sequences have gaps anyway.
SELECT ARRAY(SELECT nextval('events_id_seq') FROM generate_series(1, %(events)s)),
       ARRAY(SELECT nextval('deliveries_id_seq') FROM generate_series(1, %(deliveries)s))

-- name: claim_idempotency
-- Inserts each new key, or re-accepts one older than the window; a key not returned is a
-- duplicate. Another process inserting the same key waits here for this one's commit: the
-- database decides, across processes. Rows come sorted by key, so two processes lock
-- overlapping keys in the same order. Each row carries its own call's time.
-- The rows of this and the inserts below arrive as one JSON array each: psycopg dumps array
-- parameters element by element in Python, which cost more than the rest of a batch's writes.
INSERT INTO idempotency AS i (event_id, destination, dest_event, accepted_at, delivery_id)
SELECT r ->> 0, r ->> 1, r ->> 2, (r ->> 3)::float8, (r ->> 4)::bigint
  FROM jsonb_array_elements(%(keys)s::jsonb) AS r
ON CONFLICT (event_id, destination, dest_event) DO UPDATE
    SET accepted_at = excluded.accepted_at, delivery_id = excluded.delivery_id
    WHERE i.accepted_at <= excluded.accepted_at - %(window)s
RETURNING delivery_id

-- name: insert_events
-- Each row's body is embedded as the JSON document it is and stored as that jsonb.
INSERT INTO events (id, event_id, name, source, event_time, received_at, session_id,
                    order_source, body, channel, enriched, match_keys)
SELECT (r ->> 0)::bigint, r ->> 1, r ->> 2, r ->> 3, (r ->> 4)::bigint, (r ->> 5)::float8,
       r ->> 6, r ->> 7, r -> 8, r ->> 9, (r ->> 10)::integer, (r ->> 11)::integer
  FROM jsonb_array_elements(%(rows)s::jsonb) AS r

-- name: insert_deliveries
-- The payload arrives as a JSON string and is stored as its UTF-8 bytes, unchanged.
INSERT INTO deliveries (id, event_ref, destination, dest_event, event_id, batch_key, state,
                        payload, reason, next_attempt_at, created_at, updated_at)
SELECT (r ->> 0)::bigint, (r ->> 1)::bigint, r ->> 2, r ->> 3, r ->> 4, r ->> 5, r ->> 6,
       convert_to(r ->> 7, 'UTF8'), r ->> 8, (r ->> 9)::float8, (r ->> 10)::float8,
       (r ->> 10)::float8
  FROM jsonb_array_elements(%(rows)s::jsonb) AS r

-- name: notify
-- Sent inside the insert's transaction: delivered on commit, dropped with a rollback.
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
