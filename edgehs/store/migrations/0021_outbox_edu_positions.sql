-- 0021: EDUs are no longer rows of the outbox. They are built from their streams (receipts,
-- typing, presence, ...) when a destination's transaction is built; this table keeps, per
-- destination and durable stream, the position the destination acknowledged and the position
-- the transaction in flight was built up to, so that a retry (also after a restart) rebuilds
-- the same range and an acknowledged one is never sent again. Streams kept in memory only
-- (typing, presence) start over with the process and have no row here.

CREATE TABLE outbox_edu_positions (
    destination TEXT NOT NULL,
    stream TEXT NOT NULL,                          -- the EduStream's name, e.g. 'receipts'
    acked INTEGER NOT NULL,                        -- EDUs up to here were acknowledged
    inflight INTEGER,                              -- the transaction in flight reaches here
    PRIMARY KEY (destination, stream)
) WITHOUT ROWID;

-- The receipts stream is read by position across rooms when a transaction is built.
CREATE INDEX receipts_stream_id ON receipts (stream_id);
