-- The visitor's latest consent answer, kept with the session so that a server event or an
-- order found through it takes that consent: {"marketing", "ad_user_data",
-- "ad_personalization", "region", "at", "source"} as JSON, NULL before any answer.
ALTER TABLE sessions ADD COLUMN consent TEXT;
