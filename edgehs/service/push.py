"""Push rules (the API), notifications and unread counts.

https://spec.matrix.org/v1.19/client-server-api/#push-rules-api
https://spec.matrix.org/v1.19/client-server-api/#listing-notifications
https://spec.matrix.org/v1.19/client-server-api/#receiving-notifications

Each user's ruleset is built once (server defaults + their own rules + their changes to the
defaults) and cached; the write path (``service.push_evaluator``) reads it for every event. A
change to the rules is written with the ``m.push_rules`` account data in one transaction, so the
user's clients see the new rules in their next /sync. Unread counts are the user's notification
rows after their read receipt: nothing is stored per room, a receipt resets counts by itself.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import aiosqlite

from edgehs.errors import Codes, MatrixError
from edgehs.protocol.push_rules import (
    CONDITIONAL_KINDS,
    DefaultChange,
    PushRule,
    Ruleset,
    build_ruleset,
    check_kind,
    check_new_rule_id,
    parse_actions,
    parse_conditions,
    place_rule,
)
from edgehs.service.client_events import ClientEventFormatter
from edgehs.service.events import EventService
from edgehs.store.account_data import put_account_data
from edgehs.store.events import EventStore
from edgehs.store.push import PushStore, change_default, replace_kind
from edgehs.store.rooms import MemberStore
from edgehs.types import JsonDict

PUSH_RULES = "m.push_rules"
DEFAULT_NOTIFICATIONS_LIMIT = 20
MAX_NOTIFICATIONS_LIMIT = 100
MAX_CACHED_USERS = 10000
# The legacy text-matching mention rules are served (see protocol.push_rules).
LEGACY_MENTIONS = True


@dataclass(frozen=True)
class UserRules:
    """What is stored for a user, and the ruleset built from it."""

    own: tuple[PushRule, ...]
    changes: dict[tuple[str, str], DefaultChange]
    ruleset: Ruleset


class PushService:
    def __init__(self, store: PushStore, events: EventService, event_store: EventStore,
                 members: MemberStore, formatter: ClientEventFormatter) -> None:
        self.store = store
        self.events = events
        self.event_store = event_store
        self.members = members
        self.formatter = formatter
        self._users: dict[str, UserRules] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # --- rulesets ---------------------------------------------------------------------------

    async def _load(self, user_id: str) -> UserRules:
        cached = self._users.get(user_id)
        if cached is not None:
            return cached
        own, changes = await self.store.get_rules(user_id)
        loaded = UserRules(tuple(own), changes,
                           build_ruleset(user_id, own, changes, legacy_mentions=LEGACY_MENTIONS))
        if len(self._users) > MAX_CACHED_USERS:
            self._users.clear()
        self._users[user_id] = loaded
        return loaded

    async def ruleset(self, user_id: str) -> Ruleset:
        return (await self._load(user_id)).ruleset

    async def get_rule(self, user_id: str, kind: str, rule_id: str) -> PushRule:
        """404 M_NOT_FOUND unless the user's ruleset has this rule."""
        check_kind(kind)
        rule = (await self.ruleset(user_id)).find(kind, rule_id)
        if rule is None:
            raise MatrixError(404, Codes.NOT_FOUND, "The push rule was not found.")
        return rule

    # --- changes ----------------------------------------------------------------------------

    async def put_rule(self, user_id: str, kind: str, rule_id: str, body: JsonDict,
                       before: str | None, after: str | None) -> None:
        """PUT /pushrules/global/{kind}/{ruleId}: create or update a user-defined rule."""
        check_kind(kind)
        check_new_rule_id(rule_id)
        if "actions" not in body:
            raise MatrixError(400, Codes.MISSING_PARAM, "Missing parameter: actions")
        actions = parse_actions(body["actions"])
        conditions = parse_conditions(body.get("conditions")) if kind in CONDITIONAL_KINDS else ()
        pattern = None
        if kind == "content":
            pattern = body.get("pattern")
            if pattern is None:
                raise MatrixError(400, Codes.MISSING_PARAM, "Content rules need a pattern")
            if not isinstance(pattern, str):
                raise MatrixError(400, Codes.BAD_JSON, "pattern must be a string")
        async with self._lock(user_id):
            current = await self._load(user_id)
            same_kind = [r for r in current.own if r.kind == kind]
            existing = next((r for r in same_kind if r.rule_id == rule_id), None)
            # New rules are enabled; an updated rule keeps its enabled flag.
            rule = PushRule(kind, rule_id, actions, conditions, pattern,
                            True if existing is None else existing.enabled)
            placed = place_rule(same_kind, rule, before, after)
            await self._commit(user_id, current, kind, placed, None)

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> None:
        """DELETE /pushrules/global/{kind}/{ruleId}: only user-defined rules can go."""
        check_kind(kind)
        async with self._lock(user_id):
            current = await self._load(user_id)
            same_kind = [r for r in current.own if r.kind == kind]
            if not any(r.rule_id == rule_id for r in same_kind):
                raise MatrixError(404, Codes.NOT_FOUND, "The push rule was not found.")
            await self._commit(user_id, current, kind,
                               [r for r in same_kind if r.rule_id != rule_id], None)

    async def set_enabled(self, user_id: str, kind: str, rule_id: str, enabled: bool) -> None:
        """PUT .../enabled."""
        await self._change(user_id, kind, rule_id, lambda r: replace(r, enabled=enabled),
                           DefaultChange(enabled=enabled))

    async def set_actions(self, user_id: str, kind: str, rule_id: str, raw: Any) -> None:
        """PUT .../actions (default rules too)."""
        actions = parse_actions(raw)
        await self._change(user_id, kind, rule_id, lambda r: replace(r, actions=actions),
                           DefaultChange(actions=actions))

    async def copy_rules_to_upgraded_room(self, room_id: str, user_id: str) -> None:
        """A local user newly joined ``room_id``: when it replaces an upgraded room (its create
        event names a ``predecessor``), the user's enabled rules about the old room (a room rule,
        or a rule with a ``room_id`` condition on it) are copied for the new one, named after it,
        as Synapse does. A rule of that name already there is kept."""
        create = await self.events.current_state_event(room_id, ("m.room.create", ""))
        predecessor = (create or {}).get("content", {}).get("predecessor")
        old = predecessor.get("room_id") if isinstance(predecessor, dict) else None
        if not isinstance(old, str):
            return
        async with self._lock(user_id):
            current = await self._load(user_id)
            copies = [
                replace(r, rule_id=room_id, conditions=tuple(
                    {**c, "pattern": room_id} if c.get("key") == "room_id" else c
                    for c in r.conditions))
                for r in current.own
                if r.enabled and ((r.kind == "room" and r.rule_id == old) or any(
                    c.get("key") == "room_id" and c.get("pattern") == old
                    for c in r.conditions))
                and current.ruleset.find(r.kind, room_id) is None
            ]
            for kind in sorted({r.kind for r in copies}):
                same_kind = [r for r in current.own if r.kind == kind]
                for rule in (r for r in copies if r.kind == kind):
                    same_kind = place_rule(same_kind, rule, None, None)
                await self._commit(user_id, current, kind, same_kind, None)
                current = await self._load(user_id)

    async def _change(self, user_id: str, kind: str, rule_id: str,
                      edit: Callable[[PushRule], PushRule], change: DefaultChange) -> None:
        check_kind(kind)
        async with self._lock(user_id):
            current = await self._load(user_id)
            rule = current.ruleset.find(kind, rule_id)
            if rule is None:
                raise MatrixError(404, Codes.NOT_FOUND, "The push rule was not found.")
            if rule.default:
                await self._commit(user_id, current, kind, None, (rule_id, change))
                return
            own = [edit(r) if r.rule_id == rule_id else r for r in current.own if r.kind == kind]
            await self._commit(user_id, current, kind, own, None)

    async def _commit(self, user_id: str, current: UserRules, kind: str,
                      own_of_kind: list[PushRule] | None,
                      default_change: tuple[str, DefaultChange] | None) -> None:
        """Write a change (the user's rules of one kind, or a change to a default rule) with the
        new ``m.push_rules`` account data, then cache the new ruleset."""
        own = current.own
        if own_of_kind is not None:
            own = (*[r for r in own if r.kind != kind], *own_of_kind)
        changes = dict(current.changes)
        if default_change is not None:
            key, change = (kind, default_change[0]), default_change[1]
            old = changes.get(key, DefaultChange())
            changes[key] = DefaultChange(
                old.enabled if change.enabled is None else change.enabled,
                old.actions if change.actions is None else change.actions,
            )
        ruleset = build_ruleset(user_id, own, changes, legacy_mentions=LEGACY_MENTIONS)

        async def write(conn: aiosqlite.Connection, pos: int) -> None:
            if own_of_kind is not None:
                await replace_kind(conn, user_id, kind, own_of_kind)
            if default_change is not None:
                await change_default(conn, user_id, kind, *default_change)
            await put_account_data(conn, pos, user_id, "", PUSH_RULES,
                                   {"global": ruleset.to_json()})

        await self.events.run_write(write)
        self._users[user_id] = UserRules(tuple(own), changes, ruleset)

    def _lock(self, user_id: str) -> asyncio.Lock:
        return self._locks.setdefault(user_id, asyncio.Lock())

    # --- notifications and counts -----------------------------------------------------------

    async def notifications(self, user_id: str, from_token: str | None, limit: int | None,
                            only: str | None) -> JsonDict:
        """GET /notifications: newest first, ``next_token`` while there may be more."""
        before = None
        if from_token is not None:
            if not from_token.isdigit():
                raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid from token {from_token!r}")
            before = int(from_token)
        limit = min(limit or DEFAULT_NOTIFICATIONS_LIMIT, MAX_NOTIFICATIONS_LIMIT)
        rows = await self.store.get_notifications(user_id, before, limit, only == "highlight")
        stored = await self.event_store.get_events(r.event_id for r in rows)
        found = [r for r in rows if r.event_id in stored]
        events = await self.formatter.format([stored[r.event_id] for r in found], user_id,
                                             with_room_id=False)
        items = [{"actions": row.actions, "event": event, "read": row.read,
                  "room_id": row.room_id, "ts": row.ts} for row, event in zip(found, events,
                                                                                strict=True)]
        out: JsonDict = {"notifications": items}
        if len(rows) == limit:
            out["next_token"] = str(rows[-1].stream_ordering)
        return out

    async def add_to_sync(self, user_id: str, joined: dict[str, JsonDict],
                          account_data: list[JsonDict], with_push_rules: bool,
                          thread_counts: bool = False) -> None:
        """Fill ``unread_notifications`` of the joined rooms of a /sync response (one query);
        with ``with_push_rules`` (an initial sync) give the ``m.push_rules`` account data, which
        clients read their rules from, as the server builds them now: also when the user never
        changed a rule, and with the current server defaults when they did. With
        ``thread_counts`` (the filter's ``unread_thread_notifications``) the room counts are
        the main timeline's and each thread's are in ``unread_thread_notifications``."""
        counts = await self.store.get_counts(user_id, list(joined), main_only=thread_counts)
        threads = (await self.store.get_thread_counts(user_id, list(joined))
                   if thread_counts else {})
        for room_id, room in joined.items():
            notifications, highlights = counts.get(room_id, (0, 0))
            room["unread_notifications"] = {"notification_count": notifications,
                                            "highlight_count": highlights}
            if threads.get(room_id):
                room["unread_thread_notifications"] = {
                    root: {"notification_count": n, "highlight_count": h}
                    for root, (n, h) in threads[room_id].items()
                }
        if with_push_rules:
            ruleset = await self.ruleset(user_id)
            account_data[:] = [e for e in account_data if e.get("type") != PUSH_RULES]
            account_data.append({"type": PUSH_RULES, "content": {"global": ruleset.to_json()}})

    async def unread_total(self, user_id: str) -> int:
        """Unread notifications across the user's joined rooms (the push gateway's badge)."""
        rooms = await self.members.get_rooms_for_user(user_id)
        counts = await self.store.get_counts(user_id, list(rooms))
        return sum(n for n, _ in counts.values())
