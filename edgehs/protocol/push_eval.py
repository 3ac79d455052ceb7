"""Evaluating push rules against an event.

https://spec.matrix.org/v1.19/client-server-api/#push-rules
https://spec.matrix.org/v1.19/client-server-api/#conditions-1
https://spec.matrix.org/v1.19/appendices/#glob-style-matching
https://spec.matrix.org/v1.19/appendices/#dot-separated-property-paths

Pure: the event, the user's ruleset and a :class:`PushContext` (what the room knows about the
user and the sender) in, the first matching rule's outcome out.
"""

import re
from dataclasses import dataclass
from typing import Any

from edgehs.protocol.power_levels import notification_power_level
from edgehs.protocol.push_rules import (
    LEGACY_MENTION_RULES,
    NOTIFY,
    Action,
    PushRule,
    Ruleset,
)
from edgehs.types import JsonDict

# A word boundary is the start or end of the value, or any character not in [A-Za-z0-9_].
_BOUNDARY_BEFORE = r"(?:^|(?<=[^A-Za-z0-9_]))"
_BOUNDARY_AFTER = r"(?:$|(?=[^A-Za-z0-9_]))"
_MEMBER_COUNT = re.compile(r"(==|<=|>=|<|>)?([0-9]+)")
_MISSING = object()


@dataclass(frozen=True)
class PushContext:
    """What the conditions need beyond the event: the user the rules belong to, their display
    name in the room, the room's joined member count and the sender's power."""

    user_id: str
    display_name: str | None
    member_count: int
    sender_power_level: int | float
    power_levels: JsonDict | None  # content of m.room.power_levels, None when absent


@dataclass(frozen=True)
class PushResult:
    rule: PushRule
    notify: bool
    highlight: bool
    tweaks: JsonDict

    @property
    def actions(self) -> list[Action]:
        return [dict(a) if isinstance(a, dict) else a for a in self.rule.actions]


def evaluate(ruleset: Ruleset, event: JsonDict, ctx: PushContext) -> PushResult | None:
    """The outcome of the first enabled rule that matches ``event`` (None: no rule matched, so
    no notification). The legacy mention rules are skipped for events with ``m.mentions``."""
    content = event.get("content")
    has_mentions = isinstance(content, dict) and "m.mentions" in content
    for rule in ruleset.in_order():
        if not rule.enabled or (has_mentions and rule.rule_id in LEGACY_MENTION_RULES):
            continue
        if rule_matches(rule, event, ctx):
            return outcome(rule)
    return None


def outcome(rule: PushRule) -> PushResult:
    """notify, highlight and tweaks of a matched rule (a highlight tweak without a value is
    true; no highlight tweak at all is false)."""
    tweaks: JsonDict = {}
    for action in rule.actions:
        if isinstance(action, dict) and isinstance(action.get("set_tweak"), str):
            tweaks[action["set_tweak"]] = action.get("value", True)
    return PushResult(rule, NOTIFY in rule.actions, tweaks.get("highlight") is True, tweaks)


def rule_matches(rule: PushRule, event: JsonDict, ctx: PushContext) -> bool:
    if rule.kind == "room":
        return event.get("room_id") == rule.rule_id
    if rule.kind == "sender":
        return event.get("sender") == rule.rule_id
    if rule.kind == "content":
        return rule.pattern is not None and event_match(
            {"key": "content.body", "pattern": rule.pattern}, event)
    return all(condition_matches(c, event, ctx) for c in rule.conditions)


def condition_matches(condition: JsonDict, event: JsonDict, ctx: PushContext) -> bool:
    """One condition; unknown kinds never match."""
    kind = condition.get("kind")
    if kind == "event_match":
        return event_match(condition, event)
    if kind == "event_property_is":
        return event_property_is(condition, event)
    if kind == "event_property_contains":
        return event_property_contains(condition, event)
    if kind == "contains_display_name":
        return contains_display_name(event, ctx.display_name)
    if kind == "room_member_count":
        return room_member_count(condition.get("is"), ctx.member_count)
    if kind == "sender_notification_permission":
        key = condition.get("key")
        return isinstance(key, str) and ctx.sender_power_level >= notification_power_level(
            key, ctx.power_levels)
    return False


