"""The authorization rules for room versions 1 to 12, and auth events selection.

https://spec.matrix.org/v1.19/rooms/v12/#authorization-rules
https://spec.matrix.org/v1.19/rooms/v11/#authorization-rules
https://spec.matrix.org/v1.19/rooms/v10/#authorization-rules
https://spec.matrix.org/v1.19/rooms/v8/#authorization-rules
https://spec.matrix.org/v1.19/rooms/v7/#authorization-rules
https://spec.matrix.org/v1.19/rooms/v6/#authorization-rules
https://spec.matrix.org/v1.19/rooms/v3/#authorization-rules
https://spec.matrix.org/v1.19/rooms/v1/#authorization-rules
https://spec.matrix.org/v1.19/server-server-api/#auth-events-selection

Pure: events are PDU-format dicts (with ``event_id``) and a failed rule raises ``AuthError``
(403 ``M_FORBIDDEN``) naming the rule. Rule 5 lives in ``member_auth``, rule 10 in
``power_levels_auth``; numbering follows v12 in code (``auth_context.rule_label`` gives each
version's own numbers in error messages).

From v3 on, redactions have no rule of their own: an ``m.room.redaction`` only needs the power
level of its event type (rule 8); the *redact* level is applied when the redaction is enforced
(https://spec.matrix.org/v1.19/rooms/v3/#handling-redactions), not here. v1 and v2 have rule 11
(``rv.redaction_domain_auth``): below the redact level, only events of the redaction's own
server may be redacted.
"""

from collections.abc import Mapping
from typing import Any

from edgehs.errors import AuthError
from edgehs.protocol.auth_context import (
    AuthContext,
    ThirdPartySignatureVerifier,
    domain,
    is_valid_user_id,
    reject_third_party_signatures,
    rule_label,
)
from edgehs.protocol.events import auth_event_ids, event_refs_well_formed, redaction_target
from edgehs.protocol.member_auth import check_member_event
from edgehs.protocol.power_levels import CREATE_KEY, POWER_LEVELS_KEY, event_power_level
from edgehs.protocol.power_levels_auth import check_power_levels_event
from edgehs.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from edgehs.types import JsonDict, StateKey

__all__ = [
    "ThirdPartySignatureVerifier",
    "auth_types_for_event",
    "check_auth_rules",
    "reject_third_party_signatures",
]


def auth_types_for_event(
    event_type: str,
    sender: str,
    state_key: str | None,
    content: JsonDict,
    rv: RoomVersion,
) -> list[StateKey]:
    """The state keys whose current events become the ``auth_events`` of a new event.

    https://spec.matrix.org/v1.19/server-server-api/#auth-events-selection

    1. The ``m.room.create`` event — except in v12 (``rv.room_id_from_create_event``), where
       the room id stands for it. (:func:`check_auth_rules` still needs it passed in.)
    2. The current ``m.room.power_levels`` event.
    3. The sender's current ``m.room.member`` event.
    4. For ``m.room.member`` events:
       1. the target's current ``m.room.member`` event;
       2. membership ``join``, ``invite`` or ``knock``: the current ``m.room.join_rules``;
       3. membership ``invite`` with ``content.third_party_invite``: the
          ``m.room.third_party_invite`` whose state key is ``signed.token``;
       4. membership ``join`` with ``content.join_authorised_via_users_server`` (in versions
          with restricted rooms): that user's ``m.room.member`` event.

    The ``m.room.create`` event itself has no auth events.
    """
    if event_type == "m.room.create":
        return []
    keys: list[StateKey] = []
    if not rv.room_id_from_create_event:  # 1
        keys.append(CREATE_KEY)
    keys.append(POWER_LEVELS_KEY)  # 2
    keys.append(("m.room.member", sender))  # 3
    if event_type == "m.room.member" and state_key is not None:  # 4
        keys.append(("m.room.member", state_key))  # 4.1
        membership = content.get("membership")
        if membership in ("join", "invite", "knock"):  # 4.2
            keys.append(("m.room.join_rules", ""))
        invite = content.get("third_party_invite")
        if membership == "invite" and isinstance(invite, dict):  # 4.3
            signed = invite.get("signed")
            token = signed.get("token") if isinstance(signed, dict) else None
            if isinstance(token, str):
                keys.append(("m.room.third_party_invite", token))
        authoriser = content.get("join_authorised_via_users_server")
        if membership == "join" and rv.restricted_join_rule and isinstance(authoriser, str):
            keys.append(("m.room.member", authoriser))  # 4.4
    return list(dict.fromkeys(keys))


