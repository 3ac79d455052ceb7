"""Push rules: the rule model, the predefined (server-default) rules and a user's ruleset.

https://spec.matrix.org/v1.19/client-server-api/#push-rules
https://spec.matrix.org/v1.19/client-server-api/#predefined-rules

A user's ruleset is the server-default rules (with the user's ``enabled``/``actions`` changes)
merged with the user's own rules. Within each kind the user's rules come first, then the
server-default ones; the exception is ``.m.rule.master``, which is always the first rule of all.
Evaluation (``protocol.push_eval``) walks the kinds in the spec's order: override, content,
room, sender, underride.

The legacy text-matching mention rules (``.m.rule.contains_display_name``,
``.m.rule.contains_user_name``, ``.m.rule.roomnotif``), deprecated in v1.7 and dropped from the
list of predefined rules by MSC4210 (v1.17), are still served by default, as Synapse does, so
that older clients which send no ``m.mentions`` still highlight; per the v1.7 rule they only
apply to events without an ``m.mentions`` property.
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from edgehs.errors import Codes, MatrixError
from edgehs.types import JsonDict

# The kinds, in the order they are checked.
KINDS = ("override", "content", "room", "sender", "underride")
CONDITIONAL_KINDS = ("override", "underride")
MASTER = ".m.rule.master"
LEGACY_MENTION_RULES = frozenset({
    ".m.rule.contains_display_name", ".m.rule.contains_user_name", ".m.rule.roomnotif",
})
# "Clients and homeservers MUST ignore these actions, for instance, by stripping them."
HISTORICAL_ACTIONS = ("dont_notify", "coalesce")
NOTIFY = "notify"

Action = str | JsonDict

_SOUND_DEFAULT: JsonDict = {"set_tweak": "sound", "value": "default"}
_SOUND_RING: JsonDict = {"set_tweak": "sound", "value": "ring"}
_HIGHLIGHT: JsonDict = {"set_tweak": "highlight"}


@dataclass(frozen=True)
class PushRule:
    kind: str
    rule_id: str
    actions: tuple[Action, ...]
    conditions: tuple[JsonDict, ...] = ()
    pattern: str | None = None
    enabled: bool = True
    default: bool = False

    def to_json(self) -> JsonDict:
        """The rule as the Client-Server API shows it: conditions only for override and
        underride rules, the pattern only for content rules."""
        out: JsonDict = {
            "rule_id": self.rule_id, "default": self.default, "enabled": self.enabled,
            "actions": [dict(a) if isinstance(a, dict) else a for a in self.actions],
        }
        if self.kind in CONDITIONAL_KINDS:
            out["conditions"] = [dict(c) for c in self.conditions]
        if self.kind == "content":
            out["pattern"] = self.pattern or ""
        return out


@dataclass(frozen=True)
class DefaultChange:
    """A user's change to a server-default rule; None keeps the predefined value."""

    enabled: bool | None = None
    actions: tuple[Action, ...] | None = None


@dataclass(frozen=True)
class Ruleset:
    """A user's rules per kind, each list in priority order (most important first)."""

    rules: Mapping[str, tuple[PushRule, ...]] = field(default_factory=dict)

    def kind(self, kind: str) -> tuple[PushRule, ...]:
        return self.rules.get(kind, ())

    def in_order(self) -> Iterator[PushRule]:
        for kind in KINDS:
            yield from self.kind(kind)

    def find(self, kind: str, rule_id: str) -> PushRule | None:
        return next((r for r in self.kind(kind) if r.rule_id == rule_id), None)

    def to_json(self) -> JsonDict:
        return {kind: [r.to_json() for r in self.kind(kind)] for kind in KINDS}


def _rule(kind: str, rule_id: str, conditions: Sequence[JsonDict], actions: Sequence[Action],
          *, enabled: bool = True, pattern: str | None = None) -> PushRule:
    return PushRule(kind, rule_id, tuple(actions), tuple(conditions), pattern, enabled, True)


