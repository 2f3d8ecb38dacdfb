-- Named queries of the SQLite outbox (store/sqlite/outbox.py). Each starts with a "-- name:" line.

-- name: claim_idempotency
-- Inserts a new key, or re-accepts one older than the window; no change = duplicate.
INSERT INTO idempotency (event_id, destination, dest_event, accepted_at, delivery_id)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (event_id, destination, dest_event) DO UPDATE
    SET accepted_at = excluded.accepted_at, delivery_id = excluded.delivery_id
    WHERE idempotency.accepted_at <= ?

-- name: last_event_ref
SELECT coalesce(max(id), 0) FROM events

-- name: last_delivery_id
SELECT coalesce(max(id), 0) FROM deliveries

-- name: insert_event
INSERT INTO events (id, event_id, name, source, event_time, received_at, session_id,
                    order_source, body, channel, enriched, match_keys)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: insert_delivery
INSERT INTO deliveries (id, event_ref, destination, dest_event, event_id, batch_key, state,
                        payload, reason, next_attempt_at, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: pending_copy
-- The first copy of an idempotency key, when its delivery is still waiting to be sent.
SELECT d.id, d.event_ref, e.body, d.destination
  FROM idempotency AS i
  JOIN deliveries AS d ON d.id = i.delivery_id
  JOIN events AS e ON e.id = d.event_ref
 WHERE i.event_id = ? AND i.destination = ? AND i.dest_event = ? AND d.state = 'pending'

-- name: update_event_body
-- The merged body may hold more keys: its facets are read from it again.
UPDATE events SET body = ?, channel = NULL, enriched = NULL, match_keys = NULL WHERE id = ?

-- name: update_pending_copy
-- A merged copy's new item; :due (not null) ends a hold. Only while still pending.
UPDATE deliveries
   SET state = :state, payload = :payload, reason = :reason, updated_at = :now,
       next_attempt_at = CASE WHEN :state != 'pending' THEN NULL
                              ELSE coalesce(:due, next_attempt_at) END
 WHERE id = :id AND state = 'pending'

-- name: claim
-- One request's worth of one batch_key: the key of the oldest due row, topped up with the other
-- due rows of that key, so a request never goes out half-empty while due rows of its key wait.
-- Due: next_attempt_at has come, or (while a destination drains the backlog of an outage) the
-- row waits on a retry (it was attempted: a held row never was) scheduled before
-- :retry_before; :due_by bounds the index range (:now, or +inf while draining).
UPDATE deliveries
   SET state = 'in_flight', lease_token = :token, lease_expires_at = :lease_expires_at,
       updated_at = :now
 WHERE id IN (
       SELECT id FROM deliveries
        WHERE destination = :destination AND state = 'pending'
          AND batch_key = (SELECT batch_key FROM deliveries
                            WHERE destination = :destination AND state = 'pending'
                              AND next_attempt_at <= :due_by
                              AND (next_attempt_at <= :now
                                   OR (attempts > 0 AND updated_at < :retry_before))
                            ORDER BY next_attempt_at, id
                            LIMIT 1)
          AND next_attempt_at <= :due_by
          AND (next_attempt_at <= :now OR (attempts > 0 AND updated_at < :retry_before))
        ORDER BY next_attempt_at, id
        LIMIT :limit)
RETURNING id, event_id, dest_event, batch_key, payload, attempts, created_at,
          next_attempt_at, retry_streak, suspect

-- name: finish_attempt
-- A result of a request: counts as an attempt and replaces the last_* columns. One statement
-- per distinct outcome (:ids a JSON array): a delivered batch of 1,000 is a single UPDATE.
UPDATE deliveries
   SET state = :state, attempts = attempts + 1, next_attempt_at = :next_attempt_at,
       retry_streak = :retry_streak, suspect = :suspect,
       lease_token = NULL, lease_expires_at = NULL, updated_at = :now,
       delivered_at = CASE WHEN :state = 'delivered' THEN :now ELSE delivered_at END,
       last_http_status = :http_status, last_code = :code, last_message = :message,
       last_request_id = :request_id, dead_reason = :dead_reason
 WHERE id IN (SELECT value FROM json_each(:ids))
   AND lease_token = :token AND state = 'in_flight'

-- name: finish_note
-- A result without a request (pause, expiry at pickup): keeps attempts and the last answer.
UPDATE deliveries
   SET state = :state, next_attempt_at = :next_attempt_at,
       lease_token = NULL, lease_expires_at = NULL, updated_at = :now,
       delivered_at = CASE WHEN :state = 'delivered' THEN :now ELSE delivered_at END,
       last_message = coalesce(:message, last_message), dead_reason = :dead_reason
 WHERE id IN (SELECT value FROM json_each(:ids))
   AND lease_token = :token AND state = 'in_flight'

-- name: insert_attempt
INSERT INTO attempts (destination, event_ids, http_status, code, message, request_id,
                      latency_ms, outcome, at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: recover_in_flight
-- On open: whatever was in flight when the process died is sent again.
UPDATE deliveries
   SET state = 'pending', lease_token = NULL, lease_expires_at = NULL
 WHERE state = 'in_flight'

-- name: reap_leases
UPDATE deliveries
   SET state = 'pending', lease_token = NULL, lease_expires_at = NULL, updated_at = :now
 WHERE state = 'in_flight' AND lease_expires_at < :now

-- name: expire
UPDATE deliveries
   SET state = 'dead', dead_reason = 'expired', next_attempt_at = NULL, updated_at = :now
 WHERE destination = :destination AND state = 'pending' AND created_at < :cutoff

-- name: next_due
-- ORDER BY .. LIMIT 1 rather than min(): guaranteed to read one entry of deliveries_due.
SELECT next_attempt_at FROM deliveries
 WHERE destination = ? AND state = 'pending'
 ORDER BY next_attempt_at LIMIT 1

-- name: get_destination
SELECT name, paused, reason, token_fingerprint, updated_at FROM destinations WHERE name = ?

-- name: set_destination
INSERT INTO destinations (name, paused, reason, token_fingerprint, updated_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE
    SET paused = excluded.paused, reason = excluded.reason,
        token_fingerprint = excluded.token_fingerprint, updated_at = excluded.updated_at

-- name: deliveries_by_event
SELECT d.destination, d.event_id, d.dest_event, d.state, d.attempts, d.last_http_status,
       d.last_code, d.last_message, d.last_request_id, d.dead_reason, d.reason, d.created_at,
       d.updated_at, d.next_attempt_at
  FROM idempotency AS i
  JOIN deliveries AS d ON d.id = i.delivery_id
 WHERE i.event_id = ?
 ORDER BY d.created_at, d.id

-- name: admin_session_open
INSERT INTO admin_sessions (id_hash, created_at, expires_at) VALUES (:id_hash, :now, :expires_at)

-- name: admin_sessions_prune
DELETE FROM admin_sessions WHERE expires_at <= :now

-- name: admin_session_valid
SELECT 1 FROM admin_sessions WHERE id_hash = :id_hash AND expires_at > :now

-- name: admin_session_close
DELETE FROM admin_sessions WHERE id_hash = :id_hash

-- name: heartbeat
INSERT INTO processes (process_id, role, seen_at) VALUES (:id, :role, :now)
ON CONFLICT (process_id) DO UPDATE SET role = excluded.role, seen_at = excluded.seen_at

-- name: forget_silent
DELETE FROM processes WHERE seen_at < :cutoff

-- name: count_alive
SELECT count(*) FROM processes WHERE role = :role

-- name: leave
DELETE FROM processes WHERE process_id = :id

-- name: prune_pick_deliveries
-- Retention: finished rows accepted before the cut-off, oldest first, a small batch a call.
SELECT id, event_id, destination, dest_event, event_ref FROM deliveries
 WHERE created_at < :cutoff AND state IN ('delivered', 'dead', 'suppressed', 'filtered')
 ORDER BY created_at LIMIT :limit

-- name: prune_key
-- The idempotency key of a pruned delivery, if it still points at it (long out of its window).
DELETE FROM idempotency
 WHERE event_id = ? AND destination = ? AND dest_event = ? AND delivery_id = ?

-- name: prune_delivery
DELETE FROM deliveries WHERE id = ?

-- name: prune_freed_event
-- An event of a delivery just pruned, once none of its deliveries is left.
DELETE FROM events
 WHERE id = ? AND NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.event_ref = events.id)

-- name: prune_events
-- The sweep for the rest (events that never had a delivery): old events no delivery refers
-- to, looked for only before the oldest delivery, so the scan never walks the events whose
-- deliveries retention has yet to reach.
DELETE FROM events
 WHERE id IN (SELECT e.id FROM events AS e
               WHERE e.received_at < min(:cutoff, coalesce(
                         (SELECT created_at FROM deliveries ORDER BY created_at LIMIT 1),
                         :cutoff))
                 AND NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.event_ref = e.id)
               ORDER BY e.received_at LIMIT :limit)

-- name: prune_attempts
DELETE FROM attempts
 WHERE id IN (SELECT id FROM attempts WHERE at < :cutoff ORDER BY at LIMIT :limit)
