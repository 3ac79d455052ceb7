"""Room versions as frozen flag records.

https://spec.matrix.org/v1.19/rooms/

Code asks a named flag (``rv.knock_join_rule``), never ``rv.identifier in {...}``. Each version is
the previous one with the differences spelled out via ``dataclasses.replace``. edgehs supports
every stable version, 1 to 12; v12 is the default, as the spec recommends.
"""

from dataclasses import dataclass, replace

from edgehs.errors import Codes, MatrixError


@dataclass(frozen=True)
class RoomVersion:
    identifier: str
    # v1, v2: the origin server picks the event id (``$random:server_name``) and puts it in the
    # PDU (https://spec.matrix.org/v1.19/rooms/v1/#event-ids); from v3 it is the reference hash.
    event_id_in_pdu: bool
    # v1, v2: prev_events and auth_events are ``[event_id, {"sha256": hash}]`` pairs; from v3
    # they are plain event ids.
    event_refs_with_hashes: bool
    # v4: event ids use URL-safe base64 (v3 uses standard base64).
    urlsafe_event_ids: bool
    # v2: state resolution v2 (v1 uses the original algorithm).
    state_res_v2: bool
    # v1, v2: rule 11, an m.room.redaction is allowed for a sender below the redact level only
    # when the redacted event comes from the redaction's own server (the event ids' domains).
    redaction_domain_auth: bool
    # v5: a signing key's ``valid_until_ts`` is enforced when checking event signatures.
    enforce_key_validity: bool
    # v1-v5: m.room.aliases has its own authorization rule (state_key = sender's server) and
    # the redaction algorithm keeps its ``aliases``.
    special_case_aliases_auth: bool
    # v6: events must be strict canonical JSON (no floats, integers in [-(2**53)+1, 2**53-1]).
    strict_canonical_json: bool
    # v6: the power levels rule also checks changes to ``notifications``.
    limit_notifications_power_levels: bool
    # v7: the "knock" join rule and membership.
    knock_join_rule: bool
    # v8: the "restricted" join rule with join_authorised_via_users_server (the redaction
    # algorithm keeps the join rules' ``allow``).
    restricted_join_rule: bool
    # v9: the redaction algorithm keeps m.room.member's join_authorised_via_users_server.
    redaction_keeps_join_authorised: bool
    # v10: "knock_restricted" join rule.
    knock_restricted_join_rule: bool
    # v10: power level values must be integers (not strings).
    enforce_int_power_levels: bool
    # v11: the room creator is the create event's sender; `creator` is no longer in content.
    implicit_room_creator: bool
    # v11: `redacts` moves from the top level into the content of m.room.redaction.
    redacts_in_content: bool
    # v11: the updated redaction algorithm (keeps create content, invite in join_rules etc.).
    updated_redaction_rules: bool
    # v12: the room id is the create event's reference hash ("!" + hash); the create event has no
    # room_id and is not listed in auth_events.
    room_id_from_create_event: bool
    # v12: the creators (sender + additional_creators) have infinite power and cannot appear in
    # m.room.power_levels users.
    creators_have_infinite_power: bool
    # v12: state resolution v2.1 (start from an empty state, replay conflicted state subgraph).
    state_res_v2_1: bool


ROOM_V1 = RoomVersion(
    identifier="1",
    event_id_in_pdu=True,
    event_refs_with_hashes=True,
    urlsafe_event_ids=False,
    state_res_v2=False,
    redaction_domain_auth=True,
    enforce_key_validity=False,
    special_case_aliases_auth=True,
    strict_canonical_json=False,
    limit_notifications_power_levels=False,
    knock_join_rule=False,
    restricted_join_rule=False,
    redaction_keeps_join_authorised=False,
    knock_restricted_join_rule=False,
    enforce_int_power_levels=False,
    implicit_room_creator=False,
    redacts_in_content=False,
    updated_redaction_rules=False,
    room_id_from_create_event=False,
    creators_have_infinite_power=False,
    state_res_v2_1=False,
)

ROOM_V2 = replace(ROOM_V1, identifier="2", state_res_v2=True)

ROOM_V3 = replace(
    ROOM_V2,
    identifier="3",
    event_id_in_pdu=False,
    event_refs_with_hashes=False,
    redaction_domain_auth=False,
)

ROOM_V4 = replace(ROOM_V3, identifier="4", urlsafe_event_ids=True)

ROOM_V5 = replace(ROOM_V4, identifier="5", enforce_key_validity=True)

ROOM_V6 = replace(
    ROOM_V5,
    identifier="6",
    special_case_aliases_auth=False,
    strict_canonical_json=True,
    limit_notifications_power_levels=True,
)

ROOM_V7 = replace(ROOM_V6, identifier="7", knock_join_rule=True)

ROOM_V8 = replace(ROOM_V7, identifier="8", restricted_join_rule=True)

ROOM_V9 = replace(ROOM_V8, identifier="9", redaction_keeps_join_authorised=True)

ROOM_V10 = replace(
    ROOM_V9,
    identifier="10",
    knock_restricted_join_rule=True,
    enforce_int_power_levels=True,
)

ROOM_V11 = replace(
    ROOM_V10,
    identifier="11",
    implicit_room_creator=True,
    redacts_in_content=True,
    updated_redaction_rules=True,
)

ROOM_V12 = replace(
    ROOM_V11,
    identifier="12",
    room_id_from_create_event=True,
    creators_have_infinite_power=True,
    state_res_v2_1=True,
)

KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {
    rv.identifier: rv
    for rv in (
        ROOM_V1, ROOM_V2, ROOM_V3, ROOM_V4, ROOM_V5, ROOM_V6,
        ROOM_V7, ROOM_V8, ROOM_V9, ROOM_V10, ROOM_V11, ROOM_V12,
    )
}

DEFAULT_ROOM_VERSION = ROOM_V12


def get_room_version(identifier: str) -> RoomVersion:
    """The room version record for ``identifier``, or M_UNSUPPORTED_ROOM_VERSION."""
    rv = KNOWN_ROOM_VERSIONS.get(identifier)
    if rv is None:
        raise MatrixError(
            400,
            Codes.UNSUPPORTED_ROOM_VERSION,
            f"Room version {identifier!r} is not supported by this server "
            f"(supported: {', '.join(sorted(KNOWN_ROOM_VERSIONS, key=int))})",
        )
    return rv
