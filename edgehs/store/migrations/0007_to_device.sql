-- 0007: send-to-device messaging (https://spec.matrix.org/v1.19/client-server-api/#send-to-device-messaging).

-- The inbox of every local device. stream_id is the to-device stream: the third part of the
-- /sync token. AUTOINCREMENT, so a position is never handed out twice even after the rows up to
-- it were deleted (a client's token must never cover a message it has not seen). A device's
-- messages up to the position in the `since` token of its next /sync are acknowledged and
-- deleted. Messages for users of an application service that receives them by push never come
-- here: they go to the outbox.
CREATE TABLE device_inbox (
    stream_id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,                         -- the recipient
    device_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    type TEXT NOT NULL,
    content TEXT NOT NULL                          -- JSON object
);
CREATE INDEX device_inbox_device ON device_inbox (user_id, device_id, stream_id);

-- Transaction ids of PUT /sendToDevice/{eventType}/{txnId}, per sender and sending device (or
-- 'AS:<id>' for an application service without one): a retried request is answered without
-- sending again. Rows older than a day are pruned on the next send.
CREATE TABLE to_device_txns (
    sender TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    PRIMARY KEY (sender, device_id, txn_id)
);
CREATE INDEX to_device_txns_created ON to_device_txns (created_ts);

-- A deleted device (logout, DELETE /devices, deactivation) gets no more messages.
CREATE TRIGGER device_inbox_device_deleted AFTER DELETE ON devices
BEGIN
    DELETE FROM device_inbox WHERE user_id = OLD.user_id AND device_id = OLD.device_id;
END;