def check_auth_rules(
    event: JsonDict,
    auth_events: Mapping[StateKey, JsonDict],
    rv: RoomVersion,
    *,
    auth_events_from_state: bool = False,
    verify_signature: ThirdPartySignatureVerifier = reject_third_party_signatures,
) -> None:
    """Raise ``AuthError`` unless ``event`` passes the authorization rules of ``rv``.

    ``auth_events`` maps ``(type, state_key)`` to PDUs and MUST hold the room's
    ``m.room.create`` event under ``("m.room.create", "")`` in every version (in v12 the caller
    fetches it by the room id). It is either:

    - the events ``event`` cites in its ``auth_events`` (``auth_events_from_state=False``, the
      default: checks on receipt "based on the event's auth events" and the local write path).
      Every cited id must then be among them — a cited id missing from the map is a duplicate
      ``(type, state_key)`` or an unknown event — and map entries not cited (other than the
      create event) are ignored; or
    - room state (``auth_events_from_state=True``: the state before the event, the current
      state, or state resolution's partial state). Cited ids that are in the map are still
      checked against the selection, but the event may cite older auth events than the state.

    Rule 3.3 (auth events that were themselves rejected) is the caller's: pass only events that
    were not rejected. ``verify_signature`` checks third-party invite signatures (rule 5.4.1.7);
    the default rejects them all.

    The rules, numbered as in v12 (v1-v11 have no rule 2 and shift rules 3-11 down by one;
    v1-v5 then insert the m.room.aliases rule as rule 4, so their rules 5-10 carry the v12
    numbers again; ``auth_context.rule_label`` maps the numbers in messages):

    1. ``m.room.create``:
       1. it has ``prev_events``: reject;
       2. v12: it has a ``room_id``: reject; v1-v11: the ``room_id`` domain is not the
          ``sender``'s: reject;
       3. ``content.room_version`` present and not a known version: reject;
       4. v1-v10: no ``content.creator``: reject; v12: ``content.additional_creators``
          present and not an array of valid user ids: reject;
       5. otherwise allow.
    2. (v12) ``room_id`` is not the create event's id with the ``!`` sigil: reject.
    3. Considering the event's ``auth_events``:
       1. duplicate entries for a ``(type, state_key)``: reject;
       2. entries not matching the auth events selection (v12: the create event is never
          selected; v1-v11 rule 2.4: there must be an ``m.room.create`` entry): reject;
       3. entries that were rejected: reject (the caller's, see above);
       4. an auth event's ``room_id`` differs from the event's: reject.
    4. Create event ``content["m.federate"]`` is ``false`` and the ``sender``'s domain is not the
       create event sender's: reject.
    (v1-v5 rule 4) ``m.room.aliases`` (``rv.special_case_aliases_auth``):
       1. no ``state_key``: reject;
       2. the ``sender``'s domain is not the ``state_key``: reject;
       3. otherwise allow.
    5. ``m.room.member``: see ``member_auth.check_member_event``.
    6. The ``sender`` is not joined: reject.
    7. ``m.room.third_party_invite``: allow iff the ``sender``'s level >= the invite level.
    8. The event type's required power level is greater than the ``sender``'s: reject.
    9. A ``state_key`` starting with ``@`` that is not the ``sender``: reject.
    10. ``m.room.power_levels``: see ``power_levels_auth.check_power_levels_event``.
    (v1, v2 rule 11) ``m.room.redaction`` (``rv.redaction_domain_auth``):
       1. the ``sender``'s level >= the redact level: allow;
       2. the domain of the redacted event's id is that of the redaction's id: allow;
       3. otherwise reject.
    11. Otherwise allow.
    """
    _check_well_formed(event)
    # 1
    if event["type"] == "m.room.create":
        _check_create_event(event, rv)
        return
    create_event = auth_events.get(CREATE_KEY)
    if create_event is None:
        raise AuthError(
            f"event {event.get('event_id')} rejected by authorization rule "
            f"{rule_label(rv, '3.2', legacy='2.4')} (room v{rv.identifier}): "
            "no m.room.create event among its auth events"
        )
    state = _select_auth_events(event, auth_events, create_event, rv, auth_events_from_state)
    ctx = AuthContext(event, rv, state, create_event, verify_signature)
    # 2
    if rv.room_id_from_create_event:
        expected = "!" + str(create_event.get("event_id", ""))[1:]
        if event.get("room_id") != expected:
            raise ctx.fail("2", f"room_id is not {expected} (from the create event)")
    # 3
    _check_auth_event_list(ctx, auth_events, auth_events_from_state)
    # 4
    federate = _content(create_event).get("m.federate")
    if federate is False and domain(ctx.sender) != domain(str(create_event.get("sender", ""))):
        raise ctx.fail("4", "the room does not federate and the sender is from another server")
    # v1-v5 rule 4
    if rv.special_case_aliases_auth and event["type"] == "m.room.aliases":
        alias_key = event.get("state_key")
        if not isinstance(alias_key, str):  # 4.1
            raise ctx.fail("4", "m.room.aliases event has no state_key", legacy="4.1")
        if alias_key != domain(ctx.sender):  # 4.2
            raise ctx.fail(
                "4", "m.room.aliases state_key is not the sender's server", legacy="4.2"
            )
        return  # 4.3
    # 5
    if event["type"] == "m.room.member":
        check_member_event(ctx)
        return
    # 6
    if ctx.membership(ctx.sender) != "join":
        raise ctx.fail("6", "sender is not joined to the room")
    sender_level = ctx.power(ctx.sender)
    # 7
    if event["type"] == "m.room.third_party_invite":
        if sender_level >= ctx.named_level("invite"):
            return
        raise ctx.fail("7.1", "sender's power level is below the invite level")
    # 8
    state_key = event.get("state_key")
    required = event_power_level(event["type"], state_key, ctx.power_levels)
    if required > sender_level:
        raise ctx.fail("8", f"sending {event['type']} needs power level {required}")
    # 9
    if isinstance(state_key, str) and state_key.startswith("@") and state_key != ctx.sender:
        raise ctx.fail("9", "state_key is another user's id")
    # 10
    if event["type"] == "m.room.power_levels":
        check_power_levels_event(ctx)
    # v1, v2 rule 11
    if event["type"] == "m.room.redaction" and rv.redaction_domain_auth:
        _check_legacy_redaction(ctx, sender_level)
    # 11: allow


