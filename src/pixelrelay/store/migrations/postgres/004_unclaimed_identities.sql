-- Identity links are now made only by server sources (a browser's `identify` is a claim that
-- anyone can make with the public site key). Links made before cannot be told apart, so they
-- go; server events re-create theirs. Landing URLs stored before the scrubber covered
-- sessions may hold personal data in a fragment or path: they are cleared (nothing reads
-- them back into an event).
DELETE FROM session_identities;
UPDATE sessions SET landing_url = NULL WHERE landing_url IS NOT NULL;
