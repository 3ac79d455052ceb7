"""The predefined push rules, the user's ruleset and rule placement.

https://spec.matrix.org/v1.19/client-server-api/#predefined-rules
"""

from typing import Any

import pytest

from edgehs.errors import MatrixError
from edgehs.protocol.push_rules import (
    MASTER,
    DefaultChange,
    PushRule,
    build_ruleset,
    check_kind,
    check_new_rule_id,
    default_rules,
    parse_actions,
    parse_conditions,
    place_rule,
)

USER = "@alice:example.org"

# The spec's order within each kind (the legacy mention rules at their v1.16 places).
EXPECTED_ORDER = {
    "override": [
        ".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me",
        ".m.rule.member_event", ".m.rule.is_user_mention", ".m.rule.contains_display_name",
        ".m.rule.is_room_mention", ".m.rule.roomnotif", ".m.rule.tombstone", ".m.rule.reaction",
        ".m.rule.room.server_acl", ".m.rule.suppress_edits",
    ],
    "content": [".m.rule.contains_user_name"],
    "room": [],
    "sender": [],
    "underride": [
        ".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one",
        ".m.rule.message", ".m.rule.encrypted",
    ],
}


def test_default_order_per_kind() -> None:
    rules = default_rules(USER)
    assert {k: [r.rule_id for r in v] for k, v in rules.items()} == EXPECTED_ORDER
    assert all(r.default and r.kind == k for k, v in rules.items() for r in v)


def test_without_legacy_mention_rules() -> None:
    rules = default_rules(USER, legacy_mentions=False)
    ids = {r.rule_id for v in rules.values() for r in v}
    assert not ids & {".m.rule.contains_display_name", ".m.rule.roomnotif",
                      ".m.rule.contains_user_name"}
    assert rules["content"] == []


