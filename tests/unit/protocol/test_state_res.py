"""State resolution v1, v2 / v2.1.

https://spec.matrix.org/v1.19/rooms/v1/#state-resolution
https://spec.matrix.org/v1.19/rooms/v11/#state-resolution
https://spec.matrix.org/v1.19/rooms/v12/#state-resolution

The classic scenarios (the ones Synapse's and Ruma's suites use) run on a small DAG harness: a
fixed room prelude, then each test's events joined by ``prev_events`` chains; the state before
an event with several parents is the resolution of their states, exactly as a server computes
it. Each asserts the state at END: the state at START updated with the expected events.
"""

import hashlib
import itertools
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

import pytest
from factories import ALICE, BOB, CHARLIE, EVELYN, ZARA, Room, member, versions, versions_where

from edgehs.protocol.room_versions import ROOM_V1, ROOM_V2, ROOM_V11, ROOM_V12, RoomVersion
from edgehs.protocol.state_res import (
    is_power_event,
    resolve_state,
    resolve_state_v1,
    resolve_state_v2,
    separate,
)
from edgehs.types import JsonDict, StateKey

TOPIC = "m.room.topic"
POWER = "m.room.power_levels"
MEMBER = "m.room.member"
JOIN_RULES = "m.room.join_rules"
MESSAGE = "m.room.message"

# The prelude every scenario starts from: (id, sender, type, state_key, content).
PRELUDE = [
    ("IMA", ALICE, MEMBER, ALICE, member("join")),
    ("IPOWER", ALICE, POWER, "", {"users": {ALICE: 100}}),
    ("IJR", ALICE, JOIN_RULES, "", {"join_rule": "public"}),
    ("IMB", BOB, MEMBER, BOB, member("join")),
    ("IMC", CHARLIE, MEMBER, CHARLIE, member("join")),
    ("IMZ", ZARA, MEMBER, ZARA, member("join")),
    ("START", ZARA, MESSAGE, None, {}),
    ("END", ZARA, MESSAGE, None, {}),
]
PRELUDE_CHAIN = ["START", "IMZ", "IMC", "IMB", "IJR", "IPOWER", "IMA", "CREATE"]


class Dag:
    """A room DAG with the state after every event; ids are written without the ``$``."""

    def __init__(self, rv: RoomVersion) -> None:
        self.rv = rv
        self.room = Room(rv, create_id="$CREATE")
        self.state_after: dict[str, dict[StateKey, str]] = {"$CREATE": dict(self.room.state)}

    async def fetch(self, event_ids: Collection[str]) -> Mapping[str, JsonDict]:
        return {e: self.room.events[e] for e in event_ids if e in self.room.events}

    async def resolve(self, states: list[dict[StateKey, str]]) -> dict[StateKey, str]:
        return await resolve_state(self.rv, states, self.fetch)

    def content(self, event_type: str, content: JsonDict) -> JsonDict:
        if event_type == POWER:  # v12: the creator is infinite and may not be listed
            return self.room.power_levels(content.get("users", {}), **{
                k: v for k, v in content.items() if k != "users"
            })  # fmt: skip
        return content

    async def run(self, events: list[tuple[Any, ...]], chains: list[list[str]]) -> None:
        """Add ``events`` (timestamps in list order) in topological order of ``chains``; each
        chain lists events newest first, each one's parent following it."""
        specs = {spec[0]: (index, spec) for index, spec in enumerate(PRELUDE + events, start=1)}
        prevs: dict[str, list[str]] = {}
        for chain in [PRELUDE_CHAIN, *chains]:
            for child, parent in itertools.pairwise(chain):
                prevs.setdefault(child, [])
                if parent not in prevs[child]:
                    prevs[child].append(parent)
        done = {"CREATE"}
        while len(done) < len(prevs) + 1:
            for name, parents in prevs.items():
                if name not in done and all(p in done for p in parents):
                    await self._add(specs[name], parents)
                    done.add(name)

    async def _add(self, spec: tuple[int, tuple[Any, ...]], parents: list[str]) -> None:
        ts, (name, sender, event_type, state_key, content) = spec
        states = [self.state_after["$" + p] for p in parents]
        before = states[0] if len(states) == 1 else await self.resolve(states)
        event = self.room.build(
            "$" + name,
            event_type,
            sender,
            self.content(event_type, content),
            state_key,
            state=before,
            prev_events=["$" + p for p in parents],
            origin_server_ts=ts,
        )
        self.room.events[event["event_id"]] = event
        after = dict(before)
        if state_key is not None:
            after[(event_type, state_key)] = event["event_id"]
        self.state_after[event["event_id"]] = after

    def expected(self, names: list[str]) -> dict[StateKey, str]:
        state = dict(self.state_after["$START"])
        for name in names:
            event = self.room.events["$" + name]
            state[(event["type"], event["state_key"])] = event["event_id"]
        return state


