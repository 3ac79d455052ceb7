"""Push rule evaluation: every condition kind, and the default rules against typical events.

https://spec.matrix.org/v1.19/client-server-api/#conditions-1
https://spec.matrix.org/v1.19/appendices/#dot-separated-property-paths
"""

from typing import Any

import pytest

from edgehs.protocol.push_eval import (
    PushContext,
    condition_matches,
    evaluate,
    room_member_count,
    split_path,
)
from edgehs.protocol.push_rules import DefaultChange, PushRule, build_ruleset

ALICE = "@alice:example.org"
BOB = "@bob:example.org"
ROOM = "!room:example.org"


def ctx(**kw: Any) -> PushContext:
    values: dict[str, Any] = {"user_id": ALICE, "display_name": "Alice Liddell",
                              "member_count": 5, "sender_power_level": 0, "power_levels": None}
    values.update(kw)
    return PushContext(**values)


def msg(body: str = "hello", msgtype: str = "m.text", **content: Any) -> dict[str, Any]:
    return {"type": "m.room.message", "room_id": ROOM, "sender": BOB, "event_id": "$e",
            "content": {"msgtype": msgtype, "body": body, **content}}


# --- paths ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "parts"), [
    ("content.body", ["content", "body"]),
    ("content.m\\.relates_to", ["content", "m.relates_to"]),
    ("content.m\\\\foo", ["content", "m\\foo"]),
    ("content.m\\x", ["content", "m\\x"]),
    ("type", ["type"]),
])
def test_split_path(key: str, parts: list[str]) -> None:
    assert split_path(key) == parts


# --- event_match ----------------------------------------------------------------------------------

TOPIC = {"type": "m.room.topic", "state_key": "", "content": {"topic": "Lunch plans"}}


@pytest.mark.parametrize(("topic", "matches"), [
    ("Lunch plans", True), ("LUNCH", True), (" lunch", False), ("lunc", False), (None, False),
])
def test_event_match_whole_value(topic: Any, matches: bool) -> None:
    event = {**TOPIC, "content": {"topic": topic}}
    cond = {"kind": "event_match", "key": "content.topic", "pattern": "lunc?*"}
    assert condition_matches(cond, event, ctx()) is matches


@pytest.mark.parametrize(("body", "matches"), [
    ("An example event.", True), ("exple", True), ("An exciting triple-whammy", True),
    ("examples", False), ("counterexample", False), ("ex_ple_", False), ("ex_ple", True),
])
def test_event_match_body_word_boundaries(body: str, matches: bool) -> None:
    cond = {"kind": "event_match", "key": "content.body", "pattern": "ex*ple"}
    assert condition_matches(cond, msg(body), ctx()) is matches


def test_event_match_absent_or_non_string_never_matches() -> None:
    cond = {"kind": "event_match", "key": "content.nope", "pattern": "*"}
    assert not condition_matches(cond, msg(), ctx())
    cond = {"kind": "event_match", "key": "content", "pattern": "*"}
    assert not condition_matches(cond, msg(), ctx())


# --- event_property_is / contains -----------------------------------------------------------------

CREATE = {"type": "m.room.create", "state_key": "",
          "content": {"m.federate": True, "room_version": "11", "n": 1}}


@pytest.mark.parametrize(("key", "value", "matches"), [
    ("content.m\\.federate", True, True),
    ("content.m\\.federate", "true", False),
    ("content.m\\.federate", 1, False),
    ("content.n", 1, True),
    ("content.n", True, False),
    ("content.room_version", "11", True),
    ("content.missing", None, False),
    ("content", None, False),
])
def test_event_property_is(key: str, value: Any, matches: bool) -> None:
    cond = {"kind": "event_property_is", "key": key, "value": value}
    assert condition_matches(cond, CREATE, ctx()) is matches


def test_event_property_is_null() -> None:
    event = {"type": "x", "content": {"v": None}}
    cond = {"kind": "event_property_is", "key": "content.v", "value": None}
    assert condition_matches(cond, event, ctx())


ALIASES = {"type": "m.room.canonical_alias", "content": {
    "alias": "#somewhere:localhost",
    "alt_aliases": ["#somewhere:example.org", "#myroom:example.com", 3, {"x": 1}]}}


