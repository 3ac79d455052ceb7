"""What the authorization rules look at while checking one event.

https://spec.matrix.org/v1.19/rooms/v12/#authorization-rules

Shared by ``event_auth`` (the entry point), ``member_auth`` (rule 5, ``m.room.member``) and
``power_levels_auth`` (rule 10, ``m.room.power_levels``).

Rule numbers in code and comments are those of room version 12, the default.
:func:`rule_label` renumbers them for older versions when a rule fails:

- v1-v11 have no rule 2 (the room id check): 3.1-3.3 -> 2.1-2.3, 3.4 -> 2.5 and 4-11 -> 3-10.
  (Their rule 2.4, "no m.room.create among the auth events", has no v12 counterpart; it is
  passed as an explicit legacy label.)
- v1-v11 have no rule 10.4; v1-v9 neither have rules 10.1 and 10.2 (integer-only levels, v10),
  so their power levels rule starts with the ``users`` check.
- v1-v5 have the m.room.aliases rule as rule 4, so their rules from m.room.member on are one
  higher than in v6-v11 (the same numbers as v12).
- v1-v7 have no rule 5.2 (join_authorised_via_users_server, v8) nor 5.3.5 (restricted joins);
  v1-v6 have no rule 5.7 (knock).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgehs.errors import AuthError
from edgehs.protocol import power_levels as pl
from edgehs.protocol.room_versions import RoomVersion
from edgehs.types import JsonDict, StateKey

ThirdPartySignatureVerifier = Callable[[JsonDict, str], bool]
"""``(signed, public_key_base64) -> bool``: whether any signature in ``signed`` (the
``content.third_party_invite.signed`` object of an invite) verifies with the ed25519
``public_key_base64`` (https://spec.matrix.org/v1.19/appendices/#checking-for-a-signature)."""


def reject_third_party_signatures(signed: JsonDict, public_key: str) -> bool:
    """The default verifier: accepts no signature, so third-party invites fail rule 5.4.1.8.

    The protocol layer holds no keys and does no crypto here; the service layer passes a
    verifier built on ``signedjson`` when it wants third-party invites to be accepted.
    """
    return False


def rule_label(rv: RoomVersion, rule: str, legacy: str | None = None) -> str:
    """``rule`` (a v12 rule number) as it is numbered in ``rv``; ``legacy`` overrides it for
    versions before 12 (for rules v12 does not have)."""
    if rv.room_id_from_create_event:
        return rule
    if legacy is not None:
        return legacy
    top, _, rest = rule.partition(".")
    number = int(top)
    parts = [int(part) for part in rest.split(".")] if rest else []
    if number == 3 and parts == [4]:
        return "2.5"
    if number == 5 and parts:
        parts = _member_rule_parts(rv, parts)
    if number == 10 and parts:
        sub = parts[0]
        if rv.enforce_int_power_levels:
            parts[0] = sub if sub <= 3 else sub - 1
        else:
            parts[0] = max(sub - 2, 1) if sub <= 3 else sub - 3
    if number >= 3:
        number -= 1
    if rv.special_case_aliases_auth and number >= 4:
        number += 1
    return ".".join(str(part) for part in (number, *parts))


def _member_rule_parts(rv: RoomVersion, parts: list[int]) -> list[int]:
    """The sub-rule numbers of rule 5 (``m.room.member``) as ``rv`` numbers them."""
    sub, *tail = parts
    if not rv.restricted_join_rule:
        if sub == 3 and tail and tail[0] >= 6:  # no 5.3.5 (restricted joins)
            tail = [tail[0] - 1, *tail[1:]]
        if sub >= 3:  # no 5.2 (join_authorised_via_users_server)
            sub -= 1
    if not rv.knock_join_rule and sub == (8 if rv.restricted_join_rule else 7):
        sub -= 1  # no knock rule before the "unknown membership" one
    return [sub, *tail]


def domain(identifier: str) -> str:
    """The server name part of a user, room or event id (everything after the first ``:``)."""
    return identifier.partition(":")[2]


def is_valid_user_id(value: Any) -> bool:
    """A user id of the form ``@localpart:server.name`` (historical localparts allowed).

    https://spec.matrix.org/v1.19/appendices/#user-identifiers
    """
    if not isinstance(value, str) or len(value.encode("utf-8")) > 255:
        return False
    if not value.startswith("@"):
        return False
    localpart, sep, server = value[1:].partition(":")
    return bool(sep and localpart and server)


def is_power_level_value(value: Any, rv: RoomVersion) -> bool:
    """An integer (v10+: ``rv.enforce_int_power_levels``) or, before v10, an integer string."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if rv.enforce_int_power_levels or not isinstance(value, str):
        return False
    text = value.strip()
    digits = text[1:] if text[:1] in ("+", "-") else text
    return digits.isdigit()


@dataclass(frozen=True)
class AuthContext:
    """The event being checked and the state it is checked against."""

    event: JsonDict
    rv: RoomVersion
    auth_events: Mapping[StateKey, JsonDict]
    create_event: JsonDict
    verify_signature: ThirdPartySignatureVerifier = reject_third_party_signatures
    power_levels: JsonDict | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "power_levels", pl.get_power_levels_content(self.auth_events))

    @property
    def sender(self) -> str:
        sender: str = self.event["sender"]
        return sender

    @property
    def content(self) -> JsonDict:
        content: JsonDict = self.event["content"]
        return content

    def fail(self, rule: str, reason: str, *, legacy: str | None = None) -> AuthError:
        """An ``AuthError`` naming the failed rule (``rule`` is v12-numbered)."""
        label = rule_label(self.rv, rule, legacy)
        return AuthError(
            f"{self.event.get('type')} event {self.event.get('event_id')} rejected by "
            f"authorization rule {label} (room v{self.rv.identifier}): {reason}"
        )

    def state_content(self, event_type: str, state_key: str = "") -> JsonDict | None:
        """The content of the state event at ``(event_type, state_key)``, if there is one."""
        event = self.auth_events.get((event_type, state_key))
        if event is None:
            return None
        content = event.get("content")
        return content if isinstance(content, dict) else {}

    def membership(self, user_id: str) -> str:
        """``user_id``'s current membership; ``"leave"`` when there is no member event."""
        content = self.state_content("m.room.member", user_id)
        membership = content.get("membership") if content is not None else None
        return membership if isinstance(membership, str) else "leave"

    def join_rule(self) -> str | None:
        """The current ``join_rule``; ``None`` without an ``m.room.join_rules`` event."""
        content = self.state_content("m.room.join_rules")
        join_rule = content.get("join_rule") if content is not None else None
        return join_rule if isinstance(join_rule, str) else None

    def power(self, user_id: str) -> int | float:
        """``user_id``'s current power level (``inf`` for v12 creators)."""
        return pl.user_power_level(user_id, self.power_levels, self.create_event, self.rv)

    def named_level(self, name: str) -> int:
        """The current invite / kick / ban / redact level."""
        return pl.named_power_level(name, self.power_levels)
