-- Click and browser ids a session holds beyond the ttclid and ttp columns (Meta's fbc and
-- fbp...), as a JSON object {user field: value} (store/session_codec.py); NULL: none.
-- Declared by each destination type (Plugin.session_ids), so a new one needs no column.
ALTER TABLE sessions ADD COLUMN click_ids TEXT;
