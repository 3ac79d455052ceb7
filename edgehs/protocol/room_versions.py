"""Room versions as frozen flag records.

https://spec.matrix.org/v1.19/rooms/

Code asks a named flag (``rv.knock_join_rule``), never ``rv.identifier in {...}``. Each version is
the previous one with the differences spelled out via ``dataclasses.replace``. edgehs supports
versions 10, 11 and 12; v12 is the default, as the spec recommends.
"""

from dataclasses import dataclass, replace

from edgehs.errors import Codes, MatrixError


@dataclass(frozen=True)
class RoomVersion:
    identifier: str
    # v7: the "knock" join rule and membership.
    knock_join_rule: bool
    # v8: the "restricted" join rule with join_authorised_via_users_server.
    restricted_join_rule: bool
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


ROOM_V10 = RoomVersion(
    identifier="10",
    knock_join_rule=True,
    restricted_join_rule=True,
    knock_restricted_join_rule=True,
    enforce_int_power_levels=True,
    implicit_room_creator=False,
    redacts_in_content=False,
    updated_redaction_rules=False,
    room_id_from_create_event=False,
    creators_have_infinite_power=False,
    state_res_v2_1=False,
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
    rv.identifier: rv for rv in (ROOM_V10, ROOM_V11, ROOM_V12)
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
