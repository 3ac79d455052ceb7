-- 0013: the thread roots of a room, for GET /rooms/{roomId}/threads (store/threads.py).
-- event_relations is indexed by parent only (0001); listing a room's threads looks up its
-- m.thread relations by room.
CREATE INDEX event_relations_room ON event_relations (room_id, rel_type, relates_to_id);