async def scenario(
    rv: RoomVersion, events: list[Any], chains: list[Any], expect: list[str]
) -> None:
    dag = Dag(rv)
    await dag.run(events, chains)
    assert dag.state_after["$END"] == dag.expected(expect)


# Versions resolving state with v2 or v2.1 (the classic scenarios are v2's).
V2 = versions_where(lambda rv: rv.state_res_v2)


# -- the classic scenarios ------------------------------------------------------------------------


@V2
async def test_ban_vs_pl(rv: RoomVersion) -> None:
    """Alice bans Bob while Bob, concurrently, sends power levels: the ban wins."""
    events = [
        ("PA", ALICE, POWER, "", {"users": {ALICE: 100, BOB: 50}}),
        ("MA", ALICE, MEMBER, ALICE, member("join")),
        ("MB", ALICE, MEMBER, BOB, member("ban")),
        ("PB", BOB, POWER, "", {"users": {ALICE: 100, BOB: 50}}),
    ]
    chains = [["END", "MB", "MA", "PA", "START"], ["END", "PB", "PA"]]
    await scenario(rv, events, chains, ["PA", "MA", "MB"])


@V2
async def test_join_rule_evasion(rv: RoomVersion) -> None:
    """Evelyn joins concurrently with the room going invite-only: her join is undone."""
    events = [
        ("JR", ALICE, JOIN_RULES, "", {"join_rule": "invite"}),
        ("ME", EVELYN, MEMBER, EVELYN, member("join")),
    ]
    await scenario(rv, events, [["END", "JR", "START"], ["END", "ME", "START"]], ["JR"])


@V2
async def test_offtopic_pl(rv: RoomVersion) -> None:
    """A chain of power level changes against its own start resolves to its tip."""
    events = [
        ("PA", ALICE, POWER, "", {"users": {ALICE: 100, BOB: 50}}),
        ("PB", BOB, POWER, "", {"users": {ALICE: 100, BOB: 50, CHARLIE: 50}}),
        ("PC", CHARLIE, POWER, "", {"users": {ALICE: 100, BOB: 50, CHARLIE: 0}}),
    ]
    await scenario(rv, events, [["END", "PC", "PB", "PA", "START"], ["END", "PA"]], ["PC"])


def topic_events() -> list[tuple[Any, ...]]:
    return [
        ("T1", ALICE, TOPIC, "", {}),
        ("PA1", ALICE, POWER, "", {"users": {ALICE: 100, BOB: 50}}),
        ("T2", ALICE, TOPIC, "", {}),
        ("PA2", ALICE, POWER, "", {"users": {ALICE: 100, BOB: 0}}),
        ("PB", BOB, POWER, "", {"users": {ALICE: 100, BOB: 50}}),
        ("T3", BOB, TOPIC, "", {}),
    ]


@V2
async def test_topic_basic(rv: RoomVersion) -> None:
    """Bob's topic rests on power Alice took away concurrently: Alice's topic stays."""
    chains = [["END", "PA2", "T2", "PA1", "T1", "START"], ["END", "T3", "PB", "PA1"]]
    await scenario(rv, topic_events(), chains, ["PA2", "T2"])


@V2
async def test_topic_reset(rv: RoomVersion) -> None:
    """Bob's topic is undone by his ban, and the topic goes back to Alice's T1."""
    events = [
        ("T1", ALICE, TOPIC, "", {}),
        ("PA", ALICE, POWER, "", {"users": {ALICE: 100, BOB: 50}}),
        ("T2", BOB, TOPIC, "", {}),
        ("MB", ALICE, MEMBER, BOB, member("ban")),
    ]
    chains = [["END", "MB", "T2", "PA", "T1", "START"], ["END", "T1"]]
    await scenario(rv, events, chains, ["T1", "MB", "PA"])


@V2
async def test_topic_setting(rv: RoomVersion) -> None:
    """A message merges the branches; Alice's later topic T4 then wins."""
    events = [
        *topic_events(),
        ("MZ1", ZARA, MESSAGE, None, {}),
        ("T4", ALICE, TOPIC, "", {}),
    ]
    chains = [
        ["END", "T4", "MZ1", "PA2", "T2", "PA1", "T1", "START"],
        ["END", "MZ1", "T3", "PB", "PA1"],
    ]
    await scenario(rv, events, chains, ["T4", "PA2"])


