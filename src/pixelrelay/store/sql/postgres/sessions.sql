-- Named queries of the PostgreSQL session store (store/postgres/sessions.py).

-- name: get
SELECT session_id, ip, user_agent, landing_url, first_seen, last_seen, consent, click_ids
  FROM sessions WHERE session_id = %s

-- name: get_for_update
-- merge_context reads, merges and writes back: the row lock makes concurrent hits of one
-- session (two API processes) merge one after the other instead of losing one.
SELECT session_id, ip, user_agent, landing_url, first_seen, last_seen, consent, click_ids
  FROM sessions WHERE session_id = %s
   FOR UPDATE

-- name: insert_new
-- The first hit of a session; a concurrent first hit that won leaves nothing inserted here.
INSERT INTO sessions (session_id, ip, user_agent, landing_url, first_seen, last_seen,
                      consent, click_ids)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT (session_id) DO NOTHING

-- name: update
UPDATE sessions
   SET ip = %s, user_agent = %s, landing_url = %s, first_seen = %s, last_seen = %s,
       consent = %s, click_ids = %s::jsonb
 WHERE session_id = %s

-- name: link_token
-- A cart or checkout token -> the session it was created in; the latest link wins.
INSERT INTO session_tokens (kind, token, session_id, linked_at) VALUES (%s, %s, %s, %s)
ON CONFLICT (kind, token) DO UPDATE
    SET session_id = excluded.session_id, linked_at = excluded.linked_at

-- name: link_identity
INSERT INTO session_identities (identity, session_id, linked_at)
SELECT * FROM unnest(%(identity)s::text[], %(session_id)s::text[], %(linked_at)s::float8[])
ON CONFLICT (identity, session_id) DO UPDATE SET linked_at = excluded.linked_at

-- name: prune_sessions
DELETE FROM sessions WHERE last_seen < %(cutoff)s

-- name: prune_tokens
DELETE FROM session_tokens WHERE linked_at < %(cutoff)s

-- name: prune_identities
DELETE FROM session_identities WHERE linked_at < %(cutoff)s

-- name: find
-- Every candidate of every lookup in one round trip (the lookups of concurrent requests
-- together, store/coalesce.py): per key (lookup i, its seq-th key) the session by id, by a
-- linked token, or the most recently seen one linked to an identity since the key's cut-off.
-- Python picks by the order of preference (store/postgres/sessions.py), as SQLite's one
-- query per key does.
SELECT k.i, k.seq, k.how, s.session_id, s.ip, s.user_agent, s.landing_url, s.first_seen,
       s.last_seen, s.consent, s.click_ids
  FROM unnest(%(i)s::integer[], %(seq)s::integer[], %(how)s::text[], %(a)s::text[],
              %(b)s::text[], %(since)s::float8[]) AS k (i, seq, how, a, b, since)
  CROSS JOIN LATERAL (
        SELECT s.* FROM sessions AS s WHERE k.how = 'session' AND s.session_id = k.a
        UNION ALL
        SELECT s.* FROM sessions AS s
         WHERE k.how = 'link'
           AND s.session_id = (SELECT t.session_id FROM session_tokens AS t
                                WHERE t.kind = k.a AND t.token = k.b)
        UNION ALL
        (SELECT s.* FROM session_identities AS i JOIN sessions AS s
                ON s.session_id = i.session_id
          WHERE k.how = 'identity' AND i.identity = k.a AND i.linked_at >= k.since
          ORDER BY s.last_seen DESC LIMIT 1)) AS s
