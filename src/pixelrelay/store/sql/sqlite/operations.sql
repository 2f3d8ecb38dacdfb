-- Named queries of the ops commands on SQLite (store/sqlite/operations.py).

-- name: replay_count
SELECT count(*)
  FROM deliveries AS d
  JOIN events AS e ON e.id = d.event_ref
 WHERE d.destination = :destination
   AND d.state IN (SELECT value FROM json_each(:states))
   AND (:since IS NULL OR e.received_at >= :since)
   AND (:until IS NULL OR e.received_at < :until)
   AND (:event IS NULL OR e.name = :event OR d.dest_event = :event)

-- name: replay_page
-- Keyset pagination by delivery id. superseded: a later copy of the same key holds it.
SELECT d.id, d.event_id, d.dest_event, d.state, d.delivered_at,
       coalesce(i.delivery_id, d.id) != d.id, e.body
  FROM deliveries AS d
  JOIN events AS e ON e.id = d.event_ref
  LEFT JOIN idempotency AS i
    ON i.event_id = d.event_id AND i.destination = d.destination AND i.dest_event = d.dest_event
 WHERE d.destination = :destination
   AND d.state IN (SELECT value FROM json_each(:states))
   AND (:since IS NULL OR e.received_at >= :since)
   AND (:until IS NULL OR e.received_at < :until)
   AND (:event IS NULL OR e.name = :event OR d.dest_event = :event)
   AND d.id > :after
 ORDER BY d.id LIMIT :limit

-- name: key_holder
SELECT delivery_id, accepted_at FROM idempotency
 WHERE event_id = ? AND destination = ? AND dest_event = ?

-- name: requeue
-- created_at restarts because the worker gives up on rows older than its 48 h retry window,
-- counted from created_at; the accept time stays in events.received_at.
UPDATE deliveries
   SET state = 'pending', dest_event = :dest_event, batch_key = :batch_key, payload = :payload,
       reason = NULL, attempts = 0, retry_streak = 0, suspect = 0, next_attempt_at = :now,
       lease_token = NULL, lease_expires_at = NULL, created_at = :now, updated_at = :now,
       delivered_at = NULL,
       last_http_status = NULL, last_code = NULL, last_message = :note,
       last_request_id = NULL, dead_reason = NULL
 WHERE id = :id AND state = :old_state

-- name: move_key
-- The key follows its delivery (whose name may have changed) and restarts the 48 h window,
-- so the same event arriving again now is a duplicate, as it is for TikTok.
UPDATE idempotency SET dest_event = ?, accepted_at = ? WHERE delivery_id = ? AND destination = ?

-- name: drop_key
DELETE FROM idempotency WHERE event_id = ? AND destination = ? AND dest_event = ?

-- name: purchases
SELECT d.event_id, e.name, d.dest_event, d.state, d.reason, d.dead_reason, d.attempts,
       d.last_code, d.last_message, e.event_time, e.received_at, e.body
  FROM deliveries AS d
  JOIN events AS e ON e.id = d.event_ref
 WHERE d.destination = :destination
   AND (e.name IN (SELECT value FROM json_each(:names))
        OR d.dest_event IN (SELECT value FROM json_each(:names)))
 ORDER BY d.id

-- name: rejected_orders
SELECT order_id, event, field, reason, at FROM ingest_rejections
 WHERE order_id IS NOT NULL ORDER BY at