@V2
async def test_mainline_sort(rv: RoomVersion) -> None:
    """T3 wins over the later T4 because T4 rests on an older power levels event."""
    events = [
        ("T1", ALICE, TOPIC, "", {}),
        ("PA1", ALICE, POWER, "", {"users": {ALICE: 100, BOB: 50}}),
        ("T2", ALICE, TOPIC, "", {}),
        ("PA2", ALICE, POWER, "", {"users": {ALICE: 100, BOB: 50}, "events": {POWER: 100}}),
        ("PB", BOB, POWER, "", {"users": {ALICE: 100, BOB: 50}}),
        ("T3", BOB, TOPIC, "", {}),
        ("T4", ALICE, TOPIC, "", {}),
    ]
    chains = [["END", "T3", "PA2", "T2", "PA1", "T1", "START"], ["END", "T4", "PB", "PA1"]]
    await scenario(rv, events, chains, ["T3", "PA2"])


# -- v2.1 (room v12) against v2 -------------------------------------------------------------------

V12_WITH_V2 = replace(ROOM_V12, identifier="12-with-v2", state_res_v2_1=False)


async def resolve(room: Room, states: list[dict[StateKey, str]]) -> dict[StateKey, str]:
    async def fetch(event_ids: Collection[str]) -> Mapping[str, JsonDict]:
        return {e: room.events[e] for e in event_ids if e in room.events}

    return await resolve_state(room.rv, states, fetch)


def old_join_rules_room(rv: RoomVersion) -> tuple[Room, dict[StateKey, str], dict[StateKey, str]]:
    """MSC4297 problem A: Alice sets JR1 then JR2, Bob joins (citing JR2), Alice leaves; one
    state set (say, from a faulty /state answer) still has JR1."""
    room = Room(rv)
    room.join(ALICE)
    room.add("$power", POWER, ALICE, room.power_levels(), "")
    room.add("$JR1", JOIN_RULES, ALICE, {"join_rule": "public"}, "")
    room.add("$JR2", JOIN_RULES, ALICE, {"join_rule": "knock"}, "")
    room.join(BOB)
    room.add("$leave", MEMBER, ALICE, member("leave"), ALICE)
    good = dict(room.state)
    return room, good, {**good, (JOIN_RULES, ""): "$JR1"}


@versions(ROOM_V11, V12_WITH_V2)
async def test_v2_loses_join_rules_set_by_a_departed_user(rv: RoomVersion) -> None:
    room, good, stale = old_join_rules_room(rv)
    resolved = await resolve(room, [good, stale])
    assert (JOIN_RULES, "") not in resolved  # the "state reset" v2.1 fixes
    assert resolved[(MEMBER, ALICE)] == "$leave"


@versions(ROOM_V12)
async def test_v2_1_replays_conflicts_from_an_empty_state(rv: RoomVersion) -> None:
    room, good, stale = old_join_rules_room(rv)
    assert await resolve(room, [good, stale]) == good


def promotion_chain_room(rv: RoomVersion) -> tuple[Room, dict[StateKey, str], dict[StateKey, str]]:
    """MSC4297 problem B: Alice promotes Bob (PA), Bob promotes Charlie (PB), Zara joins (citing
    PB), Charlie changes the levels again (PC); one state set still has the first levels P0."""
    room = Room(rv)
    room.join(ALICE)
    room.add("$P0", POWER, ALICE, room.power_levels(), "")
    room.add("$jr", JOIN_RULES, ALICE, {"join_rule": "public"}, "")
    room.join(BOB)
    room.join(CHARLIE)
    room.add("$PA", POWER, ALICE, room.power_levels({ALICE: 100, BOB: 50}), "")
    room.add("$PB", POWER, BOB, room.power_levels({ALICE: 100, BOB: 50, CHARLIE: 50}), "")
    room.join(ZARA)
    levels = {ALICE: 100, BOB: 50, CHARLIE: 50, ZARA: 10}
    room.add("$PC", POWER, CHARLIE, room.power_levels(levels), "")
    good = dict(room.state)
    return room, good, {**good, (POWER, ""): "$P0"}


@versions(ROOM_V11, V12_WITH_V2)
async def test_v2_misses_events_between_conflicted_ones(rv: RoomVersion) -> None:
    room, good, stale = promotion_chain_room(rv)
    assert (await resolve(room, [good, stale]))[(POWER, "")] == "$P0"


@versions(ROOM_V12)
async def test_v2_1_replays_the_conflicted_subgraph(rv: RoomVersion) -> None:
    room, good, stale = promotion_chain_room(rv)
    assert await resolve(room, [good, stale]) == good


