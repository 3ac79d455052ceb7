"""Redaction and the client event format (edgehs.protocol.events).

https://spec.matrix.org/v1.19/rooms/v1/#redactions (v1-v5), .../v6/, .../v8/, .../v9/#redactions,
https://spec.matrix.org/v1.19/rooms/v11/#redactions
"""

import copy
from typing import Any

import pytest

from edgehs.protocol.events import redact, strip_for_client
from edgehs.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from edgehs.types import JsonDict

by_version = pytest.mark.parametrize(
    "rv", list(KNOWN_ROOM_VERSIONS.values()), ids=lambda rv: f"v{rv.identifier}"
)


def make_event(type_: str = "m.room.message", **fields: Any) -> JsonDict:
    """A small v10-v12 style PDU (no event_id); keyword arguments override fields."""
    event: JsonDict = {
        "type": type_,
        "room_id": "!room:example.org",
        "sender": "@alice:example.org",
        "content": {"body": "hello"},
        "origin_server_ts": 1_700_000_000_000,
        "depth": 5,
        "prev_events": ["$prev"],
        "auth_events": ["$create", "$member", "$power"],
    }
    event.update(fields)
    return event


# --- redaction ----------------------------------------------------------------------------------

# (type, content, kept content in v10, kept content in v11 and v12)
REDACTION_CASES: list[tuple[str, JsonDict, JsonDict, JsonDict]] = [
    (
        "m.room.message",
        {"body": "secret", "msgtype": "m.text"},
        {},
        {},
    ),
    (
        "m.room.member",
        {
            "membership": "invite",
            "displayname": "Alice",
            "avatar_url": "mxc://x/y",
            "join_authorised_via_users_server": "@bob:example.org",
            "third_party_invite": {
                "display_name": "a...",
                "signed": {"mxid": "@a:x", "token": "t"},
            },
        },
        {"membership": "invite", "join_authorised_via_users_server": "@bob:example.org"},
        {
            "membership": "invite",
            "join_authorised_via_users_server": "@bob:example.org",
            "third_party_invite": {"signed": {"mxid": "@a:x", "token": "t"}},
        },
    ),
    (
        "m.room.member",
        {"membership": "join", "third_party_invite": {"display_name": "no signed key"}},
        {"membership": "join"},
        {"membership": "join"},
    ),
    (
        "m.room.create",
        {
            "creator": "@alice:example.org",
            "room_version": "11",
            "m.federate": False,
            "predecessor": {"room_id": "!old:x"},
            "additional_creators": ["@bob:example.org"],
        },
        {"creator": "@alice:example.org"},
        {
            "creator": "@alice:example.org",
            "room_version": "11",
            "m.federate": False,
            "predecessor": {"room_id": "!old:x"},
            "additional_creators": ["@bob:example.org"],
        },
    ),
    (
        "m.room.join_rules",
        {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}], "extra": 1},
        {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}]},
        {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}]},
    ),
    (
        "m.room.power_levels",
        {
            "ban": 50,
            "events": {"m.room.name": 50},
            "events_default": 0,
            "invite": 0,
            "kick": 50,
            "redact": 50,
            "state_default": 50,
            "users": {"@alice:example.org": 100},
            "users_default": 0,
            "notifications": {"room": 50},
        },
        {
            "ban": 50,
            "events": {"m.room.name": 50},
            "events_default": 0,
            "kick": 50,
            "redact": 50,
            "state_default": 50,
            "users": {"@alice:example.org": 100},
            "users_default": 0,
        },
        {
            "ban": 50,
            "events": {"m.room.name": 50},
            "events_default": 0,
            "invite": 0,
            "kick": 50,
            "redact": 50,
            "state_default": 50,
            "users": {"@alice:example.org": 100},
            "users_default": 0,
        },
    ),
    (
        "m.room.history_visibility",
        {"history_visibility": "shared", "other": "x"},
        {"history_visibility": "shared"},
        {"history_visibility": "shared"},
    ),
    (
        "m.room.redaction",
        {"redacts": "$victim", "reason": "spam"},
        {},
        {"redacts": "$victim"},
    ),
    (
        "m.room.name",
        {"name": "Secret plans"},
        {},
        {},
    ),
]