def _match(key: str, pattern: str) -> JsonDict:
    return {"kind": "event_match", "key": key, "pattern": pattern}


def default_rules(user_id: str, *, legacy_mentions: bool = True) -> dict[str, list[PushRule]]:
    """The predefined rules for ``user_id``, per kind, in the spec's order."""
    localpart = user_id.removeprefix("@").split(":", 1)[0]
    legacy = legacy_mentions
    override = [
        _rule("override", MASTER, [], [], enabled=False),
        _rule("override", ".m.rule.suppress_notices", [_match("content.msgtype", "m.notice")],
              []),
        _rule("override", ".m.rule.invite_for_me", [
            _match("type", "m.room.member"), _match("content.membership", "invite"),
            _match("state_key", user_id),
        ], [NOTIFY, _SOUND_DEFAULT]),
        _rule("override", ".m.rule.member_event", [_match("type", "m.room.member")], []),
        _rule("override", ".m.rule.is_user_mention", [{
            "kind": "event_property_contains", "key": "content.m\\.mentions.user_ids",
            "value": user_id,
        }], [NOTIFY, _SOUND_DEFAULT, _HIGHLIGHT]),
        *([_rule("override", ".m.rule.contains_display_name",
                 [{"kind": "contains_display_name"}], [NOTIFY, _SOUND_DEFAULT, _HIGHLIGHT])]
          if legacy else []),
        _rule("override", ".m.rule.is_room_mention", [
            {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
            {"kind": "sender_notification_permission", "key": "room"},
        ], [NOTIFY, _HIGHLIGHT]),
        *([_rule("override", ".m.rule.roomnotif", [
            _match("content.body", "@room"),
            {"kind": "sender_notification_permission", "key": "room"},
        ], [NOTIFY, _HIGHLIGHT])] if legacy else []),
        _rule("override", ".m.rule.tombstone", [
            _match("type", "m.room.tombstone"), _match("state_key", ""),
        ], [NOTIFY, _HIGHLIGHT]),
        _rule("override", ".m.rule.reaction", [_match("type", "m.reaction")], []),
        _rule("override", ".m.rule.room.server_acl", [
            _match("type", "m.room.server_acl"), _match("state_key", ""),
        ], []),
        _rule("override", ".m.rule.suppress_edits", [{
            "kind": "event_property_is", "key": "content.m\\.relates_to.rel_type",
            "value": "m.replace",
        }], []),
    ]
    content = [
        _rule("content", ".m.rule.contains_user_name", [], [NOTIFY, _SOUND_DEFAULT, _HIGHLIGHT],
              pattern=localpart),
    ] if legacy else []
    underride = [
        _rule("underride", ".m.rule.call", [_match("type", "m.call.invite")],
              [NOTIFY, _SOUND_RING]),
        _rule("underride", ".m.rule.encrypted_room_one_to_one", [
            {"kind": "room_member_count", "is": "2"}, _match("type", "m.room.encrypted"),
        ], [NOTIFY, _SOUND_DEFAULT]),
        _rule("underride", ".m.rule.room_one_to_one", [
            {"kind": "room_member_count", "is": "2"}, _match("type", "m.room.message"),
        ], [NOTIFY, _SOUND_DEFAULT]),
        _rule("underride", ".m.rule.message", [_match("type", "m.room.message")], [NOTIFY]),
        _rule("underride", ".m.rule.encrypted", [_match("type", "m.room.encrypted")], [NOTIFY]),
    ]
    return {"override": override, "content": content, "room": [], "sender": [],
            "underride": underride}


def build_ruleset(user_id: str, user_rules: Sequence[PushRule],
                  changes: Mapping[tuple[str, str], DefaultChange], *,
                  legacy_mentions: bool = True) -> Ruleset:
    """The user's ruleset: ``user_rules`` (each kind in priority order) before the
    server-default rules with ``changes`` applied, and ``.m.rule.master`` first of all."""
    defaults = default_rules(user_id, legacy_mentions=legacy_mentions)
    out: dict[str, tuple[PushRule, ...]] = {}
    for kind in KINDS:
        changed = [_apply(r, changes.get((kind, r.rule_id))) for r in defaults[kind]]
        own = [r for r in user_rules if r.kind == kind]
        first = [r for r in changed if r.rule_id == MASTER]
        rest = [r for r in changed if r.rule_id != MASTER]
        out[kind] = (*first, *own, *rest)
    return Ruleset(out)


def _apply(rule: PushRule, change: DefaultChange | None) -> PushRule:
    if change is None:
        return rule
    if change.enabled is not None:
        rule = replace(rule, enabled=change.enabled)
    if change.actions is not None:
        rule = replace(rule, actions=change.actions)
    return rule


def place_rule(rules: Sequence[PushRule], rule: PushRule, before: str | None,
               after: str | None) -> list[PushRule]:
    """The user's rules of one kind with ``rule`` added or updated.

    A new rule without ``before``/``after`` becomes the most important one; an updated rule keeps
    its place. ``before`` puts it just above that rule, ``after`` just below; with both,
    ``before`` wins ("the next most important rule with respect to the rule identified by
    before"). Only user-defined rules can be anchors: 400 M_UNKNOWN otherwise."""
    others = [r for r in rules if r.rule_id != rule.rule_id]
    anchor = before if before is not None else after
    if anchor is None:
        existing = next((i for i, r in enumerate(rules) if r.rule_id == rule.rule_id), None)
        if existing is None:
            return [rule, *others]
        return [*rules[:existing], rule, *rules[existing + 1:]]
    index = next((i for i, r in enumerate(others) if r.rule_id == anchor), None)
    if index is None or anchor.startswith("."):
        raise MatrixError(400, Codes.UNKNOWN, f"before/after rule not found: {anchor}")
    if before is None:
        index += 1
    return [*others[:index], rule, *others[index:]]


# --- input checks (the body of PUT /pushrules/...) ----------------------------------------------

def parse_actions(raw: Any) -> tuple[Action, ...]:
    """Validated actions with the historical ``dont_notify``/``coalesce`` stripped."""
    if not isinstance(raw, list):
        raise MatrixError(400, Codes.BAD_JSON, "actions must be an array")
    out: list[Action] = []
    for action in raw:
        if isinstance(action, str):
            if action in HISTORICAL_ACTIONS:
                continue
            if action != NOTIFY:
                raise MatrixError(400, Codes.INVALID_PARAM, f"Unrecognised action {action!r}")
            out.append(action)
        elif isinstance(action, dict):
            if not isinstance(action.get("set_tweak"), str):
                raise MatrixError(400, Codes.INVALID_PARAM,
                                  "Action objects must have a string set_tweak")
            out.append(dict(action))
        else:
            raise MatrixError(400, Codes.BAD_JSON, "Actions must be strings or objects")
    return tuple(out)


def parse_conditions(raw: Any) -> tuple[JsonDict, ...]:
    """Conditions must be objects with a string ``kind`` (unknown kinds are kept: they never
    match, as the spec asks)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise MatrixError(400, Codes.BAD_JSON, "conditions must be an array")
    for condition in raw:
        if not isinstance(condition, dict) or not isinstance(condition.get("kind"), str):
            raise MatrixError(400, Codes.BAD_JSON, "Each condition must be an object with a kind")
    return tuple(dict(c) for c in raw)


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise MatrixError(400, Codes.INVALID_PARAM, f"Unknown push rule kind {kind!r}")


def check_new_rule_id(rule_id: str) -> None:
    """Rule ids starting with a dot are the server's; slashes are never allowed."""
    if not rule_id or rule_id.startswith("."):
        raise MatrixError(400, Codes.INVALID_PARAM,
                          "Rule ids starting with '.' are reserved for server-default rules")
    if "/" in rule_id or "\\" in rule_id:
        raise MatrixError(400, Codes.INVALID_PARAM, "Rule ids may not contain slashes")
