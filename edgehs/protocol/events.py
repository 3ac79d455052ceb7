"""Event hashes, event ids, redaction, event signatures and the client event format.

Spec sections:
- content hash: https://spec.matrix.org/v1.19/server-server-api/#calculating-the-content-hash-for-an-event
- reference hash: https://spec.matrix.org/v1.19/server-server-api/#calculating-the-reference-hash-for-an-event
- event ids: https://spec.matrix.org/v1.19/rooms/v1/#event-ids (v1, v2: chosen by the origin),
  https://spec.matrix.org/v1.19/rooms/v3/#event-ids (v3: reference hash, standard base64),
  https://spec.matrix.org/v1.19/rooms/v4/#event-ids (v4+: URL-safe base64)
- event format (prev_events / auth_events): https://spec.matrix.org/v1.19/rooms/v1/#event-format
  and https://spec.matrix.org/v1.19/rooms/v3/#event-format
- redaction: https://spec.matrix.org/v1.19/rooms/v1/#redactions (v1-v5),
  https://spec.matrix.org/v1.19/rooms/v6/#redactions (v6, v7),
  https://spec.matrix.org/v1.19/rooms/v8/#redactions (v8),
  https://spec.matrix.org/v1.19/rooms/v9/#redactions (v9, v10) and
  https://spec.matrix.org/v1.19/rooms/v11/#redactions (v11, unchanged in v12)
- v12 room ids: https://spec.matrix.org/v1.19/rooms/v12/#event-format
- signing events: https://spec.matrix.org/v1.19/server-server-api/#signing-events

Every function takes the event as a plain ``JsonDict`` in federation (PDU) form and returns a new
dict; inputs are never modified.
"""

import copy
import hashlib
import secrets
from collections.abc import Mapping

from unpaddedbase64 import decode_base64, encode_base64

from edgehs.protocol.canonical_json import encode_canonical_json
from edgehs.protocol.room_versions import RoomVersion
from edgehs.protocol.signing import SigningKey, sign_json, verify_json
from edgehs.types import EventId, JsonDict, RoomId

# Top-level keys kept by the redaction algorithm, room versions 1 to 10.
# https://spec.matrix.org/v1.19/rooms/v1/#redactions
_V1_KEPT_KEYS = frozenset(
    {
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
        "prev_state",
        "auth_events",
        "origin",
        "origin_server_ts",
        "membership",
    }
)

# v11 no longer protects `origin`, `membership` and `prev_state`.
# https://spec.matrix.org/v1.19/rooms/v11/#redactions
_V11_KEPT_KEYS = _V1_KEPT_KEYS - {"origin", "membership", "prev_state"}

# Content keys kept per event type, v1 (up to v10 with the flags below). `m.room.create` keeps
# only `creator`.
_V1_KEPT_CONTENT: dict[str, frozenset[str]] = {
    "m.room.member": frozenset({"membership"}),
    "m.room.create": frozenset({"creator"}),
    "m.room.join_rules": frozenset({"join_rule"}),
    "m.room.power_levels": frozenset(
        {
            "ban",
            "events",
            "events_default",
            "kick",
            "redact",
            "state_default",
            "users",
            "users_default",
        }
    ),
    "m.room.history_visibility": frozenset({"history_visibility"}),
}

# v11: power levels keep `invite`, redactions keep `redacts`; `m.room.create` keeps all of its
# content (handled in code, so v12's `additional_creators` survives) and `m.room.member` keeps
# `third_party_invite.signed` (handled in code).
_V11_KEPT_CONTENT: dict[str, frozenset[str]] = {
    **_V1_KEPT_CONTENT,
    "m.room.member": frozenset({"membership", "join_authorised_via_users_server"}),
    "m.room.join_rules": frozenset({"join_rule", "allow"}),
    "m.room.power_levels": _V1_KEPT_CONTENT["m.room.power_levels"] | {"invite"},
    "m.room.redaction": frozenset({"redacts"}),
}


def _kept_content_keys(event_type: str, rv: RoomVersion) -> frozenset[str]:
    """The content keys the redaction algorithm of ``rv`` keeps for ``event_type``."""
    if rv.updated_redaction_rules:
        return _V11_KEPT_CONTENT.get(event_type, frozenset())
    kept = _V1_KEPT_CONTENT.get(event_type, frozenset())
    if event_type == "m.room.aliases" and rv.special_case_aliases_auth:  # v1-v5
        kept = frozenset({"aliases"})
    if event_type == "m.room.join_rules" and rv.restricted_join_rule:  # v8+
        kept = kept | {"allow"}
    if event_type == "m.room.member" and rv.redaction_keeps_join_authorised:  # v9+
        kept = kept | {"join_authorised_via_users_server"}
    return kept