@by_version
@pytest.mark.parametrize(
    ("type_", "content", "kept_v10", "kept_v11"),
    REDACTION_CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(REDACTION_CASES)],
)
def test_redact_content_per_type(
    rv: RoomVersion, type_: str, content: JsonDict, kept_v10: JsonDict, kept_v11: JsonDict
) -> None:
    expected = kept_v11 if rv.updated_redaction_rules else dict(kept_v10)
    if not rv.redaction_keeps_join_authorised:  # v9 added it to m.room.member
        expected.pop("join_authorised_via_users_server", None)
    if not rv.restricted_join_rule:  # v8 added `allow` to m.room.join_rules
        expected.pop("allow", None)
    assert redact(make_event(type_, content=content, state_key=""), rv)["content"] == expected


@by_version
def test_redact_aliases_kept_before_v6_only(rv: RoomVersion) -> None:
    event = make_event("m.room.aliases", content={"aliases": ["#a:x"], "other": 1}, state_key="x")
    expected = {"aliases": ["#a:x"]} if rv.special_case_aliases_auth else {}
    assert redact(event, rv)["content"] == expected


FULL_PDU_EXTRAS: JsonDict = {
    "event_id": "$ev",
    "state_key": "@alice:example.org",
    "hashes": {"sha256": "abc"},
    "signatures": {"example.org": {"ed25519:1": "sig"}},
    "origin": "example.org",
    "membership": "join",
    "prev_state": [],
    "unsigned": {"age": 5},
    "redacts": "$top",
    "age_ts": 5,
    "custom": "x",
}


@by_version
def test_redact_top_level_keys(rv: RoomVersion) -> None:
    event = make_event("m.room.member", content={"membership": "join"}, **FULL_PDU_EXTRAS)
    common = {
        "event_id",
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "auth_events",
        "origin_server_ts",
    }
    expected = (
        common if rv.updated_redaction_rules else common | {"origin", "membership", "prev_state"}
    )
    redacted = redact(event, rv)
    assert set(redacted) == expected
    for k in expected:
        assert redacted[k] == event[k]


@by_version
def test_redact_adds_empty_content_and_is_idempotent(rv: RoomVersion) -> None:
    event = make_event()
    del event["content"]
    redacted = redact(event, rv)
    assert redacted["content"] == {}
    assert redact(redacted, rv) == redacted
    full = make_event("m.room.power_levels", content=REDACTION_CASES[5][1], **FULL_PDU_EXTRAS)
    assert redact(redact(full, rv), rv) == redact(full, rv)


@by_version
def test_redact_returns_a_deep_copy(rv: RoomVersion) -> None:
    event = make_event("m.room.power_levels", content={"users": {"@a:x": 100}}, state_key="")
    before = copy.deepcopy(event)
    redacted = redact(event, rv)
    redacted["content"]["users"]["@b:x"] = 50
    redacted["prev_events"].append("$x")
    assert event == before


# --- client format ------------------------------------------------------------------------------


def test_strip_for_client_keeps_client_keys_only() -> None:
    event = make_event(
        "m.room.topic",
        content={"topic": "t"},
        state_key="",
        event_id="$e",
        unsigned={"age": 3},
        hashes={"sha256": "h"},
        signatures={"x": {}},
        origin="example.org",
    )
    before = copy.deepcopy(event)
    assert strip_for_client(event) == {
        "type": "m.room.topic",
        "room_id": "!room:example.org",
        "sender": "@alice:example.org",
        "content": {"topic": "t"},
        "origin_server_ts": 1_700_000_000_000,
        "state_key": "",
        "event_id": "$e",
        "unsigned": {"age": 3},
    }
    assert event == before


def test_strip_for_client_serves_redacts_in_both_places() -> None:
    v10_style = make_event("m.room.redaction", content={"reason": "r"}, redacts="$victim")
    v11_style = make_event("m.room.redaction", content={"redacts": "$victim", "reason": "r"})
    for event in (v10_style, v11_style):
        before = copy.deepcopy(event)
        client = strip_for_client(event)
        assert client["redacts"] == "$victim"
        assert client["content"] == {"redacts": "$victim", "reason": "r"}
        assert event == before
    # `redacts` on other event types is passed through untouched.
    assert strip_for_client(make_event(redacts="$x"))["content"] == {"body": "hello"}
