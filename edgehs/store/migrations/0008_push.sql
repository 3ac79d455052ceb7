-- 0008: push notifications. The user's own push rules and their changes to the server-default
-- ones, pushers (where to send push notifications), and one row per (user, event) that
-- notified: /notifications lists them and /sync counts those after the user's read receipt.

-- Push rules the user defined (never the server-default ones). Within (user, kind) the rule with
-- the highest priority is checked first; PUT with before/after rewrites the kind's priorities.
CREATE TABLE push_rules (
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,                            -- override, content, room, sender, underride
    rule_id TEXT NOT NULL,
    priority INTEGER NOT NULL,
    conditions TEXT NOT NULL DEFAULT '[]',         -- JSON array (override and underride rules)
    pattern TEXT,                                  -- content rules: the glob on content.body
    actions TEXT NOT NULL,                         -- JSON array
    enabled INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id, kind, rule_id)
);

-- A user's changes to server-default rules (".m.rule.*"); NULL keeps the predefined value, so
-- a later server version's default actions still apply where the user changed nothing.
CREATE TABLE push_rule_defaults (
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    enabled INTEGER,
    actions TEXT,                                  -- JSON array
    PRIMARY KEY (user_id, kind, rule_id)
);

-- Pushers (POST /pushers/set). Deliveries are outbox rows for destination 'push:<id>'; ids are
-- never reused (AUTOINCREMENT), so rows left for a deleted pusher never reach a new one.
CREATE TABLE pushers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,                            -- 'http'
    app_id TEXT NOT NULL,
    pushkey TEXT NOT NULL,
    app_display_name TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag TEXT,
    lang TEXT NOT NULL,
    data TEXT NOT NULL,                            -- JSON: url, format and the client's own keys
    pushkey_ts INTEGER NOT NULL,                   -- ms, when the pushkey was last set
    device_id TEXT,                                -- the device that set it
    UNIQUE (app_id, pushkey, user_id)
);
CREATE INDEX pushers_user ON pushers (user_id);

-- One row per (user, event) whose push rules said "notify", written in the event's own
-- transaction. Rows after the user's read receipt (for their thread) are the unread counts.
CREATE TABLE push_notifications (
    user_id TEXT NOT NULL,
    stream_ordering INTEGER NOT NULL,              -- the event's stream position
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,                       -- 'main' or the thread root's event id
    actions TEXT NOT NULL,                         -- JSON: the matching rule's actions
    highlight INTEGER NOT NULL,
    ts INTEGER NOT NULL,                           -- when the notification was made (ms)
    PRIMARY KEY (user_id, stream_ordering)
) WITHOUT ROWID;
CREATE INDEX push_notifications_room ON push_notifications (user_id, room_id, stream_ordering);
