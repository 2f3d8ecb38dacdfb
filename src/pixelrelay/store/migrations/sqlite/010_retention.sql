-- Retention (Maintenance.prune): whether an event still has deliveries, and the oldest
-- attempts, without scanning. Both keys only grow, so each index appends at its right edge.
CREATE INDEX deliveries_event_ref ON deliveries (event_ref);
CREATE INDEX attempts_at ON attempts (at);
