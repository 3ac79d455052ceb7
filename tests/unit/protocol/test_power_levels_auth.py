"""Authorization rule 10 (v10/v11: rule 9): m.room.power_levels.

https://spec.matrix.org/v1.19/rooms/v12/#authorization-rules
"""

from typing import Any

import pytest
from factories import (
    ALICE,
    BOB,
    CHARLIE,
    ZARA,
    Room,
    assert_rejected,
    standard_room,
    versions,
    versions_where,
)

from edgehs.protocol.room_versions import ROOM_V11, ROOM_V12, RoomVersion
from edgehs.types import JsonDict

# Bob is a moderator (50), Charlie too (50), Zara has 25; state_default stays 50 so Bob may
# send power levels events.
LEVELS = {BOB: 50, CHARLIE: 50, ZARA: 25}


def moderated_room(rv: RoomVersion, **levels: Any) -> Room:
    defaults: dict[str, Any] = {"ban": 75, "kick": 50, "redact": 50, "events": {"m.room.name": 75}}
    return standard_room(rv, users=LEVELS, members=(BOB, CHARLIE, ZARA), **{**defaults, **levels})


def change(room: Room, sender: str = BOB, **changes: Any) -> JsonDict:
    """A power levels event by ``sender`` that is the current one with ``changes`` applied
    (a value of ``None`` removes the key)."""
    content = dict(room.events[room.state[("m.room.power_levels", "")]]["content"])
    content.update(changes)
    content = {key: value for key, value in content.items() if value is not None}
    return room.build("$pl", "m.room.power_levels", sender, content, "")


def users(room: Room, **changes: int | None) -> dict[str, int]:
    """The current users map with ``changes`` (keyed by localpart) applied."""
    current = dict(room.events[room.state[("m.room.power_levels", "")]]["content"]["users"])
    for name, level in changes.items():
        user_id = f"@{name}:example.org"
        if level is None:
            current.pop(user_id, None)
        else:
            current[user_id] = level
    return current


# -- validation: 10.1 - 10.4 ----------------------------------------------------------------------


@versions()
@pytest.mark.parametrize("name", ["users_default", "events_default", "state_default", "ban",
                                  "redact", "kick", "invite"])  # fmt: skip
@pytest.mark.parametrize("bad", ["50", 50.5, True, None, [50]])
def test_10_1_named_levels_must_be_integers(rv: RoomVersion, name: str, bad: Any) -> None:
    room = moderated_room(rv)
    event = change(room, ALICE)
    event["content"][name] = bad
    if bad == "50" and not rv.enforce_int_power_levels:
        room.check(event)  # integer strings are levels before v10
        return
    assert_rejected(room, event, "10.1")
    event["content"][name] = 50
    room.check(event)


@versions()
@pytest.mark.parametrize("name", ["events", "notifications"])
@pytest.mark.parametrize("bad", [[], {"x": "50"}, {"x": 1.5}, "50"])
def test_10_2_level_maps_must_hold_integers(rv: RoomVersion, name: str, bad: Any) -> None:
    room = moderated_room(rv)
    if name == "notifications" and not rv.limit_notifications_power_levels:
        room.check(change(room, ALICE, **{name: bad}))  # not looked at before v6
        return
    if bad == {"x": "50"} and not rv.enforce_int_power_levels:
        room.check(change(room, ALICE, **{name: bad}))  # integer strings before v10
        return
    assert_rejected(room, change(room, ALICE, **{name: bad}), "10.2")
    room.check(change(room, ALICE, **{name: {"room": 20}}))


@versions()
@pytest.mark.parametrize("bad", [[BOB], {"bob": 10}, {BOB: "10"}, {"@:x": 1}, {BOB: False}])
def test_10_3_users_must_map_user_ids_to_integers(rv: RoomVersion, bad: Any) -> None:
    room = moderated_room(rv)
    if bad == {BOB: "10"} and not rv.enforce_int_power_levels:
        room.check(change(room, ALICE, users=bad))  # integer strings before v10
        return
    assert_rejected(room, change(room, ALICE, users=bad), "10.3")
    room.check(change(room, ALICE, users=users(room, zara=10)))


@versions(ROOM_V12)
def test_10_4_v12_creators_cannot_be_listed(rv: RoomVersion) -> None:
    room = Room(rv, create_content={"additional_creators": [CHARLIE]})
    room.join(ALICE)
    for listed in (ALICE, CHARLIE):
        event = room.build("$pl", "m.room.power_levels", ALICE, {"users": {listed: 100}}, "")
        assert_rejected(room, event, "10.4")
    room.check(room.build("$pl", "m.room.power_levels", ALICE, {"users": {BOB: 100}}, ""))


