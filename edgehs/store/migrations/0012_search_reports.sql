-- 0012: full-text search over room events, and content reports.

-- Server-side search (https://spec.matrix.org/v1.19/client-server-api/#server-side-search):
-- one row per searchable event, rowid = the event's stream_ordering (so results join events on
-- its primary key). `key` is the spec's search key the text came from: content.body of
-- m.room.message, content.name of m.room.name, content.topic of m.room.topic. Rows are written
-- in the event's own transaction by the write path; a redaction deletes the row of the event it
-- redacts. unicode61 with remove_diacritics 2: "wörld" matches "world", case-insensitively.
CREATE VIRTUAL TABLE event_search USING fts5(
    key UNINDEXED,
    value,
    tokenize = 'unicode61 remove_diacritics 2'
);

-- Backfill from the events stored before this migration: timeline events only (no outliers,
-- no rejected events), not redacted, whose key holds a string.
INSERT INTO event_search (rowid, key, value)
SELECT e.stream_ordering,
       CASE e.type WHEN 'm.room.message' THEN 'content.body'
                   WHEN 'm.room.name' THEN 'content.name'
                   ELSE 'content.topic' END,
       json_extract(e.json, CASE e.type WHEN 'm.room.message' THEN '$.content.body'
                                        WHEN 'm.room.name' THEN '$.content.name'
                                        ELSE '$.content.topic' END)
FROM events e
WHERE e.outlier = 0 AND e.rejected_reason IS NULL
  AND ((e.type = 'm.room.message' AND json_type(e.json, '$.content.body') = 'text')
    OR (e.type = 'm.room.name' AND json_type(e.json, '$.content.name') = 'text')
    OR (e.type = 'm.room.topic' AND json_type(e.json, '$.content.topic') = 'text'))
  AND NOT EXISTS (SELECT 1 FROM redactions r WHERE r.redacts = e.event_id);

-- Reports of events, rooms and users (https://spec.matrix.org/v1.19/client-server-api/#reporting-content),
-- kept for the server's admins. An event report has room_id + event_id, a room report room_id
-- only, a user report target_user_id only.
CREATE TABLE content_reports (
    id INTEGER PRIMARY KEY,
    reporter TEXT NOT NULL,
    room_id TEXT,
    event_id TEXT,
    target_user_id TEXT,
    reason TEXT,
    score INTEGER,                                 -- the legacy -100..0 score (removed in v1.18)
    received_ts INTEGER NOT NULL
);
CREATE INDEX content_reports_ts ON content_reports (received_ts);
