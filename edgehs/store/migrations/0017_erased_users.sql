-- 0017: accounts deactivated with "erase": true, and the position of the shared stream at which
-- they were erased. Their events are served redacted to every user who could not see them before
-- that position (https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3accountdeactivate).
CREATE TABLE erased_users (
    user_id TEXT PRIMARY KEY,
    stream_id INTEGER NOT NULL
);
