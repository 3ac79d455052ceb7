-- 0022: what the one persist step (service/persist.py) records for an event graph with forks.
--
-- room_state_after: the state group of the room's current state right after a live event was
-- persisted, set while the room has forks (several forward extremities) or when that state is not
-- the event's own state_after: the room's state is then the state resolution of the forward
-- extremities, and /sync sends what it changed. NULL means "state_after, no fork" (every event
-- of a linear room), so the common case writes nothing more.
ALTER TABLE events ADD COLUMN room_state_after INTEGER;

-- soft_failed: the event passed the checks against its own auth events and the state before it,
-- but not against the room's current state (spec: "soft failure"). It is stored, takes part in
-- the DAG and in state resolution, but is never shown, pushed, or built upon.
ALTER TABLE events ADD COLUMN soft_failed INTEGER NOT NULL DEFAULT 0;
