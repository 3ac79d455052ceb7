"""Tiny PDU factories for protocol tests: literal event ids, no hashing or signing.

A :class:`Room` builds federation-format events for one room version, choosing each event's
``auth_events`` from a state map with ``auth_types_for_event`` exactly as a server would, so tests
only say what differs from a well-formed event.
"""

import itertools
import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from edgehs.errors import AuthError
from edgehs.protocol.auth_context import rule_label
from edgehs.protocol.event_auth import auth_types_for_event, check_auth_rules
from edgehs.protocol.events import auth_event_ids
from edgehs.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from edgehs.types import JsonDict, StateKey

SERVER = "example.org"
ALICE = "@alice:example.org"
BOB = "@bob:example.org"
CHARLIE = "@charlie:example.org"
EVELYN = "@evelyn:example.org"
ZARA = "@zara:example.org"
MALLORY = "@mallory:evil.example"

ALL_VERSIONS = list(KNOWN_ROOM_VERSIONS.values())


def versions(*rvs: RoomVersion) -> Any:
    """``pytest.mark.parametrize`` over room versions (all of them when none are named)."""
    chosen = list(rvs) or ALL_VERSIONS
    return pytest.mark.parametrize("rv", chosen, ids=[f"v{rv.identifier}" for rv in chosen])


def versions_where(predicate: Callable[[RoomVersion], bool]) -> Any:
    """``pytest.mark.parametrize`` over the room versions for which ``predicate`` holds."""
    return versions(*[rv for rv in ALL_VERSIONS if predicate(rv)])


def domain(user_id: str) -> str:
    return user_id.partition(":")[2]


def localpart(user_id: str) -> str:
    return user_id[1:].partition(":")[0]


def member(membership: str, **extra: Any) -> JsonDict:
    return {"membership": membership, **extra}


