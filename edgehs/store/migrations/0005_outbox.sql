-- 0005: the durable outbox. Every outbound delivery (application services now; federation and
-- push gateways later) is a row written in the same transaction as what it delivers, so a
-- power cut cannot lose one. Rows are deleted once the destination acknowledged them.

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,                        -- delivery order per destination
    destination TEXT NOT NULL,                     -- 'as:<id>' (later 'fed:<server>', ...)
    kind TEXT NOT NULL,                            -- 'event', 'ephemeral', 'to_device'
    event_id TEXT,                                 -- kind 'event': the event to deliver
    payload TEXT                                   -- other kinds: the JSON to deliver
);
CREATE INDEX outbox_destination ON outbox (destination, id);

-- Per destination: the transaction being delivered, retried with the same id and the same
-- rows until acknowledged. (Retry state and backoff: the outbox_retry table.)
CREATE TABLE outbox_destinations (
    destination TEXT PRIMARY KEY,
    next_txn_id INTEGER NOT NULL DEFAULT 1,
    inflight_txn_id INTEGER,                       -- NULL: nothing in flight
    inflight_last_row INTEGER                      -- rows up to this id form that transaction
);
