-- 0004: extended profile fields (https://spec.matrix.org/v1.19/client-server-api/#profiles).
-- displayname and avatar_url stay in users; every other key (m.tz, custom namespaced keys)
-- lives here as its JSON value. The whole profile must stay under 64 KiB (checked on write).

CREATE TABLE profile_fields (
    user_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,                           -- JSON
    PRIMARY KEY (user_id, key)
);
