-- 0014: a room's events of one state type and key, in stream order (store/visibility.py):
-- history visibility reads the room's m.room.history_visibility events and one user's
-- m.room.member events for every timeline it filters; without this it scans the whole room.
CREATE INDEX events_room_state ON events (room_id, type, state_key, stream_ordering);
