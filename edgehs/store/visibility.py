"""The few facts history visibility needs, read straight from the state groups.

https://spec.matrix.org/v1.19/client-server-api/#server-behaviour-7

A state group is a delta over its parent (``edgehs/store/state.py``); instead of building whole
state maps, one recursive query walks each group's chain (at most ``MAX_CHAIN`` + 1 groups) and
picks just two keys: ``m.room.history_visibility`` and the user's ``m.room.member``.
"""

from collections.abc import Iterable, Sequence

from edgehs.store.db import Database

# SQLite's host-parameter limit is far above this; it keeps each statement small.
CHUNK = 400

# Per start group: its ancestors (depth 0 = itself), with the two wanted entries of each.
_GROUP_FACTS = """
WITH RECURSIVE chain(start, gid, depth) AS (
    SELECT id, id, 0 FROM state_groups WHERE id IN ({marks})
    UNION ALL
    SELECT c.start, g.parent_id, c.depth + 1 FROM chain c JOIN state_groups g ON g.id = c.gid
    WHERE g.parent_id IS NOT NULL
)
SELECT c.start, c.depth, s.type, s.event_id,
       json_extract(e.json, '$.content.history_visibility'),
       json_extract(e.json, '$.content.membership')
FROM chain c
JOIN state_group_entries s ON s.group_id = c.gid
     AND ((s.type = 'm.room.history_visibility' AND s.state_key = '')
          OR (s.type = 'm.room.member' AND s.state_key = ?))
LEFT JOIN events e ON e.event_id = s.event_id
"""


class VisibilityStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def group_facts(self, groups: Iterable[int], user_id: str
                          ) -> dict[int, tuple[str | None, str | None]]:
        """For each state group: (history_visibility value, the user's membership), each
        None when the state has no such event (or the key was removed)."""
        wanted = sorted(set(groups))
        out: dict[int, tuple[str | None, str | None]] = {}
        for i in range(0, len(wanted), CHUNK):
            chunk = wanted[i:i + CHUNK]
            rows = await self.db.fetchall(
                _GROUP_FACTS.format(marks=",".join("?" * len(chunk))), [*chunk, user_id])
            # The nearest entry (lowest depth) of each key wins; a NULL event_id removes it.
            best: dict[tuple[int, str], tuple[int, str | None]] = {}
            for start, depth, etype, event_id, hv, membership in rows:
                value = (hv if etype == "m.room.history_visibility" else membership)
                if event_id is None:
                    value = None
                seen = best.get((start, etype))
                if seen is None or depth < seen[0]:
                    best[(start, etype)] = (depth, None if value is None else str(value))
            for g in chunk:
                hv_entry = best.get((g, "m.room.history_visibility"))
                member_entry = best.get((g, "m.room.member"))
                out[g] = (hv_entry[1] if hv_entry else None,
                          member_entry[1] if member_entry else None)
        return out

    async def event_groups(self, event_ids: Sequence[str]
                           ) -> dict[str, tuple[int | None, int | None]]:
        """(state_before, state_after) group of each event."""
        out: dict[str, tuple[int | None, int | None]] = {}
        for i in range(0, len(event_ids), CHUNK):
            chunk = list(event_ids[i:i + CHUNK])
            for event_id, before, after in await self.db.fetchall(
                f"SELECT event_id, state_before, state_after FROM events "
                f"WHERE event_id IN ({','.join('?' * len(chunk))})", chunk,
            ):
                out[str(event_id)] = (before, after)
        return out

    async def room_timeline_facts(self, room_id: str, user_id: str
                                  ) -> list[tuple[int, int, str, str | None]]:
        """The room's history_visibility events and the user's member events (timeline
        events only) in stream order: (stream_ordering, depth, type, history_visibility or
        membership)."""
        # Two lookups of the (room_id, type, state_key) index (0014); an OR would scan the room.
        rows = await self.db.fetchall(
            "SELECT stream_ordering, depth, type, "
            "json_extract(json, '$.content.history_visibility') "
            "FROM events WHERE room_id = ? AND type = 'm.room.history_visibility' "
            "AND state_key = '' AND outlier = 0 AND rejected_reason IS NULL "
            "UNION ALL "
            "SELECT stream_ordering, depth, type, json_extract(json, '$.content.membership') "
            "FROM events WHERE room_id = ? AND type = 'm.room.member' "
            "AND state_key = ? AND outlier = 0 AND rejected_reason IS NULL "
            "ORDER BY 1",
            (room_id, room_id, user_id),
        )
        return [(int(r[0]), int(r[1]), str(r[2]), None if r[3] is None else str(r[3]))
                for r in rows]