# The client event format's keys.
# https://spec.matrix.org/v1.19/client-server-api/#room-event-format
_CLIENT_KEYS = (
    "content",
    "event_id",
    "origin_server_ts",
    "redacts",
    "room_id",
    "sender",
    "state_key",
    "type",
    "unsigned",
)


def _sha256(obj: object) -> bytes:
    return hashlib.sha256(encode_canonical_json(obj)).digest()


# --- content hash -------------------------------------------------------------------------------


def _content_hash_bytes(event: JsonDict) -> bytes:
    """https://spec.matrix.org/v1.19/server-server-api/#calculating-the-content-hash-for-an-event

    1. Remove ``unsigned``, ``signatures`` and ``hashes``.
    2. Encode the rest as canonical JSON.
    3. Hash it with SHA-256.
    """
    stripped = {k: v for k, v in event.items() if k not in ("unsigned", "signatures", "hashes")}
    return _sha256(stripped)


def compute_content_hash(event: JsonDict) -> str:
    """The event's content hash, as unpadded standard base64 (the ``hashes.sha256`` value).

    https://spec.matrix.org/v1.19/server-server-api/#calculating-the-content-hash-for-an-event
    """
    return encode_base64(_content_hash_bytes(event))


def add_content_hash(event: JsonDict) -> JsonDict:
    """A copy of ``event`` with ``hashes.sha256`` set to its content hash (other hashes kept).

    https://spec.matrix.org/v1.19/server-server-api/#calculating-the-content-hash-for-an-event
    """
    existing = event.get("hashes")
    hashes = dict(existing) if isinstance(existing, Mapping) else {}
    hashes["sha256"] = compute_content_hash(event)
    return {**event, "hashes": hashes}


def check_content_hash(event: JsonDict) -> bool:
    """Whether ``hashes.sha256`` matches the event's content hash.

    https://spec.matrix.org/v1.19/server-server-api/#checks-performed-on-receipt-of-a-pdu step 4:
    the received hash is base64-decoded and compared with the computed one. A missing or
    undecodable hash is a mismatch (the caller then uses the redacted event).
    """
    hashes = event.get("hashes")
    if not isinstance(hashes, Mapping):
        return False
    received = hashes.get("sha256")
    if not isinstance(received, str):
        return False
    try:
        received_bytes = decode_base64(received)
    except ValueError:  # binascii.Error, UnicodeEncodeError
        return False
    return received_bytes == _content_hash_bytes(event)


# --- redaction ----------------------------------------------------------------------------------


def _redacted_content(
    event_type: object, content: Mapping[str, object], rv: RoomVersion
) -> JsonDict:
    """The content the redaction algorithm keeps for ``event_type`` (values shared, not copied)."""
    if rv.updated_redaction_rules and event_type == "m.room.create":
        # v11+: `m.room.create` keeps all of its content (including v12's additional_creators).
        return dict(content)
    kept_keys = _kept_content_keys(str(event_type), rv)
    kept = {k: v for k, v in content.items() if k in kept_keys}
    if rv.updated_redaction_rules and event_type == "m.room.member":
        # v11+: `m.room.member` keeps the `signed` key of `third_party_invite`.
        invite = content.get("third_party_invite")
        if isinstance(invite, Mapping) and "signed" in invite:
            kept["third_party_invite"] = {"signed": invite["signed"]}
    return kept


def _redact_view(event: JsonDict, rv: RoomVersion) -> JsonDict:
    """:func:`redact` without the deep copy: nested values are shared with ``event``."""
    kept_keys = _V11_KEPT_KEYS if rv.updated_redaction_rules else _V1_KEPT_KEYS
    redacted = {k: v for k, v in event.items() if k in kept_keys}
    content = event.get("content")
    redacted["content"] = _redacted_content(
        event.get("type"), content if isinstance(content, Mapping) else {}, rv
    )
    return redacted