def _check_legacy_redaction(ctx: AuthContext, sender_level: int | float) -> None:
    """v1/v2 rule 11 (see :func:`check_auth_rules`); ``redacts`` is at the top level."""
    # 11.1
    if sender_level >= ctx.named_level("redact"):
        return
    # 11.2
    target = redaction_target(ctx.event)
    if target is not None and domain(target) == domain(str(ctx.event.get("event_id", ""))):
        return
    # 11.3
    raise ctx.fail(
        "11",
        "sender is below the redact level and the event is from another server",
        legacy="11.3",
    )


def _content(event: JsonDict) -> JsonDict:
    content = event.get("content")
    return content if isinstance(content, dict) else {}


def _check_well_formed(event: JsonDict) -> None:
    """The fields the rules read must have the right types (the PDU checks ensure this for
    received events; this keeps the checker from raising anything but ``AuthError``)."""
    if not isinstance(event.get("type"), str):
        raise AuthError("malformed event: type is not a string")
    if not is_valid_user_id(event.get("sender")):
        raise AuthError("malformed event: sender is not a user id")
    if not isinstance(event.get("content"), dict):
        raise AuthError("malformed event: content is not an object")
    if "state_key" in event and not isinstance(event["state_key"], str | None):
        raise AuthError("malformed event: state_key is not a string")


