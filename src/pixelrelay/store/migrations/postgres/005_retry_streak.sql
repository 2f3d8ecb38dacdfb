-- A request's backoff follows its events' own transient failures, not every request they
-- were in: retry_streak counts the transient failures since TikTok last answered a request
-- holding the row (a refusal that split it ends the streak and counts as no attempt).
-- suspect: refused together with others, the refused one not yet isolated; such rows are
-- bisected apart from clean ones. Rows waiting now keep the backoff they had. The same as
-- SQLite's migration 014.
ALTER TABLE deliveries ADD COLUMN retry_streak integer NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN suspect boolean NOT NULL DEFAULT false;
UPDATE deliveries SET retry_streak = attempts
 WHERE state IN ('pending', 'in_flight') AND attempts > 0;