def redact(event: JsonDict, rv: RoomVersion) -> JsonDict:
    """The redacted form of ``event`` under room version ``rv``'s redaction algorithm.

    v1-v10: https://spec.matrix.org/v1.19/rooms/v1/#redactions, with the v6, v8 and v9 changes
    v11, v12 (``rv.updated_redaction_rules``): https://spec.matrix.org/v1.19/rooms/v11/#redactions

    1. Strip every top-level key except ``event_id``, ``type``, ``room_id``, ``sender``,
       ``state_key``, ``content``, ``hashes``, ``signatures``, ``depth``, ``prev_events``,
       ``auth_events``, ``origin_server_ts`` and, before v11 only, ``origin``, ``membership``,
       ``prev_state``.
    2. Strip every content key except, by event type:
       - ``m.room.member``: ``membership``; from v9 also ``join_authorised_via_users_server``;
         from v11 also ``third_party_invite.signed``;
       - ``m.room.create``: ``creator`` before v11; all keys from v11;
       - ``m.room.join_rules``: ``join_rule``; from v8 also ``allow``;
       - ``m.room.aliases`` (v1-v5 only): ``aliases``;
       - ``m.room.power_levels``: ``ban``, ``events``, ``events_default``, ``kick``, ``redact``,
         ``state_default``, ``users``, ``users_default``; from v11 also ``invite``;
       - ``m.room.history_visibility``: ``history_visibility``;
       - ``m.room.redaction`` (v11+): ``redacts``.

    ``unsigned`` is stripped too; a server adding ``redacted_because`` for clients does so
    afterwards. The result is a deep copy. ``content`` is always present (``{}`` if absent).
    """
    return copy.deepcopy(_redact_view(event, rv))


# --- reference hash, event ids, room ids ----------------------------------------------------------


def redaction_target(pdu: JsonDict) -> str | None:
    """The event an ``m.room.redaction`` redacts (``redacts`` at the top level before v11, in
    ``content`` from v11), or None for any other event."""
    if pdu.get("type") != "m.room.redaction":
        return None
    content = pdu.get("content")
    target = pdu.get("redacts") or (content.get("redacts") if isinstance(content, dict) else None)
    return target if isinstance(target, str) else None


def _reference_hash_bytes(event: JsonDict, rv: RoomVersion) -> bytes:
    """https://spec.matrix.org/v1.19/server-server-api/#calculating-the-reference-hash-for-an-event

    1. Put the event through the redaction algorithm.
    2. Remove ``signatures``, ``age_ts`` and ``unsigned``, if present.
    3. Encode the result as canonical JSON.
    4. Hash it with SHA-256.
    """
    redacted = _redact_view(event, rv)  # 1.
    for key in ("signatures", "age_ts", "unsigned"):  # 2.
        redacted.pop(key, None)
    return _sha256(redacted)  # 3., 4.


def compute_reference_hash(event: JsonDict, rv: RoomVersion) -> str:
    """The event's reference hash as unpadded base64: URL-safe from v4
    (``rv.urlsafe_event_ids``), standard before.

    https://spec.matrix.org/v1.19/server-server-api/#calculating-the-reference-hash-for-an-event
    and https://spec.matrix.org/v1.19/appendices/#url-safe-unpadded-base64

    ``event`` must be in PDU form: room versions 3 and later do not carry ``event_id`` in the
    PDU, and an ``event_id`` key left in the dict would be hashed (the redaction algorithm keeps
    it).
    """
    return encode_base64(_reference_hash_bytes(event, rv), urlsafe=rv.urlsafe_event_ids)


def compute_event_id(event: JsonDict, rv: RoomVersion) -> EventId:
    """The id of an event of room version 3 or later: ``"$"`` + its reference hash (standard
    base64 in v3, URL-safe from v4).

    https://spec.matrix.org/v1.19/rooms/v3/#event-ids and
    https://spec.matrix.org/v1.19/rooms/v4/#event-ids

    Raises ``ValueError`` for v1/v2 (``rv.event_id_in_pdu``), whose ids the origin server picks
    (:func:`new_legacy_event_id`) and which the PDU carries.
    """
    if rv.event_id_in_pdu:
        raise ValueError(f"Room version {rv.identifier} events carry their id in the PDU")
    return EventId("$" + compute_reference_hash(event, rv))


def new_legacy_event_id(server_name: str) -> EventId:
    """A fresh v1/v2 event id, ``$opaque_id:server_name``.

    https://spec.matrix.org/v1.19/rooms/v1/#event-ids (the opaque part is 18 random
    characters, as room ids' are here).
    """
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return EventId("$" + "".join(secrets.choice(alphabet) for _ in range(18)) + ":" + server_name)


def event_reference(event: JsonDict, rv: RoomVersion) -> object:
    """How a later event cites ``event`` (with ``event_id``) in prev_events / auth_events: v1/v2
    (``rv.event_refs_with_hashes``) ``[event_id, {"sha256": reference hash}]``, else the id.

    https://spec.matrix.org/v1.19/rooms/v1/#event-format
    """
    event_id = event["event_id"]
    if not rv.event_refs_with_hashes:
        return event_id
    return [event_id, {"sha256": encode_base64(_reference_hash_bytes(event, rv))}]


def _referenced_ids(value: object) -> list[str]:
    """The event ids of a prev_events / auth_events list in either format: plain ids (v3+) or
    ``[event_id, hashes]`` pairs (v1/v2). Malformed entries are skipped."""
    if not isinstance(value, list):
        return []
    ids: list[str] = []
    for item in value:
        if isinstance(item, str):
            ids.append(item)
        elif isinstance(item, list) and item and isinstance(item[0], str):
            ids.append(item[0])
    return ids