@pytest.mark.parametrize(("rule_id", "json"), [
    (".m.rule.master", {"rule_id": ".m.rule.master", "default": True, "enabled": False,
                        "conditions": [], "actions": []}),
    (".m.rule.suppress_notices", {
        "rule_id": ".m.rule.suppress_notices", "default": True, "enabled": True,
        "conditions": [{"kind": "event_match", "key": "content.msgtype", "pattern": "m.notice"}],
        "actions": []}),
    (".m.rule.invite_for_me", {
        "rule_id": ".m.rule.invite_for_me", "default": True, "enabled": True,
        "conditions": [
            {"kind": "event_match", "key": "type", "pattern": "m.room.member"},
            {"kind": "event_match", "key": "content.membership", "pattern": "invite"},
            {"kind": "event_match", "key": "state_key", "pattern": USER}],
        "actions": ["notify", {"set_tweak": "sound", "value": "default"}]}),
    (".m.rule.is_user_mention", {
        "rule_id": ".m.rule.is_user_mention", "default": True, "enabled": True,
        "conditions": [{"kind": "event_property_contains",
                        "key": "content.m\\.mentions.user_ids", "value": USER}],
        "actions": ["notify", {"set_tweak": "sound", "value": "default"},
                    {"set_tweak": "highlight"}]}),
    (".m.rule.is_room_mention", {
        "rule_id": ".m.rule.is_room_mention", "default": True, "enabled": True,
        "conditions": [
            {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
            {"kind": "sender_notification_permission", "key": "room"}],
        "actions": ["notify", {"set_tweak": "highlight"}]}),
    (".m.rule.tombstone", {
        "rule_id": ".m.rule.tombstone", "default": True, "enabled": True,
        "conditions": [
            {"kind": "event_match", "key": "type", "pattern": "m.room.tombstone"},
            {"kind": "event_match", "key": "state_key", "pattern": ""}],
        "actions": ["notify", {"set_tweak": "highlight"}]}),
    (".m.rule.suppress_edits", {
        "rule_id": ".m.rule.suppress_edits", "default": True, "enabled": True,
        "conditions": [{"kind": "event_property_is", "key": "content.m\\.relates_to.rel_type",
                        "value": "m.replace"}],
        "actions": []}),
    (".m.rule.contains_user_name", {
        "rule_id": ".m.rule.contains_user_name", "default": True, "enabled": True,
        "pattern": "alice",
        "actions": ["notify", {"set_tweak": "sound", "value": "default"},
                    {"set_tweak": "highlight"}]}),
    (".m.rule.call", {
        "rule_id": ".m.rule.call", "default": True, "enabled": True,
        "conditions": [{"kind": "event_match", "key": "type", "pattern": "m.call.invite"}],
        "actions": ["notify", {"set_tweak": "sound", "value": "ring"}]}),
    (".m.rule.room_one_to_one", {
        "rule_id": ".m.rule.room_one_to_one", "default": True, "enabled": True,
        "conditions": [{"kind": "room_member_count", "is": "2"},
                       {"kind": "event_match", "key": "type", "pattern": "m.room.message"}],
        "actions": ["notify", {"set_tweak": "sound", "value": "default"}]}),
    (".m.rule.message", {
        "rule_id": ".m.rule.message", "default": True, "enabled": True,
        "conditions": [{"kind": "event_match", "key": "type", "pattern": "m.room.message"}],
        "actions": ["notify"]}),
])
def test_definitions_as_the_spec_writes_them(rule_id: str, json: dict[str, Any]) -> None:
    ruleset = build_ruleset(USER, [], {})
    found = [r for r in ruleset.in_order() if r.rule_id == rule_id]
    assert [r.to_json() for r in found] == [json]


def _own(kind: str, rule_id: str) -> PushRule:
    return PushRule(kind, rule_id, ("notify",), pattern="x" if kind == "content" else None)


@pytest.mark.parametrize("kind", ["override", "content", "room", "sender", "underride"])
def test_user_rules_come_before_defaults_but_after_master(kind: str) -> None:
    ruleset = build_ruleset(USER, [_own(kind, "mine")], {})
    ids = [r.rule_id for r in ruleset.kind(kind)]
    if kind == "override":
        assert ids[:2] == [MASTER, "mine"]
    else:
        assert ids[0] == "mine"
    assert ruleset.find(kind, "mine") is not None and not ruleset.find(kind, "mine").default


def test_default_changes_apply() -> None:
    ruleset = build_ruleset(USER, [], {
        ("override", MASTER): DefaultChange(enabled=True),
        ("underride", ".m.rule.message"): DefaultChange(actions=()),
    })
    master = ruleset.find("override", MASTER)
    message = ruleset.find("underride", ".m.rule.message")
    assert master is not None and master.enabled
    assert message is not None and message.actions == () and message.enabled


def test_to_json_has_every_kind() -> None:
    assert set(build_ruleset(USER, [], {}).to_json()) == {
        "override", "content", "room", "sender", "underride"}


# --- placement -----------------------------------------------------------------------------------

A, B, C = _own("override", "a"), _own("override", "b"), _own("override", "c")


@pytest.mark.parametrize(("rules", "new", "before", "after", "expected"), [
    ([A, B], C, None, None, ["c", "a", "b"]),           # new: most important
    ([A, B, C], PushRule("override", "b", ()), None, None, ["a", "b", "c"]),  # update keeps place
    ([A, B], C, "b", None, ["a", "c", "b"]),            # just above b
    ([A, B], C, None, "a", ["a", "c", "b"]),            # just below a
    ([A, B], C, None, "b", ["a", "b", "c"]),
    ([A, B], C, "a", "b", ["c", "a", "b"]),             # both: before wins
    ([A, B, C], PushRule("override", "a", ()), None, "c", ["b", "c", "a"]),  # move
])
def test_place_rule(rules: list[PushRule], new: PushRule, before: str | None,
                    after: str | None, expected: list[str]) -> None:
    assert [r.rule_id for r in place_rule(rules, new, before, after)] == expected


@pytest.mark.parametrize(("before", "after"), [("nope", None), (None, ".m.rule.master")])
def test_place_rule_unknown_anchor(before: str | None, after: str | None) -> None:
    with pytest.raises(MatrixError) as err:
        place_rule([A], C, before, after)
    assert (err.value.status, err.value.errcode) == (400, "M_UNKNOWN")


# --- input checks ------------------------------------------------------------------------------

def test_parse_actions_strips_historical_actions() -> None:
    assert parse_actions(["dont_notify"]) == ()
    assert parse_actions(["notify", "coalesce", {"set_tweak": "sound", "value": "x"}]) == (
        "notify", {"set_tweak": "sound", "value": "x"})


@pytest.mark.parametrize(("raw", "errcode"), [
    ("notify", "M_BAD_JSON"), ([1], "M_BAD_JSON"), (["explode"], "M_INVALID_PARAM"),
    ([{"value": 1}], "M_INVALID_PARAM"),
])
def test_parse_actions_rejects(raw: Any, errcode: str) -> None:
    with pytest.raises(MatrixError) as err:
        parse_actions(raw)
    assert (err.value.status, err.value.errcode) == (400, errcode)


@pytest.mark.parametrize("raw", [{"kind": "x"}, ["x"], [{"key": "type"}], [{"kind": 3}]])
def test_parse_conditions_rejects(raw: Any) -> None:
    with pytest.raises(MatrixError) as err:
        parse_conditions(raw)
    assert err.value.errcode == "M_BAD_JSON"


def test_unknown_condition_kinds_are_kept() -> None:
    assert parse_conditions([{"kind": "future_thing"}]) == ({"kind": "future_thing"},)
    assert parse_conditions(None) == ()


@pytest.mark.parametrize("rule_id", [".mine", "", "a/b", "a\\b"])
def test_reserved_or_bad_rule_ids(rule_id: str) -> None:
    with pytest.raises(MatrixError) as err:
        check_new_rule_id(rule_id)
    assert err.value.errcode == "M_INVALID_PARAM"


def test_unknown_kind() -> None:
    with pytest.raises(MatrixError) as err:
        check_kind("global")
    assert err.value.errcode == "M_INVALID_PARAM"