@pytest.mark.parametrize(("key", "value", "matches"), [
    ("content.alt_aliases", "#myroom:example.com", True),
    ("content.alt_aliases", ":example.com", False),
    ("content.alt_aliases", 3, True),
    ("content.alt_aliases", "3", False),
    ("content.alias", "#somewhere:localhost", False),  # not an array
])
def test_event_property_contains(key: str, value: Any, matches: bool) -> None:
    cond = {"kind": "event_property_contains", "key": key, "value": value}
    assert condition_matches(cond, ALIASES, ctx()) is matches


# --- contains_display_name, room_member_count, sender_notification_permission ---------------------

@pytest.mark.parametrize(("body", "name", "matches"), [
    ("hey Alice Liddell!", "Alice Liddell", True),
    ("hey alice liddell", "Alice Liddell", True),
    ("hey Alice Liddells", "Alice Liddell", False),
    ("anything", None, False),
    ("anything", "", False),
    ("a.b*c", "a.b*c", True),  # the name is literal, not a glob
    ("axbyc", "a.b*c", False),
])
def test_contains_display_name(body: str, name: str | None, matches: bool) -> None:
    cond = {"kind": "contains_display_name"}
    assert condition_matches(cond, msg(body), ctx(display_name=name)) is matches


@pytest.mark.parametrize(("spec", "count", "matches"), [
    ("2", 2, True), ("2", 3, False), ("==2", 2, True), ("<2", 1, True), ("<2", 2, False),
    (">2", 3, True), (">2", 2, False), ("<=2", 2, True), (">=3", 2, False), (">=3", 3, True),
    ("2.5", 2, False), ("abc", 2, False), ("", 2, False), (2, 2, False), ("=2", 2, False),
])
def test_room_member_count(spec: Any, count: int, matches: bool) -> None:
    assert room_member_count(spec, count) is matches


@pytest.mark.parametrize(("level", "power_levels", "matches"), [
    (50, None, True), (49, None, False),
    (10, {"notifications": {"room": 10}}, True),
    (9, {"notifications": {"room": 10}}, False),
    (float("inf"), {"notifications": {"room": 100}}, True),
])
def test_sender_notification_permission(level: float, power_levels: Any, matches: bool) -> None:
    cond = {"kind": "sender_notification_permission", "key": "room"}
    assert condition_matches(cond, msg(), ctx(sender_power_level=level,
                                              power_levels=power_levels)) is matches


def test_unknown_condition_never_matches() -> None:
    assert not condition_matches({"kind": "org.example.future"}, msg(), ctx())


# --- the default rules, end to end ---------------------------------------------------------------

def outcome(event: dict[str, Any], ruleset: Any = None, **kw: Any) -> tuple[str, bool, bool]:
    result = evaluate(ruleset or build_ruleset(ALICE, [], {}), event, ctx(**kw))
    if result is None:
        return ("", False, False)
    return (result.rule.rule_id, result.notify, result.highlight)


MENTION = {"m.mentions": {"user_ids": [ALICE]}}


