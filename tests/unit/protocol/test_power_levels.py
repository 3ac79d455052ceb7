"""Power level helpers: https://spec.matrix.org/v1.19/client-server-api/#mroompower_levels"""

from typing import Any

import pytest
from factories import ALICE, BOB, CHARLIE, Room, versions

from edgehs.protocol.power_levels import (
    as_int,
    creators,
    event_power_level,
    get_power_levels_content,
    named_power_level,
    notification_power_level,
    user_power_level,
    with_integer_levels,
)
from edgehs.protocol.room_versions import ROOM_V10, ROOM_V11, ROOM_V12, RoomVersion


def test_creators_per_version() -> None:
    for rv, expected in ((ROOM_V10, {BOB}), (ROOM_V11, {ALICE}), (ROOM_V12, {ALICE, CHARLIE})):
        room = Room(rv, create_content={"creator": BOB, "additional_creators": [CHARLIE]})
        assert creators(room.create, rv) == expected


@versions(ROOM_V10, ROOM_V11)
def test_user_level_without_power_levels(rv: RoomVersion) -> None:
    create = Room(rv).create
    assert user_power_level(ALICE, None, create, rv) == 100
    assert user_power_level(BOB, None, create, rv) == 0


@versions(ROOM_V12)
def test_v12_creators_are_infinite(rv: RoomVersion) -> None:
    create = Room(rv, create_content={"additional_creators": [CHARLIE]}).create
    levels = {"users": {BOB: 100}, "users_default": 10}
    for power_levels in (None, levels):
        assert user_power_level(ALICE, power_levels, create, rv) == float("inf")
        assert user_power_level(CHARLIE, power_levels, create, rv) == float("inf")
    assert user_power_level(BOB, None, create, rv) == 0
    assert user_power_level(BOB, levels, create, rv) == 100


@versions()
def test_user_level_from_power_levels(rv: RoomVersion) -> None:
    create = Room(rv).create
    levels: dict[str, Any] = {"users": {BOB: 42}}
    assert user_power_level(BOB, levels, create, rv) == 42
    assert user_power_level(CHARLIE, levels, create, rv) == 0
    assert user_power_level(CHARLIE, {**levels, "users_default": 7}, create, rv) == 7
    if not rv.creators_have_infinite_power:
        assert user_power_level(ALICE, levels, create, rv) == 0  # not listed: no creator bonus


def test_event_levels() -> None:
    assert event_power_level("m.room.topic", "", None) == 0
    assert event_power_level("m.room.message", None, None) == 0
    assert event_power_level("m.room.topic", "", {}) == 50
    assert event_power_level("m.room.message", None, {}) == 0
    levels = {"state_default": 20, "events_default": 5, "events": {"m.room.topic": 70}}
    assert event_power_level("m.room.topic", "", levels) == 70
    assert event_power_level("m.room.name", "", levels) == 20
    assert event_power_level("m.room.message", None, levels) == 5
    assert event_power_level("m.room.topic", None, levels) == 70


def test_named_levels() -> None:
    for levels in (None, {}):
        assert [named_power_level(n, levels) for n in ("invite", "kick", "ban", "redact")] == [
            0,
            50,
            50,
            50,
        ]
    assert named_power_level("ban", {"ban": 20}) == 20
    assert notification_power_level("room", None) == 50
    assert notification_power_level("room", {"notifications": {"room": 10}}) == 10


def test_get_power_levels_content() -> None:
    room = Room(ROOM_V11)
    assert get_power_levels_content({}) is None
    event = room.add("$pl", "m.room.power_levels", ALICE, {"users": {}}, "")
    assert get_power_levels_content({("m.room.power_levels", ""): event}) == {"users": {}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5), (-3, -3), ("12", 12), ("-4", -4), ("+7", 7), (True, 1000), ("x", 1000),
     (None, 1000), (1.5, 1000), ("", 1000), ("-", 1000)],
)  # fmt: skip
def test_as_int(value: Any, expected: int) -> None:
    assert as_int(value, 1000) == expected


def test_with_integer_levels_for_an_upgrade_to_v10() -> None:
    content = {
        "users": {ALICE: "100", BOB: 50, CHARLIE: "x"},
        "events": {"m.room.name": " 40"},
        "notifications": {"room": "-5"},
        "kick": "60",
        "ban": 50,
        "redact": True,
    }
    assert with_integer_levels(content) == {
        "users": {ALICE: 100, BOB: 50, CHARLIE: "x"},
        "events": {"m.room.name": 40},
        "notifications": {"room": -5},
        "kick": 60,
        "ban": 50,
        "redact": True,
    }
    assert content["kick"] == "60"  # the input is not changed
