-- Claims take one batch_key at a time (a request never mixes keys): the due rows of one key,
-- oldest first, without scanning past the due rows of other keys.
CREATE INDEX deliveries_due_by_key ON deliveries (destination, batch_key, next_attempt_at, id)
    WHERE state = 'pending';
