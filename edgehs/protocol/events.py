"""Event hashes, event ids, redaction, event signatures and the client event format.

Spec sections:
- content hash: https://spec.matrix.org/v1.19/server-server-api/#calculating-the-content-hash-for-an-event
- reference hash: https://spec.matrix.org/v1.19/server-server-api/#calculating-the-reference-hash-for-an-event
- event ids: https://spec.matrix.org/v1.19/rooms/v10/#event-ids
- redaction: https://spec.matrix.org/v1.19/rooms/v10/#redactions (v9 rules, used by v10) and
  https://spec.matrix.org/v1.19/rooms/v11/#redactions (v11, unchanged in v12)
- v12 room ids: https://spec.matrix.org/v1.19/rooms/v12/#event-format
- signing events: https://spec.matrix.org/v1.19/server-server-api/#signing-events

Every function takes the event as a plain ``JsonDict`` in federation (PDU) form and returns a new
dict; inputs are never modified.
"""

import copy
import hashlib
from collections.abc import Mapping

from unpaddedbase64 import decode_base64, encode_base64

from edgehs.protocol.canonical_json import encode_canonical_json
from edgehs.protocol.room_versions import RoomVersion
from edgehs.protocol.signing import SigningKey, sign_json, verify_json
from edgehs.types import EventId, JsonDict, RoomId

# Top-level keys kept by the redaction algorithm, room versions 9 and 10.
# https://spec.matrix.org/v1.19/rooms/v10/#redactions
_V10_KEPT_KEYS = frozenset(
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
_V11_KEPT_KEYS = _V10_KEPT_KEYS - {"origin", "membership", "prev_state"}

# Content keys kept per event type, v10. `m.room.create` keeps only `creator`.
_V10_KEPT_CONTENT: dict[str, frozenset[str]] = {
    "m.room.member": frozenset({"membership", "join_authorised_via_users_server"}),
    "m.room.create": frozenset({"creator"}),
    "m.room.join_rules": frozenset({"join_rule", "allow"}),
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
    **_V10_KEPT_CONTENT,
    "m.room.power_levels": _V10_KEPT_CONTENT["m.room.power_levels"] | {"invite"},
    "m.room.redaction": frozenset({"redacts"}),
}

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
    if rv.updated_redaction_rules:
        # v11+: `m.room.create` keeps all of its content (including v12's additional_creators).
        if event_type == "m.room.create":
            return dict(content)
        kept_keys = _V11_KEPT_CONTENT.get(str(event_type), frozenset())
    else:
        kept_keys = _V10_KEPT_CONTENT.get(str(event_type), frozenset())
    kept = {k: v for k, v in content.items() if k in kept_keys}
    if rv.updated_redaction_rules and event_type == "m.room.member":
        # v11+: `m.room.member` keeps the `signed` key of `third_party_invite`.
        invite = content.get("third_party_invite")
        if isinstance(invite, Mapping) and "signed" in invite:
            kept["third_party_invite"] = {"signed": invite["signed"]}
    return kept


def _redact_view(event: JsonDict, rv: RoomVersion) -> JsonDict:
    """:func:`redact` without the deep copy: nested values are shared with ``event``."""
    kept_keys = _V11_KEPT_KEYS if rv.updated_redaction_rules else _V10_KEPT_KEYS
    redacted = {k: v for k, v in event.items() if k in kept_keys}
    content = event.get("content")
    redacted["content"] = _redacted_content(
        event.get("type"), content if isinstance(content, Mapping) else {}, rv
    )
    return redacted


def redact(event: JsonDict, rv: RoomVersion) -> JsonDict:
    """The redacted form of ``event`` under room version ``rv``'s redaction algorithm.

    v10: https://spec.matrix.org/v1.19/rooms/v10/#redactions
    v11, v12 (``rv.updated_redaction_rules``): https://spec.matrix.org/v1.19/rooms/v11/#redactions

    1. Strip every top-level key except ``event_id``, ``type``, ``room_id``, ``sender``,
       ``state_key``, ``content``, ``hashes``, ``signatures``, ``depth``, ``prev_events``,
       ``auth_events``, ``origin_server_ts`` and, before v11 only, ``origin``, ``membership``,
       ``prev_state``.
    2. Strip every content key except, by event type:
       - ``m.room.member``: ``membership``, ``join_authorised_via_users_server``; from v11 also
         ``third_party_invite.signed``;
       - ``m.room.create``: ``creator`` in v10; all keys from v11;
       - ``m.room.join_rules``: ``join_rule``, ``allow``;
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
    """The event's reference hash as URL-safe unpadded base64.

    https://spec.matrix.org/v1.19/server-server-api/#calculating-the-reference-hash-for-an-event
    and https://spec.matrix.org/v1.19/appendices/#url-safe-unpadded-base64

    ``event`` must be in PDU form: room versions 4 and later do not carry ``event_id`` in the
    PDU, and an ``event_id`` key left in the dict would be hashed (the redaction algorithm keeps
    it).
    """
    return encode_base64(_reference_hash_bytes(event, rv), urlsafe=True)


def compute_event_id(event: JsonDict, rv: RoomVersion) -> EventId:
    """``"$"`` + the event's reference hash (room versions 4 and later, so all we support).

    https://spec.matrix.org/v1.19/rooms/v10/#event-ids
    """
    return EventId("$" + compute_reference_hash(event, rv))


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

    PDUs of room versions 4+ carry no ``event_id``, and v12 ``m.room.create`` events carry no
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