# -- tie-breaks -----------------------------------------------------------------------------------


def rival_join_rules(
    rv: RoomVersion, levels: tuple[int, int], ts: tuple[int, int], ids: tuple[str, str]
) -> tuple[Room, list[dict[StateKey, str]]]:
    """Charlie and Bob (with ``levels``) each change the join rules on top of the same state."""
    room = Room(rv)
    room.join(ALICE)
    users = {ALICE: 100, CHARLIE: levels[0], BOB: levels[1]}
    room.add("$power", POWER, ALICE, room.power_levels(users, events={JOIN_RULES: 0}), "")
    room.join(CHARLIE)
    room.join(BOB)
    base = dict(room.state)
    states = []
    for sender, event_id, when in ((CHARLIE, ids[0], ts[0]), (BOB, ids[1], ts[1])):
        room.state = dict(base)
        room.add(event_id, JOIN_RULES, sender, {"join_rule": "invite"}, "", origin_server_ts=when)
        states.append(dict(room.state))
    return room, states


@V2
@pytest.mark.parametrize(
    ("levels", "ts", "ids", "winner"),
    [
        ((100, 50), (20, 10), ("$a", "$b"), "$b"),  # higher power first, so the other wins
        ((50, 100), (10, 20), ("$a", "$b"), "$a"),
        ((50, 50), (20, 10), ("$a", "$b"), "$a"),  # same power: earlier timestamp first
        ((50, 50), (10, 20), ("$a", "$b"), "$b"),
        ((50, 50), (10, 10), ("$z", "$y"), "$z"),  # same power and timestamp: smaller id first
        ((50, 50), (10, 10), ("$y", "$z"), "$z"),
    ],
)
async def test_reverse_topological_power_ordering(
    rv: RoomVersion, levels: Any, ts: Any, ids: Any, winner: str
) -> None:
    """Both join rules pass auth; the one sorted last is applied last and wins."""
    room, states = rival_join_rules(rv, levels, ts, ids)
    assert (await resolve(room, states))[(JOIN_RULES, "")] == winner


@V2
async def test_mainline_ties_by_timestamp_then_event_id(rv: RoomVersion) -> None:
    room = Room(rv)
    room.join(ALICE)
    room.add("$power", POWER, ALICE, room.power_levels(), "")
    base = dict(room.state)
    results = []
    for ts, ids in (((5, 9), ("$x", "$w")), ((9, 5), ("$x", "$w")), ((7, 7), ("$x", "$w"))):
        room.state = dict(base)
        one = room.add(ids[0], TOPIC, ALICE, {"topic": "1"}, "", origin_server_ts=ts[0])
        room.state = dict(base)
        two = room.add(ids[1], TOPIC, ALICE, {"topic": "2"}, "", origin_server_ts=ts[1])
        states = [{**base, (TOPIC, ""): one["event_id"]}, {**base, (TOPIC, ""): two["event_id"]}]
        results.append((await resolve(room, states))[(TOPIC, "")])
    assert results == ["$w", "$x", "$x"]


# -- definitions and edge cases -------------------------------------------------------------------


def test_separate() -> None:
    a, b = ("t", "a"), ("t", "b")
    unconflicted, conflicted = separate([{a: "$1", b: "$2"}, {a: "$1", b: "$3"}, {a: "$1"}])
    assert unconflicted == {a: "$1"}
    assert conflicted == {b: {"$2", "$3"}}


def test_is_power_event() -> None:
    def event(event_type: str, sender: str, state_key: str, **content: Any) -> JsonDict:
        return {"type": event_type, "sender": sender, "state_key": state_key, "content": content}

    assert is_power_event(event(POWER, ALICE, ""))
    assert is_power_event(event(JOIN_RULES, ALICE, ""))
    assert is_power_event(event(MEMBER, ALICE, BOB, membership="ban"))
    assert is_power_event(event(MEMBER, ALICE, BOB, membership="leave"))
    assert not is_power_event(event(MEMBER, BOB, BOB, membership="leave"))
    assert not is_power_event(event(MEMBER, ALICE, BOB, membership="invite"))
    assert not is_power_event(event(TOPIC, ALICE, ""))


@versions()
async def test_trivial_inputs(rv: RoomVersion) -> None:
    room = Room(rv)
    assert await resolve(room, []) == {}
    assert await resolve(room, [dict(room.state)]) == room.state
    assert await resolve(room, [dict(room.state), dict(room.state)]) == room.state