# --- paths and globs ------------------------------------------------------------------------------

def split_path(key: str) -> list[str]:
    """``content.m\\.relates_to`` -> ["content", "m.relates_to"]: ``\\.`` is a literal dot,
    ``\\\\`` a literal backslash, any other backslash is kept as it is."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(key):
        char = key[i]
        if char == "\\" and i + 1 < len(key) and key[i + 1] in ".\\":
            current.append(key[i + 1])
            i += 2
            continue
        if char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


def lookup(event: JsonDict, key: str) -> Any:
    """The value at a dot-separated path, or ``_MISSING``."""
    value: Any = event
    for part in split_path(key):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def glob_regex(pattern: str, *, words: bool = False) -> re.Pattern[str]:
    """``*`` matches zero or more characters, ``?`` exactly one; case-insensitive. With
    ``words`` the match must start and end at word boundaries (for ``content.body``)."""
    body = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern
    )
    if words:
        body = _BOUNDARY_BEFORE + body + _BOUNDARY_AFTER
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def event_match(condition: JsonDict, event: JsonDict) -> bool:
    """Glob match of a string property: the whole value, except ``content.body`` where any
    substring between word boundaries matches. Absent or non-string values never match."""
    key, pattern = condition.get("key"), condition.get("pattern")
    if not isinstance(key, str) or not isinstance(pattern, str):
        return False
    value = lookup(event, key)
    if not isinstance(value, str):
        return False
    if key == "content.body":
        return glob_regex(pattern, words=True).search(value) is not None
    if "*" not in pattern and "?" not in pattern:
        return value.lower() == pattern.lower()  # most conditions: no regex needed
    return glob_regex(pattern).fullmatch(value) is not None


def _is_scalar(value: Any) -> bool:
    """A non-compound canonical JSON value: string, boolean, null or an integer in range."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    return isinstance(value, int) and -(2**53) < value < 2**53


def _same(a: Any, b: Any) -> bool:
    """Exact JSON equality of scalars: no casting (1 is not true, "1" is not 1)."""
    return type(a) is type(b) and a == b


def event_property_is(condition: JsonDict, event: JsonDict) -> bool:
    key, expected = condition.get("key"), condition.get("value", _MISSING)
    if not isinstance(key, str) or not _is_scalar(expected):
        return False
    value = lookup(event, key)
    return value is not _MISSING and _is_scalar(value) and _same(value, expected)


def event_property_contains(condition: JsonDict, event: JsonDict) -> bool:
    key, expected = condition.get("key"), condition.get("value", _MISSING)
    if not isinstance(key, str) or not _is_scalar(expected):
        return False
    value = lookup(event, key)
    return isinstance(value, list) and any(
        _is_scalar(v) and _same(v, expected) for v in value
    )


def contains_display_name(event: JsonDict, display_name: str | None) -> bool:
    """``content.body`` contains the user's display name in the room, between word
    boundaries (the name is matched literally)."""
    if not display_name:
        return False
    content = event.get("content")
    body = content.get("body") if isinstance(content, dict) else None
    if not isinstance(body, str):
        return False
    regex = re.compile(_BOUNDARY_BEFORE + re.escape(display_name) + _BOUNDARY_AFTER,
                       re.IGNORECASE)
    return regex.search(body) is not None


def room_member_count(spec: Any, count: int) -> bool:
    """``is``: a decimal integer, optionally prefixed by ==, <, >, >= or <= (default ==)."""
    if not isinstance(spec, str):
        return False
    found = _MEMBER_COUNT.fullmatch(spec)
    if found is None:
        return False
    op, number = found.group(1) or "==", int(found.group(2))
    return {
        "==": count == number, "<": count < number, ">": count > number,
        "<=": count <= number, ">=": count >= number,
    }[op]
