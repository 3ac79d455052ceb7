"""Push rules, pushers and notifications (migration 0008).

Reads go through :class:`PushStore`; the writes are functions taking the connection, so that the
service runs them inside ``EventService.run_write`` (rule changes, which also rewrite the
``m.push_rules`` account data) or inside the event's own transaction (notifications).
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import aiosqlite

from edgehs.protocol.push_rules import DefaultChange, PushRule
from edgehs.store.db import Database, Row
from edgehs.types import JsonDict

# The position up to which a user has read a room's thread: the newest of their m.read and
# m.read.private receipts, unthreaded ('') or for the row's thread. Used with the alias n for a
# push_notifications row.
READ_UP_TO = """COALESCE((
    SELECT MAX(e.stream_ordering) FROM receipts r JOIN events e ON e.event_id = r.event_id
    WHERE r.room_id = n.room_id AND r.user_id = n.user_id
      AND r.receipt_type IN ('m.read', 'm.read.private') AND r.thread_id IN ('', n.thread_id)
), 0)"""
# Counts start after the user's current membership event (their join): without a receipt, what
# happened before they joined (their invite) is not unread.
JOINED_AT = """COALESCE((
    SELECT m.stream_ordering FROM room_memberships m
    WHERE m.room_id = n.room_id AND m.user_id = n.user_id
), 0)"""


@dataclass(frozen=True)
class Pusher:
    id: int
    user_id: str
    kind: str
    app_id: str
    pushkey: str
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str
    data: JsonDict
    pushkey_ts: int
    device_id: str | None

    def to_json(self) -> JsonDict:
        """As GET /pushers shows it."""
        out: JsonDict = {
            "pushkey": self.pushkey, "kind": self.kind, "app_id": self.app_id,
            "app_display_name": self.app_display_name,
            "device_display_name": self.device_display_name, "lang": self.lang,
            "data": self.data,
        }
        if self.profile_tag is not None:
            out["profile_tag"] = self.profile_tag
        return out


@dataclass(frozen=True)
class NewNotification:
    """A notification to write with its event (the stream position comes from the write)."""

    user_id: str
    room_id: str
    event_id: str
    thread_id: str
    actions: list[object]
    highlight: bool
    ts: int


@dataclass(frozen=True)
class Notification:
    stream_ordering: int
    room_id: str
    event_id: str
    actions: list[object]
    highlight: bool
    ts: int
    read: bool


def _pusher(r: Row) -> Pusher:
    return Pusher(r["id"], r["user_id"], r["kind"], r["app_id"], r["pushkey"],
                  r["app_display_name"], r["device_display_name"], r["profile_tag"], r["lang"],
                  json.loads(r["data"]), r["pushkey_ts"], r["device_id"])


class PushStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- rules ------------------------------------------------------------------------------

    async def get_rules(self, user_id: str
                        ) -> tuple[list[PushRule], dict[tuple[str, str], DefaultChange]]:
        """The user's own rules (each kind most important first) and their changes to the
        server-default rules."""
        rows = await self.db.fetchall(
            "SELECT kind, rule_id, conditions, pattern, actions, enabled FROM push_rules "
            "WHERE user_id = ? ORDER BY kind, priority DESC", (user_id,),
        )
        rules = [
            PushRule(r[0], r[1], tuple(json.loads(r[4])), tuple(json.loads(r[2])), r[3],
                     bool(r[5]))
            for r in rows
        ]
        changes = {
            (r[0], r[1]): DefaultChange(
                None if r[2] is None else bool(r[2]),
                None if r[3] is None else tuple(json.loads(r[3])),
            )
            for r in await self.db.fetchall(
                "SELECT kind, rule_id, enabled, actions FROM push_rule_defaults "
                "WHERE user_id = ?", (user_id,),
            )
        }
        return rules, changes

    # --- pushers ----------------------------------------------------------------------------

    async def get_pushers(self, user_id: str) -> list[Pusher]:
        rows = await self.db.fetchall(
            "SELECT * FROM pushers WHERE user_id = ? ORDER BY id", (user_id,)
        )
        return [_pusher(r) for r in rows]

    async def get_pusher(self, pusher_id: int) -> Pusher | None:
        row = await self.db.fetchone("SELECT * FROM pushers WHERE id = ?", (pusher_id,))
        return None if row is None else _pusher(row)

    async def delete_pusher(self, pusher_id: int) -> None:
        async def run(conn: aiosqlite.Connection) -> None:
            await conn.execute("DELETE FROM pushers WHERE id = ?", (pusher_id,))
        await self.db.write(run)

    # --- notifications and counts -----------------------------------------------------------

    async def get_notifications(self, user_id: str, before: int | None, limit: int,
                                only_highlight: bool) -> list[Notification]:
        """The user's notifications, newest first, with stream position < ``before``."""
        sql = (
            "SELECT n.stream_ordering, n.room_id, n.event_id, n.actions, n.highlight, n.ts, "
            f"n.stream_ordering <= {READ_UP_TO} AS read FROM push_notifications n "
            "WHERE n.user_id = ?"
        )
        params: list[object] = [user_id]
        if before is not None:
            sql += " AND n.stream_ordering < ?"
            params.append(before)
        if only_highlight:
            sql += " AND n.highlight = 1"
        rows = await self.db.fetchall(sql + " ORDER BY n.stream_ordering DESC LIMIT ?",
                                      [*params, limit])
        return [Notification(r[0], r[1], r[2], json.loads(r[3]), bool(r[4]), r[5], bool(r[6]))
                for r in rows]

    async def get_counts(self, user_id: str, room_ids: Sequence[str], main_only: bool = False
                         ) -> dict[str, tuple[int, int]]:
        """room_id -> (unread notifications, unread highlights) for rooms with any; with
        ``main_only`` only the main timeline's (thread_id 'main')."""
        out: dict[str, tuple[int, int]] = {}
        for room_id, _, counts in await self._grouped(user_id, room_ids, main_only, False):
            out[room_id] = counts
        return out

    async def get_thread_counts(self, user_id: str, room_ids: Sequence[str]
                                ) -> dict[str, dict[str, tuple[int, int]]]:
        """room_id -> thread root id -> (unread notifications, unread highlights) for the
        threads (not the main timeline) with any: ``unread_thread_notifications``."""
        out: dict[str, dict[str, tuple[int, int]]] = {}
        for room_id, thread_id, counts in await self._grouped(user_id, room_ids, False, True):
            if thread_id != "main":
                out.setdefault(room_id, {})[thread_id] = counts
        return out

    async def _grouped(self, user_id: str, room_ids: Sequence[str], main_only: bool,
                       per_thread: bool) -> list[tuple[str, str, tuple[int, int]]]:
        """(room_id, thread_id or '', counts) of the user's unread notifications, grouped by
        room (and by thread with ``per_thread``)."""
        out: list[tuple[str, str, tuple[int, int]]] = []
        ids = list(room_ids)
        thread_col = "n.thread_id" if per_thread else "''"
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            rows = await self.db.fetchall(
                f"SELECT n.room_id, {thread_col}, COUNT(*), SUM(n.highlight) "
                "FROM push_notifications n "
                f"WHERE n.user_id = ? AND n.room_id IN ({','.join('?' * len(chunk))}) "
                f"AND n.stream_ordering > {READ_UP_TO} AND n.stream_ordering > {JOINED_AT} "
                + ("AND n.thread_id = 'main' " if main_only else "")
                + "GROUP BY n.room_id" + (", n.thread_id" if per_thread else ""),
                [user_id, *chunk],
            )
            out += [(r[0], r[1], (int(r[2]), int(r[3] or 0))) for r in rows]
        return out


