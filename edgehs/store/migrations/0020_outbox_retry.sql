-- 0020: per-destination retry state of the outbox, so that a restart neither forgets a failing
-- destination's backoff (and hammers it at once) nor makes a healthy one wait. A row exists only
-- while the destination is failing: written after each failed delivery, deleted in the commit
-- that acknowledges a successful one. Times are milliseconds since the epoch (wall clock, so
-- they keep their meaning across restarts).

CREATE TABLE outbox_retry (
    destination TEXT PRIMARY KEY,
    failing_since_ts INTEGER NOT NULL,             -- the first failure of the current run
    next_attempt_ts INTEGER NOT NULL,              -- no delivery is attempted before this
    backoff_ms INTEGER NOT NULL                    -- the current delay; doubled at each failure
);