@versions_where(lambda rv: not rv.creators_have_infinite_power)
def test_creators_are_listed_before_v12(rv: RoomVersion) -> None:
    room = Room(rv)
    room.join(ALICE)
    room.check(room.build("$pl", "m.room.power_levels", ALICE, {"users": {ALICE: 100}}, ""))


# -- 10.5: the first power levels event -----------------------------------------------------------


@versions()
def test_10_5_first_power_levels_event(rv: RoomVersion) -> None:
    room = Room(rv)
    room.join(ALICE)
    content = {"users": {BOB: 1000}, "ban": 1000, "events": {"m.room.name": 1000}}
    room.check(room.build("$pl", "m.room.power_levels", ALICE, content, ""))


# -- 10.6: named levels ---------------------------------------------------------------------------


@versions()
def test_10_6_1_cannot_change_a_level_above_yours(rv: RoomVersion) -> None:
    room = moderated_room(rv)
    assert_rejected(room, change(room, ban=50), "10.6.1")
    assert_rejected(room, change(room, ban=None), "10.6.1")


@versions()
def test_10_6_2_cannot_set_a_level_above_yours(rv: RoomVersion) -> None:
    room = moderated_room(rv)
    assert_rejected(room, change(room, kick=60), "10.6.2")
    assert_rejected(room, change(room, invite=51), "10.6.2")
    room.check(change(room, kick=40, redact=None, invite=50))


# -- 10.7, 10.8: events and notifications ---------------------------------------------------------


@versions()
def test_10_7_1_cannot_change_an_event_level_above_yours(rv: RoomVersion) -> None:
    room = moderated_room(rv)
    assert_rejected(room, change(room, events={"m.room.name": 50}), "10.7.1")
    assert_rejected(room, change(room, events={}), "10.7.1")
    room = moderated_room(rv, notifications={"room": 60})
    lowered = change(room, notifications={"room": 40})
    if rv.limit_notifications_power_levels:
        assert_rejected(room, lowered, "10.7.1")
    else:
        room.check(lowered)  # v1-v5 do not look at notifications


@versions()
def test_10_8_1_cannot_set_an_event_level_above_yours(rv: RoomVersion) -> None:
    room = moderated_room(rv)
    events = {"m.room.name": 75, "m.room.topic": 60}
    assert_rejected(room, change(room, events=events), "10.8.1")
    raised = change(room, notifications={"room": 51})
    if rv.limit_notifications_power_levels:
        assert_rejected(room, raised, "10.8.1")
    else:
        room.check(raised)  # v1-v5 do not look at notifications
    room.check(change(room, events={**events, "m.room.topic": 50}, notifications={"room": 5}))


# -- 10.9, 10.10: users ---------------------------------------------------------------------------


@versions()
def test_10_9_1_cannot_change_users_at_or_above_you(rv: RoomVersion) -> None:
    room = moderated_room(rv)
    assert_rejected(room, change(room, users=users(room, charlie=0)), "10.9.1")
    assert_rejected(room, change(room, users=users(room, charlie=None)), "10.9.1")
    room.check(change(room, users=users(room, zara=0)))
    room.check(change(room, users=users(room, zara=None)))


@versions()
def test_10_9_own_entry_may_be_lowered(rv: RoomVersion) -> None:
    room = moderated_room(rv)
    room.check(change(room, users=users(room, bob=10)))
    room.check(change(room, users=users(room, bob=None)))


@versions()
def test_10_10_1_cannot_raise_above_yourself(rv: RoomVersion) -> None:
    room = moderated_room(rv)
    assert_rejected(room, change(room, users=users(room, zara=51)), "10.10.1")
    assert_rejected(room, change(room, users=users(room, evelyn=60)), "10.10.1")
    room.check(change(room, users=users(room, zara=50, evelyn=50)))


@versions()
def test_10_11_otherwise_allow(rv: RoomVersion) -> None:
    room = moderated_room(rv)
    room.check(change(room))


@versions()
def test_creator_power(rv: RoomVersion) -> None:
    """Alice is 100 before v12 and cannot hand out more; in v12 she is infinite."""
    room = moderated_room(rv)
    event = change(room, ALICE, users=users(room, bob=1000))
    if rv.creators_have_infinite_power:
        room.check(event)
    else:
        assert_rejected(room, event, "10.10.1")


def test_legacy_numbering() -> None:
    room = moderated_room(ROOM_V11)
    error = assert_rejected(room, change(room, users=users(room, zara=51)), "10.10.1")
    assert "rule 9.9.1 " in error.msg
    room = moderated_room(ROOM_V12)
    error = assert_rejected(room, change(room, users=users(room, zara=51)), "10.10.1")
    assert "rule 10.10.1 " in error.msg