class Room:
    """Events of one room, with a current state that :meth:`add` moves forward."""

    def __init__(
        self,
        rv: RoomVersion,
        creator: str = ALICE,
        *,
        create_id: str = "$create",
        create_content: JsonDict | None = None,
    ) -> None:
        self.rv = rv
        self.creator = creator
        self.events: dict[str, JsonDict] = {}
        self.state: dict[StateKey, str] = {}
        self._clock = itertools.count(1)
        self.room_id = "!" + create_id[1:] if rv.room_id_from_create_event else "!room:" + SERVER
        content: JsonDict = {"room_version": rv.identifier}
        if not rv.implicit_room_creator:
            content["creator"] = creator
        content.update(create_content or {})
        create = self._pdu(create_id, "m.room.create", creator, content, "", [], [], 1)
        if rv.room_id_from_create_event:
            del create["room_id"]
        self._store(create)

    @property
    def create(self) -> JsonDict:
        return self.events[self.state[("m.room.create", "")]]

    def _pdu(
        self,
        event_id: str,
        event_type: str,
        sender: str,
        content: JsonDict,
        state_key: str | None,
        auth_events: list[str],
        prev_events: list[str],
        depth: int,
    ) -> JsonDict:
        event: JsonDict = {
            "event_id": event_id,
            "room_id": self.room_id,
            "type": event_type,
            "sender": sender,
            "content": content,
            "auth_events": self.refs(auth_events),
            "prev_events": self.refs(prev_events),
            "depth": depth,
            "origin_server_ts": next(self._clock),
            "hashes": {"sha256": "unchecked"},
            "signatures": {domain(sender): {"ed25519:a": "unchecked"}},
        }
        if state_key is not None:
            event["state_key"] = state_key
        return event

    def refs(self, event_ids: list[str]) -> list[Any]:
        """``event_ids`` in the room version's format: v1/v2 cite ``[id, {"sha256": hash}]``."""
        if not self.rv.event_refs_with_hashes:
            return list(event_ids)
        return [[event_id, {"sha256": "unchecked"}] for event_id in event_ids]

    def _store(self, event: JsonDict) -> None:
        self.events[event["event_id"]] = event
        if "state_key" in event:
            self.state[(event["type"], event["state_key"])] = event["event_id"]
        self.last = [event["event_id"]]

    def power_levels(self, users: Mapping[str, int] | None = None, **levels: Any) -> JsonDict:
        """Power levels content; the creator(s) are left out of ``users`` in v12, where they
        are infinite and may not be listed."""
        listed = dict(users if users is not None else {self.creator: 100})
        if self.rv.creators_have_infinite_power:
            creators = {self.creator, *self.create["content"].get("additional_creators", [])}
            listed = {user: level for user, level in listed.items() if user not in creators}
        return {"users": listed, **levels}

    def build(
        self,
        event_id: str,
        event_type: str,
        sender: str,
        content: JsonDict | None = None,
        state_key: str | None = None,
        *,
        state: Mapping[StateKey, str] | None = None,
        prev_events: list[str] | None = None,
        **fields: Any,
    ) -> JsonDict:
        """An event on top of ``state`` (default: the current state), not applied to it."""
        state = self.state if state is None else state
        content = {} if content is None else content
        keys = auth_types_for_event(event_type, sender, state_key, content, self.rv)
        auth_ids = [state[key] for key in keys if key in state]
        prevs = self.last if prev_events is None else prev_events
        depth = 1 + max((self.events[p]["depth"] for p in prevs if p in self.events), default=0)
        event = self._pdu(event_id, event_type, sender, content, state_key, auth_ids, prevs, depth)
        event.update(fields)
        return event

    def add(self, *args: Any, **kwargs: Any) -> JsonDict:
        """:meth:`build` an event and apply it to the current state (no auth check)."""
        event = self.build(*args, **kwargs)
        self._store(event)
        return event

    def join(self, user: str, event_id: str | None = None) -> JsonDict:
        event_id = event_id or f"$join-{localpart(user)}"
        return self.add(event_id, "m.room.member", user, member("join"), user)

    def auth_events_for(self, event: JsonDict) -> dict[StateKey, JsonDict]:
        """The events ``event`` cites, by key, plus the create event (which v12 does not cite)."""
        found = {("m.room.create", ""): self.create}
        for event_id in auth_event_ids(event):
            if event_id in self.events:
                cited = self.events[event_id]
                found[(cited["type"], cited["state_key"])] = cited
        return found

    def check(self, event: JsonDict, **kwargs: Any) -> None:
        """``check_auth_rules`` against the events ``event`` cites."""
        check_auth_rules(event, self.auth_events_for(event), self.rv, **kwargs)


def standard_room(
    rv: RoomVersion,
    *,
    join_rule: str = "public",
    users: Mapping[str, int] | None = None,
    members: tuple[str, ...] = (BOB,),
    **levels: Any,
) -> Room:
    """Alice creates the room and joins; power levels (Alice 100, or infinite in v12, plus
    ``users``), the join rule, then each of ``members`` joins."""
    room = Room(rv)
    room.join(ALICE)
    power = room.power_levels({ALICE: 100, **(users or {})}, **levels)
    room.add("$power", "m.room.power_levels", ALICE, power, "")
    room.add("$join_rules", "m.room.join_rules", ALICE, {"join_rule": join_rule}, "")
    for user in members:
        if join_rule != "public":
            room.add(f"$invite-{localpart(user)}", "m.room.member", ALICE, member("invite"), user)
        room.join(user)
    return room


def assert_rejected(
    room: Room, event: JsonDict, rule: str, *, legacy: str | None = None, **kwargs: Any
) -> AuthError:
    """``event`` fails the (v12-numbered) ``rule``, reported in ``room``'s own numbering."""
    label = rule_label(room.rv, rule, legacy)
    with pytest.raises(AuthError, match=rf"authorization rule {re.escape(label)} ") as caught:
        room.check(event, **kwargs)
    return caught.value
