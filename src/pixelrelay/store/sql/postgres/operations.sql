-- Named queries of the ops commands on PostgreSQL (store/postgres/operations.py).

-- name: replay_count
SELECT count(*)
  FROM deliveries AS d
  JOIN events AS e ON e.id = d.event_ref
 WHERE d.destination = %(destination)s
   AND d.state = ANY(%(states)s::text[])
   AND (%(since)s::float8 IS NULL OR e.received_at >= %(since)s)
   AND (%(until)s::float8 IS NULL OR e.received_at < %(until)s)
   AND (%(event)s::text IS NULL OR e.name = %(event)s OR d.dest_event = %(event)s)

-- name: replay_page
-- Keyset pagination by delivery id. superseded: a later copy of the same key holds it.
SELECT d.id, d.event_id, d.dest_event, d.state, d.delivered_at,
       coalesce(i.delivery_id, d.id) <> d.id, e.body::text
  FROM deliveries AS d
  JOIN events AS e ON e.id = d.event_ref
  LEFT JOIN idempotency AS i
    ON i.event_id = d.event_id AND i.destination = d.destination AND i.dest_event = d.dest_event
 WHERE d.destination = %(destination)s
   AND d.state = ANY(%(states)s::text[])
   AND (%(since)s::float8 IS NULL OR e.received_at >= %(since)s)
   AND (%(until)s::float8 IS NULL OR e.received_at < %(until)s)
   AND (%(event)s::text IS NULL OR e.name = %(event)s OR d.dest_event = %(event)s)
   AND d.id > %(after)s
 ORDER BY d.id LIMIT %(limit)s

-- name: key_holder
SELECT delivery_id, accepted_at FROM idempotency
 WHERE event_id = %s AND destination = %s AND dest_event = %s

-- name: key_holder_for_update
-- Requeue decides on the key and then takes it: locked, so an insert of the same event in
-- another process waits for the decision instead of racing it.
SELECT delivery_id, accepted_at FROM idempotency
 WHERE event_id = %s AND destination = %s AND dest_event = %s
   FOR UPDATE

-- name: requeue
-- created_at restarts because the worker gives up on rows older than its 48 h retry window,
-- counted from created_at; the accept time stays in events.received_at.
UPDATE deliveries
   SET state = 'pending', dest_event = %(dest_event)s, batch_key = %(batch_key)s,
       payload = %(payload)s, reason = NULL, attempts = 0, next_attempt_at = %(now)s,
       retry_streak = 0, suspect = false, lease_token = NULL, lease_expires_at = NULL, created_at = %(now)s,
       updated_at = %(now)s, delivered_at = NULL, last_http_status = NULL, last_code = NULL,
       last_message = %(note)s, last_request_id = NULL, dead_reason = NULL
 WHERE id = %(id)s AND state = %(old_state)s

-- name: move_key
-- The key follows its delivery (whose name may have changed) and restarts the 48 h window,
-- so the same event arriving again now is a duplicate, as it is for TikTok.
UPDATE idempotency SET dest_event = %s, accepted_at = %s
 WHERE delivery_id = %s AND destination = %s

-- name: drop_key
DELETE FROM idempotency WHERE event_id = %s AND destination = %s AND dest_event = %s

-- name: notify
SELECT pg_notify('pixelrelay_work', %s)

-- name: purchases
SELECT d.event_id, e.name, d.dest_event, d.state, d.reason, d.dead_reason, d.attempts,
       d.last_code, d.last_message, e.event_time, e.received_at,
       coalesce(e.body -> 'properties', '{}')::text
  FROM deliveries AS d
  JOIN events AS e ON e.id = d.event_ref
 WHERE d.destination = %(destination)s
   AND (e.name = ANY(%(names)s::text[]) OR d.dest_event = ANY(%(names)s::text[]))
 ORDER BY d.id

-- name: rejected_orders
SELECT order_id, event, field, reason, at FROM ingest_rejections
 WHERE order_id IS NOT NULL ORDER BY at
