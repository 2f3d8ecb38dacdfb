-- A session's click and browser ids are one map, whatever destination type declares them:
-- the ttclid and ttp columns move into click_ids ({user key: value}, store/session_codec.py)
-- and go; a column's value wins over a key of the same name already in the map. The same as
-- SQLite's migration 016.
UPDATE sessions
   SET click_ids = coalesce(click_ids, '{}'::jsonb)
                   || jsonb_strip_nulls(jsonb_build_object('ttclid', ttclid, 'ttp', ttp))
 WHERE ttclid IS NOT NULL OR ttp IS NOT NULL;
ALTER TABLE sessions DROP COLUMN ttclid, DROP COLUMN ttp;
-- Identity links are now keyed hashes of the normalised email / external_id (HMAC-SHA256,
-- pipeline/enrich.py identity_keys), no longer the SHA-256 a platform matches on. Links
-- under the old form cannot be converted: they go, and server events re-create theirs.
DELETE FROM session_identities;