@pytest.mark.parametrize(("event", "kw", "expected"), [
    (msg(), {}, (".m.rule.message", True, False)),
    (msg(), {"member_count": 2}, (".m.rule.room_one_to_one", True, False)),
    (msg(msgtype="m.notice"), {}, (".m.rule.suppress_notices", False, False)),
    (msg("hi", **MENTION), {}, (".m.rule.is_user_mention", True, True)),
    (msg("hi", **{"m.mentions": {"user_ids": [BOB]}}), {}, (".m.rule.message", True, False)),
    (msg("hi", **{"m.mentions": {"room": True}}), {"sender_power_level": 50},
     (".m.rule.is_room_mention", True, True)),
    (msg("hi", **{"m.mentions": {"room": True}}), {"sender_power_level": 0},
     (".m.rule.message", True, False)),
    # legacy mentions: only for events without m.mentions
    (msg("hello Alice Liddell"), {}, (".m.rule.contains_display_name", True, True)),
    (msg("hello Alice Liddell", **{"m.mentions": {}}), {}, (".m.rule.message", True, False)),
    (msg("ping alice"), {"display_name": None}, (".m.rule.contains_user_name", True, True)),
    (msg("@room look"), {"sender_power_level": 50}, (".m.rule.roomnotif", True, True)),
    (msg("@room look"), {"sender_power_level": 0}, (".m.rule.message", True, False)),
    ({"type": "m.room.encrypted", "room_id": ROOM, "sender": BOB, "content": {}}, {},
     (".m.rule.encrypted", True, False)),
    ({"type": "m.room.encrypted", "room_id": ROOM, "sender": BOB, "content": {}},
     {"member_count": 2}, (".m.rule.encrypted_room_one_to_one", True, False)),
    ({"type": "m.call.invite", "room_id": ROOM, "sender": BOB, "content": {}}, {},
     (".m.rule.call", True, False)),
    ({"type": "m.reaction", "room_id": ROOM, "sender": BOB, "content": {}}, {},
     (".m.rule.reaction", False, False)),
    ({"type": "m.room.member", "state_key": ALICE, "sender": BOB, "room_id": ROOM,
      "content": {"membership": "invite"}}, {}, (".m.rule.invite_for_me", True, False)),
    ({"type": "m.room.member", "state_key": BOB, "sender": BOB, "room_id": ROOM,
      "content": {"membership": "join"}}, {}, (".m.rule.member_event", False, False)),
    ({"type": "m.room.tombstone", "state_key": "", "sender": BOB, "room_id": ROOM,
      "content": {}}, {}, (".m.rule.tombstone", True, True)),
    ({"type": "m.room.tombstone", "state_key": "x", "sender": BOB, "room_id": ROOM,
      "content": {}}, {}, ("", False, False)),
    ({"type": "m.room.server_acl", "state_key": "", "sender": BOB, "room_id": ROOM,
      "content": {}}, {}, (".m.rule.room.server_acl", False, False)),
    (msg("* edit", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}}), {},
     (".m.rule.suppress_edits", False, False)),
    ({"type": "m.room.topic", "state_key": "", "sender": BOB, "room_id": ROOM,
      "content": {"topic": "x"}}, {}, ("", False, False)),
])
def test_default_rules(event: dict[str, Any], kw: dict[str, Any],
                       expected: tuple[str, bool, bool]) -> None:
    assert outcome(event, **kw) == expected


def test_master_rule_silences_everything() -> None:
    ruleset = build_ruleset(ALICE, [], {("override", ".m.rule.master"): DefaultChange(True)})
    assert outcome(msg("hi", **MENTION), ruleset) == (".m.rule.master", False, False)


def test_disabled_rule_is_skipped() -> None:
    ruleset = build_ruleset(ALICE, [], {
        ("override", ".m.rule.suppress_notices"): DefaultChange(enabled=False)})
    assert outcome(msg(msgtype="m.notice"), ruleset) == (".m.rule.message", True, False)


@pytest.mark.parametrize(("rule", "event", "expected"), [
    (PushRule("room", ROOM, ()), msg(), (ROOM, False, False)),
    (PushRule("room", "!other:example.org", ()), msg(), (".m.rule.message", True, False)),
    (PushRule("sender", BOB, ("notify", {"set_tweak": "highlight"})), msg(), (BOB, True, True)),
    (PushRule("content", "cake", ("notify", {"set_tweak": "highlight", "value": True}),
              pattern="cake*lie"), msg("the cake is a lie"), ("cake", True, True)),
    (PushRule("override", "mine", ("notify",), ({"kind": "nope"},)), msg(),
     (".m.rule.message", True, False)),
    (PushRule("underride", "late", ("notify", {"set_tweak": "highlight", "value": False}),
              ({"kind": "event_match", "key": "type", "pattern": "m.room.message"},)),
     msg(), ("late", True, False)),
])
def test_user_rules(rule: PushRule, event: dict[str, Any],
                    expected: tuple[str, bool, bool]) -> None:
    assert outcome(event, build_ruleset(ALICE, [rule], {})) == expected


def test_tweaks() -> None:
    result = evaluate(build_ruleset(ALICE, [], {}), msg("hi", **MENTION), ctx())
    assert result is not None
    assert result.tweaks == {"sound": "default", "highlight": True}