def prev_event_ids(pdu: Mapping[str, object]) -> list[str]:
    """The ids of the PDU's ``prev_events``, whatever the room version's format."""
    return _referenced_ids(pdu.get("prev_events"))


def auth_event_ids(pdu: Mapping[str, object]) -> list[str]:
    """The ids of the PDU's ``auth_events``, whatever the room version's format."""
    return _referenced_ids(pdu.get("auth_events"))


def event_refs_well_formed(value: object, rv: RoomVersion) -> bool:
    """Whether a prev_events / auth_events value has the shape of ``rv``'s event format: a list
    of ids (v3+) or of ``[event_id, {"sha256": ...}]`` pairs (v1/v2)."""
    if not isinstance(value, list):
        return False
    if not rv.event_refs_with_hashes:
        return all(isinstance(item, str) for item in value)
    return all(
        isinstance(item, list)
        and len(item) == 2
        and isinstance(item[0], str)
        and isinstance(item[1], dict)
        for item in value
    )


def room_id_for_create_event(create_event: JsonDict, rv: RoomVersion) -> RoomId:
    """The room id a v12+ ``m.room.create`` event defines: ``"!"`` + its reference hash.

    https://spec.matrix.org/v1.19/rooms/v12/ ("The room ID is the event ID of the event with
    sigil ``!`` instead of ``$``"); the create event itself has no ``room_id``.

    Raises ``ValueError`` for a room version whose room ids are not derived from the create
    event (a programming error: such rooms choose their id freely).
    """
    if not rv.room_id_from_create_event:
        raise ValueError(f"Room version {rv.identifier} does not derive room ids from events")
    return RoomId("!" + compute_reference_hash(create_event, rv))


# --- event signatures ---------------------------------------------------------------------------


def sign_event(event: JsonDict, server_name: str, key: SigningKey, rv: RoomVersion) -> JsonDict:
    """A copy of ``event`` with its content hash and this server's signature added.

    https://spec.matrix.org/v1.19/server-server-api/#signing-events

    1. Compute the content hash and store it in ``hashes.sha256``.
    2. Redact the event.
    3. Sign the redacted event as JSON (without ``signatures`` and ``unsigned``).
    4. Copy the redacted event's ``signatures`` onto the full event.
    """
    hashed = add_content_hash(event)  # 1.
    redacted = _redact_view(hashed, rv)  # 2.
    signed = sign_json(redacted, server_name, key)  # 3.
    return {**hashed, "signatures": signed["signatures"]}  # 4.


def verify_event_signature(
    event: JsonDict, server_name: str, key_id: str, verify_key_b64: str, rv: RoomVersion
) -> None:
    """Check ``server_name``'s signature with ``key_id`` on ``event``.

    https://spec.matrix.org/v1.19/server-server-api/#validating-hashes-and-signatures-on-received-events

    The signature covers the redacted event, so this succeeds whether ``event`` is the full event
    or a redacted copy. Raises ``MatrixError(403, M_FORBIDDEN)`` on failure.
    """
    verify_json(_redact_view(event, rv), server_name, key_id, verify_key_b64)


# --- client format ------------------------------------------------------------------------------


def strip_for_client(event: JsonDict) -> JsonDict:
    """``event`` in the client-server format (``ClientEvent``).

    https://spec.matrix.org/v1.19/client-server-api/#room-event-format

    Keeps ``content``, ``event_id``, ``origin_server_ts``, ``redacts``, ``room_id``,
    ``sender``, ``state_key``, ``type`` and ``unsigned``; drops federation-only keys
    (``auth_events``, ``prev_events``, ``hashes``, ``signatures``, ``depth``, ``origin``, ...).

    For ``m.room.redaction`` events ``redacts`` is served both at the top level and in
    ``content``, as https://spec.matrix.org/v1.19/rooms/v11/#moving-the-redacts-property-of-mroomredaction-events-to-a-content-property
    asks of servers for every room version.

    PDUs of room versions 3+ carry no ``event_id``, and v12 ``m.room.create`` events carry no
    ``room_id``: callers add them to ``event`` before calling this.
    """
    out = {k: event[k] for k in _CLIENT_KEYS if k in event}
    if event.get("type") == "m.room.redaction":
        content = out.get("content")
        if isinstance(content, Mapping):
            if "redacts" in out and "redacts" not in content:
                out["content"] = {**content, "redacts": out["redacts"]}
            elif "redacts" in content and "redacts" not in out:
                out["redacts"] = content["redacts"]
    return out