def _check_create_event(event: JsonDict, rv: RoomVersion) -> None:
    """Rule 1 (see :func:`check_auth_rules`)."""

    def fail(rule: str, reason: str) -> AuthError:
        return AuthError(
            f"m.room.create event {event.get('event_id')} rejected by authorization rule "
            f"{rule} (room v{rv.identifier}): {reason}"
        )

    content = event["content"]
    # 1.1
    if event.get("prev_events"):  # any entry at all, whatever the event format
        raise fail("1.1", "it has prev_events")
    # 1.2
    if rv.room_id_from_create_event:
        if "room_id" in event:
            raise fail("1.2", "it has a room_id")
    elif domain(str(event.get("room_id", ""))) != domain(event["sender"]):
        raise fail("1.2", "the room_id's domain does not match the sender's")
    # 1.3
    version = content.get("room_version")
    if "room_version" in content and (
        not isinstance(version, str) or version not in KNOWN_ROOM_VERSIONS
    ):
        raise fail("1.3", f"unknown room_version {content['room_version']!r}")
    # 1.4 (v10: creator; v11: none; v12: additional_creators)
    if not rv.implicit_room_creator and "creator" not in content:
        raise fail("1.4", "content has no creator")
    if rv.creators_have_infinite_power and "additional_creators" in content:
        additional: Any = content["additional_creators"]
        if not isinstance(additional, list) or not all(map(is_valid_user_id, additional)):
            raise fail("1.4", "additional_creators is not an array of user ids")
    # 1.5: allow


def _select_auth_events(
    event: JsonDict,
    auth_events: Mapping[StateKey, JsonDict],
    create_event: JsonDict,
    rv: RoomVersion,
    from_state: bool,
) -> Mapping[StateKey, JsonDict]:
    """The state the rules see: all of ``auth_events`` for state, else only the cited events
    (and the create event, which v12 events do not cite)."""
    if from_state:
        return auth_events
    cited_ids = set(auth_event_ids(event))
    selected = {
        key: auth_event
        for key, auth_event in auth_events.items()
        if auth_event.get("event_id") in cited_ids
    }
    selected[CREATE_KEY] = create_event
    return selected


def _check_auth_event_list(
    ctx: AuthContext, auth_events: Mapping[StateKey, JsonDict], from_state: bool
) -> None:
    """Rule 3 (v1-v11: rule 2): the event's cited ``auth_events`` against the given events."""
    rv, event = ctx.rv, ctx.event
    if not event_refs_well_formed(event.get("auth_events"), rv):
        raise ctx.fail("3.2", "auth_events is not a list of event references")
    cited = auth_event_ids(event)
    by_id = {
        auth_event.get("event_id"): (key, auth_event) for key, auth_event in auth_events.items()
    }
    allowed = set(
        auth_types_for_event(event["type"], ctx.sender, event.get("state_key"), ctx.content, ctx.rv)
    )
    create_id = ctx.create_event.get("event_id")
    # 3.1
    if len(set(cited)) != len(cited):
        raise ctx.fail("3.1", "auth_events lists an event more than once")
    # 3.2
    for event_id in cited:
        if rv.room_id_from_create_event and event_id == create_id:
            raise ctx.fail("3.2", "the m.room.create event must not be in auth_events")
        found = by_id.get(event_id)
        if found is None:
            if from_state:  # an older auth event than the state's: nothing to compare
                continue
            raise ctx.fail(
                "3.2",
                f"auth event {event_id} is not among the given auth events (a duplicate "
                "type/state_key pair or an event that is not an auth event)",
            )
        if found[0] not in allowed:
            raise ctx.fail("3.2", f"auth event {event_id} {found[0]} is not an auth event for it")
    # 3.2 (v1-v11: 2.4)
    if not rv.room_id_from_create_event and create_id not in cited:
        raise ctx.fail("3.2", "no m.room.create event among its auth events", legacy="2.4")
    # 3.3 is the caller's: rejected events are never passed in.
    # 3.4 (v1-v11: 2.5)
    for key, auth_event in ctx.auth_events.items():
        if rv.room_id_from_create_event and key == CREATE_KEY:
            continue  # v12 create events have no room_id (rule 2 ties the room to them)
        if auth_event.get("room_id") != event.get("room_id"):
            raise ctx.fail("3.4", f"auth event {auth_event.get('event_id')} is in another room")