@versions()
async def test_unknown_events_take_no_part(rv: RoomVersion) -> None:
    room = Room(rv)
    room.join(ALICE)
    room.add("$power", POWER, ALICE, room.power_levels(), "")
    base = dict(room.state)
    room.add("$topic", TOPIC, ALICE, {"topic": "t"}, "")
    states = [dict(room.state), {**base, (TOPIC, ""): "$unknown"}]
    assert await resolve(room, states) == room.state


# -- state resolution v1 (room version 1) ---------------------------------------------------------

TOPICS = [
    ("T1", ALICE, TOPIC, "", {"topic": "1"}),
    ("T2", ALICE, TOPIC, "", {"topic": "2"}),
    ("T3", ALICE, TOPIC, "", {"topic": "3"}),
]
TOPIC_CHAINS = [["END", "T2", "T1", "START"], ["END", "T3", "START"]]


async def test_v1_other_conflicts_take_the_deepest_event() -> None:
    """Step 5: T2 is deeper than T3 (v2 would take T3, the latest by timestamp)."""
    await scenario(ROOM_V1, TOPICS, TOPIC_CHAINS, ["T2"])
    await scenario(ROOM_V2, TOPICS, TOPIC_CHAINS, ["T3"])


async def test_v1_power_levels_applied_by_depth_until_one_fails() -> None:
    """Step 2: PA (shallower, Alice lowers herself to 10) goes in first; PB (deeper, Alice gives
    herself 100 again) is not allowed in that state, so PA stays."""
    events = [
        ("PA", ALICE, POWER, "", {"users": {ALICE: 10}}),
        ("M1", ZARA, MESSAGE, None, {}),
        ("M2", ZARA, MESSAGE, None, {}),
        ("PB", ALICE, POWER, "", {"users": {ALICE: 100, BOB: 50}}),
    ]
    await scenario(ROOM_V1, events, [["END", "PA", "START"], ["END", "PB", "M2", "M1", "START"]],
                   ["PA"])
    # Both allowed: the deeper one is applied last.
    events[0] = ("PA", ALICE, POWER, "", {"users": {ALICE: 100, CHARLIE: 10}})
    await scenario(ROOM_V1, events, [["END", "PA", "START"], ["END", "PB", "M2", "M1", "START"]],
                   ["PB"])


async def test_v1_member_conflicts_stop_at_a_disallowed_event() -> None:
    """Step 4: the ban (shallower) goes in first; Charlie's own later leave is not allowed for
    a banned user, so the ban stays."""
    events = [
        ("BAN", ALICE, MEMBER, CHARLIE, member("ban")),
        ("M1", ZARA, MESSAGE, None, {}),
        ("LEAVE", CHARLIE, MEMBER, CHARLIE, member("leave")),
    ]
    await scenario(ROOM_V1, events, [["END", "BAN", "START"], ["END", "LEAVE", "M1", "START"]],
                   ["BAN"])


async def test_v1_deepest_event_must_pass_auth() -> None:
    """Step 5: a deeper topic whose sender cannot set topics in R loses to a shallower one."""
    events = [
        ("PA", ALICE, POWER, "", {"users": {ALICE: 100, BOB: 50}}),
        ("TB", BOB, TOPIC, "", {"topic": "bob"}),
        ("PB", ALICE, POWER, "", {"users": {ALICE: 100}}),
        ("TA", ALICE, TOPIC, "", {"topic": "alice"}),
    ]
    # TB (depth +2) conflicts with TA (depth +1); PB removes Bob's power in the end state.
    chains = [["END", "TB", "PA", "START"], ["END", "TA", "START"], ["END", "PB", "PA"]]
    await scenario(ROOM_V1, events, chains, ["PB", "TA"])


@versions()
async def test_entry_point_picks_the_algorithm(rv: RoomVersion) -> None:
    dag = Dag(rv)
    await dag.run(TOPICS, TOPIC_CHAINS)
    states = [dag.state_after["$T2"], dag.state_after["$T3"]]
    chosen = resolve_state_v2 if rv.state_res_v2 else resolve_state_v1
    assert await resolve_state(rv, states, dag.fetch) == await chosen(rv, states, dag.fetch)
    expected = "$T2" if not rv.state_res_v2 else "$T3"
    assert (await resolve_state(rv, states, dag.fetch))[(TOPIC, "")] == expected


async def test_v1_equal_depths_take_the_lowest_sha1_of_the_event_id() -> None:
    events = [("T1", ALICE, TOPIC, "", {"topic": "1"}), ("T3", ALICE, TOPIC, "", {"topic": "3"})]
    lowest = min(["T1", "T3"], key=lambda name: hashlib.sha1(f"${name}".encode()).digest())
    await scenario(ROOM_V1, events, [["END", "T1", "START"], ["END", "T3", "START"]], [lowest])
