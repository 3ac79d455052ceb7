"""Room state: delta-encoded state groups, current state and the membership index."""

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import aiosqlite

from edgehs.store.db import Database
from edgehs.types import StateKey, StateMap

# A group chain longer than this is cut by writing a full snapshot.
MAX_CHAIN = 32
CACHE_SIZE = 256


class StateStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: OrderedDict[int, StateMap] = OrderedDict()

    async def get_state_group(self, group_id: int) -> StateMap:
        """The full state map of a group: its entries over its parent's, recursively."""
        cached = self._cache.get(group_id)
        if cached is not None:
            self._cache.move_to_end(group_id)
            return dict(cached)
        chain: list[int] = []
        gid: int | None = group_id
        base: StateMap = {}
        while gid is not None:
            hit = self._cache.get(gid)
            if hit is not None:
                base = dict(hit)
                break
            chain.append(gid)
            gid = await self.db.fetchval("SELECT parent_id FROM state_groups WHERE id = ?", (gid,))
        for g in reversed(chain):
            for t, sk, eid in await self.db.fetchall(
                "SELECT type, state_key, event_id FROM state_group_entries WHERE group_id = ?",
                (g,),
            ):
                if eid is None:
                    base.pop((t, sk), None)
                else:
                    base[(t, sk)] = eid
        self._remember(group_id, base)
        return dict(base)

    def _remember(self, group_id: int, state: StateMap) -> None:
        self._cache[group_id] = dict(state)
        self._cache.move_to_end(group_id)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    async def get_state_before(self, event_id: str) -> StateMap | None:
        group = await self.db.fetchval(
            "SELECT state_before FROM events WHERE event_id = ?", (event_id,)
        )
        return None if group is None else await self.get_state_group(int(group))

    async def get_state_after(self, event_id: str) -> StateMap | None:
        group = await self.db.fetchval(
            "SELECT state_after FROM events WHERE event_id = ?", (event_id,)
        )
        return None if group is None else await self.get_state_group(int(group))

    async def get_state_group_after(self, event_id: str) -> int | None:
        value = await self.db.fetchval(
            "SELECT state_after FROM events WHERE event_id = ?", (event_id,)
        )
        return None if value is None else int(value)

    async def get_groups_after(self, event_ids: Sequence[str]) -> dict[str, int]:
        """event id -> its state_after group, for the stored non-outliers among ``event_ids``."""
        if not event_ids:
            return {}
        rows = await self.db.fetchall(
            "SELECT event_id, state_after FROM events WHERE state_after IS NOT NULL AND "
            f"event_id IN ({','.join('?' * len(event_ids))})", list(event_ids))
        return {r[0]: int(r[1]) for r in rows}

    async def get_room_state_at(self, event_id: str) -> StateMap | None:
        """The room's current state right after ``event_id`` was persisted: its state_after,
        or the resolution of the room's forks when it joined one (migration 0022)."""
        group = await self.db.fetchval(
            "SELECT COALESCE(room_state_after, state_after) FROM events WHERE event_id = ?",
            (event_id,))
        return None if group is None else await self.get_state_group(int(group))

    async def get_current_state_ids(self, room_id: str) -> StateMap:
        rows = await self.db.fetchall(
            "SELECT type, state_key, event_id FROM current_state WHERE room_id = ?", (room_id,)
        )
        return {(r[0], r[1]): r[2] for r in rows}

    async def get_current_state_event_id(self, room_id: str, key: StateKey) -> str | None:
        value = await self.db.fetchval(
            "SELECT event_id FROM current_state WHERE room_id = ? AND type = ? AND state_key = ?",
            (room_id, *key),
        )
        return None if value is None else str(value)

    # --- writes ----------------------------------------------------------------------------

    async def add_group(
        self,
        conn: aiosqlite.Connection,
        room_id: str,
        parent: int | None,
        parent_state: Mapping[StateKey, str],
        state: Mapping[StateKey, str],
    ) -> int:
        """Store ``state`` as a new group: a delta over ``parent`` (whose full state is
        ``parent_state``) or a full snapshot when the chain grows too long."""
        chain_length = 0
        if parent is not None:
            async with conn.execute(
                "SELECT chain_length FROM state_groups WHERE id = ?", (parent,)
            ) as cur:
                row = await cur.fetchone()
            chain_length = (row[0] + 1) if row else 0
        if parent is None or chain_length > MAX_CHAIN:
            parent, chain_length = None, 0
            entries: list[tuple[str, str, str | None]] = [(t, s, e) for (t, s), e in state.items()]
        else:
            entries = [(t, s, e) for (t, s), e in state.items() if parent_state.get((t, s)) != e]
            entries += [(t, s, None) for (t, s) in parent_state if (t, s) not in state]
        async with conn.execute(
            "INSERT INTO state_groups (room_id, parent_id, chain_length) VALUES (?, ?, ?)",
            (room_id, parent, chain_length),
        ) as cur:
            group_id = cur.lastrowid
        assert group_id is not None
        await conn.executemany(
            "INSERT INTO state_group_entries VALUES (?, ?, ?, ?)",
            [(group_id, t, s, e) for t, s, e in entries],
        )
        # Not cached here: the transaction may still roll back and the id be reused.
        return group_id

    async def set_current_state(
        self,
        conn: aiosqlite.Connection,
        room_id: str,
        old: Mapping[StateKey, str],
        new: Mapping[StateKey, str],
        memberships: Mapping[str, tuple[str, str]],
        stream_ordering: int,
        positions: Mapping[str, int] | None = None,
    ) -> None:
        """Replace the room's current state by ``new`` (given the ``old`` one) and update the
        membership index; ``memberships`` maps member event ids to (user_id, membership).

        The index's ``stream_ordering`` is where the membership last *changed*: a member
        event that keeps it (a new display name or avatar) updates ``event_id`` only, so
        that /sync does not take a profile change for a new join (nor a new leave).
        ``positions`` gives some member events their own position instead."""
        removed = [(room_id, t, s) for (t, s) in old if (t, s) not in new]
        changed = [(room_id, t, s, e) for (t, s), e in new.items() if old.get((t, s)) != e]
        await conn.executemany(
            "DELETE FROM current_state WHERE room_id = ? AND type = ? AND state_key = ?", removed
        )
        await conn.executemany("INSERT OR REPLACE INTO current_state VALUES (?, ?, ?, ?)", changed)
        for _, t, _s, e in changed:
            if t != "m.room.member" or e not in memberships:
                continue
            user_id, membership = memberships[e]
            await conn.execute(
                "INSERT INTO room_memberships (room_id, user_id, membership, event_id, "
                "stream_ordering, forgotten) VALUES (?, ?, ?, ?, ?, 0) "
                "ON CONFLICT (room_id, user_id) DO UPDATE SET membership = excluded.membership, "
                "event_id = excluded.event_id, stream_ordering = CASE WHEN "
                "room_memberships.membership = excluded.membership "
                "THEN room_memberships.stream_ordering ELSE excluded.stream_ordering END, "
                "forgotten = 0",
                (room_id, user_id, membership, e, (positions or {}).get(e, stream_ordering)),
            )
