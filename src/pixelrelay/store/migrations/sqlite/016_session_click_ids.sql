-- A session's click and browser ids are one map, whatever destination type declares them:
-- the ttclid and ttp columns move into click_ids ({user key: value}, store/session_codec.py)
-- and go. A column's value wins over a key of the same name already in the map (json_patch
-- drops a key whose new value is NULL, so a NULL column removes nothing but its own key).
UPDATE sessions
   SET click_ids = json_patch(coalesce(click_ids, '{}'),
                              json_object('ttclid', ttclid, 'ttp', ttp))
 WHERE ttclid IS NOT NULL OR ttp IS NOT NULL;
UPDATE sessions SET click_ids = NULL WHERE click_ids = '{}';
ALTER TABLE sessions DROP COLUMN ttclid;
ALTER TABLE sessions DROP COLUMN ttp;
-- Identity links are now keyed hashes of the normalised email / external_id (HMAC-SHA256,
-- pipeline/enrich.py identity_keys), no longer the SHA-256 a platform matches on. Links
-- under the old form cannot be converted (a keyed hash of what?): they go, and server
-- events re-create theirs.
DELETE FROM session_identities;
