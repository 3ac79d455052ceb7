-- 0001: the room event graph, stored federation-ready.

-- One row a room. room_version decides every protocol rule for the room.
CREATE TABLE rooms (
    room_id TEXT PRIMARY KEY,
    room_version TEXT NOT NULL,
    creator TEXT NOT NULL,
    is_public INTEGER NOT NULL DEFAULT 0,          -- published in the room directory
    created_ts INTEGER NOT NULL
);

-- Every event we hold. stream_ordering is THE global stream position: /sync tokens are built
-- from it. Outliers (events we hold without their state) and rejected events are representable.
CREATE TABLE events (
    stream_ordering INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT,                                -- NULL for non-state events
    sender TEXT NOT NULL,
    origin_server_ts INTEGER NOT NULL,
    depth INTEGER NOT NULL,
    json TEXT NOT NULL,                            -- the full PDU, canonical JSON
    outlier INTEGER NOT NULL DEFAULT 0,
    rejected_reason TEXT,                          -- NULL unless the event failed auth
    state_before INTEGER,                          -- state group before the event (NULL for outliers)
    state_after INTEGER,                           -- state group after the event
    txn_id TEXT,                                   -- client transaction id (local events only)
    device_id TEXT
);
CREATE INDEX events_room_stream ON events (room_id, stream_ordering);
CREATE INDEX events_room_depth ON events (room_id, depth);
CREATE UNIQUE INDEX events_txn ON events (sender, device_id, txn_id) WHERE txn_id IS NOT NULL;

-- The DAG: prev_events edges and auth_events edges.
CREATE TABLE event_edges (
    event_id TEXT NOT NULL,
    prev_event_id TEXT NOT NULL,
    PRIMARY KEY (event_id, prev_event_id)
);
CREATE INDEX event_edges_prev ON event_edges (prev_event_id);

CREATE TABLE event_auth (
    event_id TEXT NOT NULL,
    auth_id TEXT NOT NULL,
    PRIMARY KEY (event_id, auth_id)
);

-- The current leaves of each room's DAG: the prev_events of the next local event.
CREATE TABLE forward_extremities (
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);

-- State snapshots as deltas: a group is its parent plus its own entries. A NULL event_id in an
-- entry removes the key (used only by resolved groups). A chain is cut with a full snapshot
-- every few dozen groups so that reading one stays cheap.
CREATE TABLE state_groups (
    id INTEGER PRIMARY KEY,
    room_id TEXT NOT NULL,
    parent_id INTEGER REFERENCES state_groups (id),
    chain_length INTEGER NOT NULL
);
CREATE TABLE state_group_entries (
    group_id INTEGER NOT NULL REFERENCES state_groups (id),
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT,
    PRIMARY KEY (group_id, type, state_key)
);

-- The resolved state of each room now, for quick lookups.
CREATE TABLE current_state (
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, type, state_key)
);

-- Current membership of every user (local or remote) in every room, from current_state.
CREATE TABLE room_memberships (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    membership TEXT NOT NULL,
    event_id TEXT NOT NULL,
    stream_ordering INTEGER NOT NULL,
    forgotten INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_memberships_user ON room_memberships (user_id, membership);

-- Redactions: which event redacted which. Content is pruned when the event is served.
CREATE TABLE redactions (
    event_id TEXT PRIMARY KEY,                     -- the m.room.redaction event
    redacts TEXT NOT NULL
);
CREATE INDEX redactions_redacts ON redactions (redacts);

-- m.relates_to of every event that has one, for /relations and aggregations.
CREATE TABLE event_relations (
    event_id TEXT PRIMARY KEY,
    relates_to_id TEXT NOT NULL,
    rel_type TEXT NOT NULL,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL
);
CREATE INDEX event_relations_parent ON event_relations (relates_to_id, rel_type);

CREATE TABLE room_aliases (
    alias TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    creator TEXT NOT NULL
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);