# --- writes (inside Database.write) -------------------------------------------------------------

async def replace_kind(conn: aiosqlite.Connection, user_id: str, kind: str,
                       rules: Sequence[PushRule]) -> None:
    """Store the user's rules of one kind, most important first."""
    await conn.execute("DELETE FROM push_rules WHERE user_id = ? AND kind = ?", (user_id, kind))
    await conn.executemany(
        "INSERT INTO push_rules (user_id, kind, rule_id, priority, conditions, pattern, "
        "actions, enabled) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(user_id, kind, r.rule_id, len(rules) - i, json.dumps(list(r.conditions)), r.pattern,
          json.dumps(list(r.actions)), int(r.enabled)) for i, r in enumerate(rules)],
    )


async def change_default(conn: aiosqlite.Connection, user_id: str, kind: str, rule_id: str,
                         change: DefaultChange) -> None:
    """Record a change to a server-default rule (None fields keep what was recorded)."""
    await conn.execute(
        "INSERT INTO push_rule_defaults VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (user_id, kind, rule_id) DO UPDATE SET "
        "enabled = COALESCE(excluded.enabled, enabled), "
        "actions = COALESCE(excluded.actions, actions)",
        (user_id, kind, rule_id, None if change.enabled is None else int(change.enabled),
         None if change.actions is None else json.dumps(list(change.actions))),
    )


async def upsert_pusher(conn: aiosqlite.Connection, user_id: str, device_id: str | None,
                        body: JsonDict, ts: int, append: bool) -> None:
    """POST /pushers/set with a kind: update or create the (app_id, pushkey, user) pusher;
    without ``append`` the same app_id + pushkey of other users is removed."""
    if not append:
        await conn.execute(
            "DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id != ?",
            (body["app_id"], body["pushkey"], user_id),
        )
    await conn.execute(
        "INSERT INTO pushers (user_id, kind, app_id, pushkey, app_display_name, "
        "device_display_name, profile_tag, lang, data, pushkey_ts, device_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (app_id, pushkey, user_id) DO UPDATE SET kind = excluded.kind, "
        "app_display_name = excluded.app_display_name, "
        "device_display_name = excluded.device_display_name, "
        "profile_tag = excluded.profile_tag, lang = excluded.lang, data = excluded.data, "
        "pushkey_ts = excluded.pushkey_ts, device_id = excluded.device_id",
        (user_id, body["kind"], body["app_id"], body["pushkey"], body["app_display_name"],
         body["device_display_name"], body.get("profile_tag"), body["lang"],
         json.dumps(body["data"]), ts, device_id),
    )


async def delete_pusher_by_key(conn: aiosqlite.Connection, user_id: str, app_id: str,
                               pushkey: str) -> None:
    await conn.execute("DELETE FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?",
                       (user_id, app_id, pushkey))


async def insert_notifications(conn: aiosqlite.Connection, pos: int,
                               rows: Iterable[NewNotification]) -> None:
    await conn.executemany(
        "INSERT OR IGNORE INTO push_notifications VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(r.user_id, pos, r.room_id, r.event_id, r.thread_id, json.dumps(r.actions),
          int(r.highlight), r.ts) for r in rows],
    )
