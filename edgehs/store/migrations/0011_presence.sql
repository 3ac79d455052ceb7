-- 0011: presence (https://spec.matrix.org/v1.19/client-server-api/#presence).

-- Presence lives in memory (service/presence.py): syncs, activity and the idle/offline timers
-- never write here, so a client's sync loop costs the SD card nothing. Only what a user set
-- explicitly with PUT /presence/{userId}/status is kept, so a status message survives a
-- restart. One row per user, replaced on each explicit change.
CREATE TABLE presence (
    user_id TEXT PRIMARY KEY,
    presence TEXT NOT NULL,                        -- online, unavailable or offline
    status_msg TEXT,                               -- NULL when none was set
    updated_ts INTEGER NOT NULL                    -- ms since the epoch of the PUT
);
