"""Event hashes, event ids, v12 room ids and event signatures (edgehs.protocol.events)."""

import base64
import copy
import hashlib
import json
import re
from typing import Any

import pytest

from edgehs.errors import Codes, MatrixError
from edgehs.protocol.events import (
    add_content_hash,
    check_content_hash,
    compute_content_hash,
    compute_event_id,
    compute_reference_hash,
    redact,
    room_id_for_create_event,
    sign_event,
    verify_event_signature,
)
from edgehs.protocol.room_versions import (
    KNOWN_ROOM_VERSIONS,
    ROOM_V10,
    ROOM_V11,
    ROOM_V12,
    RoomVersion,
)
from edgehs.protocol.signing import (
    SigningKey,
    decode_signing_key,
    generate_signing_key,
    key_id,
    verify_key_base64,
)
from edgehs.types import JsonDict

ALL_VERSIONS = list(KNOWN_ROOM_VERSIONS.values())
# Versions whose event ids are reference hashes (v3+).
HASH_ID_VERSIONS = [rv for rv in ALL_VERSIONS if not rv.event_id_in_pdu]
by_version = pytest.mark.parametrize("rv", ALL_VERSIONS, ids=lambda rv: f"v{rv.identifier}")
by_hash_id_version = pytest.mark.parametrize(
    "rv", HASH_ID_VERSIONS, ids=lambda rv: f"v{rv.identifier}"
)

# https://spec.matrix.org/v1.19/appendices/#cryptographic-test-vectors
SPEC_SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"

# "Event Signing": the minimally-sized event, and the expected signed event, verbatim.
SPEC_MINIMAL_EVENT: JsonDict = {
    "room_id": "!x:domain",
    "sender": "@a:domain",
    "origin": "domain",
    "origin_server_ts": 1000000,
    "signatures": {},
    "hashes": {},
    "type": "X",
    "content": {},
    "prev_events": [],
    "auth_events": [],
    "depth": 3,
    "unsigned": {"age_ts": 1000000},
}
SPEC_MINIMAL_EVENT_SIGNED: JsonDict = {
    "auth_events": [],
    "content": {},
    "depth": 3,
    "hashes": {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
    "origin": "domain",
    "origin_server_ts": 1000000,
    "prev_events": [],
    "room_id": "!x:domain",
    "sender": "@a:domain",
    "signatures": {
        "domain": {
            "ed25519:1": "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"  # noqa: E501
        }
    },
    "type": "X",
    "unsigned": {"age_ts": 1000000},
}
# "Event Signing": the event containing redactable content, and its expected signed form.
SPEC_MESSAGE_EVENT: JsonDict = {
    "content": {"body": "Here is the message content"},
    "event_id": "$0:domain",
    "origin": "domain",
    "origin_server_ts": 1000000,
    "type": "m.room.message",
    "room_id": "!r:domain",
    "sender": "@u:domain",
    "signatures": {},
    "unsigned": {"age_ts": 1000000},
}
SPEC_MESSAGE_EVENT_SIGNED: JsonDict = {
    "content": {"body": "Here is the message content"},
    "event_id": "$0:domain",
    "hashes": {"sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"},
    "origin": "domain",
    "origin_server_ts": 1000000,
    "type": "m.room.message",
    "room_id": "!r:domain",
    "sender": "@u:domain",
    "signatures": {
        "domain": {
            "ed25519:1": "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA"  # noqa: E501
        }
    },
    "unsigned": {"age_ts": 1000000},
}


@pytest.fixture
def spec_key() -> SigningKey:
    return decode_signing_key(f"ed25519 1 {SPEC_SEED}")


def make_event(type_: str = "m.room.message", **fields: Any) -> JsonDict:
    """A small v10-v12 style PDU (no event_id); keyword arguments override fields."""
    event: JsonDict = {
        "type": type_,
        "room_id": "!room:example.org",
        "sender": "@alice:example.org",
        "content": {"body": "hello"},
        "origin_server_ts": 1_700_000_000_000,
        "depth": 5,
        "prev_events": ["$prev"],
        "auth_events": ["$create", "$member", "$power"],
    }
    event.update(fields)
    return event


def _canonical_sha256(obj: object) -> bytes:
    """An independent canonical-JSON SHA-256 (the appendix's reference Python)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).digest()


# --- content hash -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (SPEC_MINIMAL_EVENT, "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"),
        (SPEC_MESSAGE_EVENT, "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"),
    ],
)
def test_content_hash_spec_vectors(event: JsonDict, expected: str) -> None:
    assert compute_content_hash(event) == expected


def test_content_hash_ignores_unsigned_signatures_and_hashes() -> None:
    event = make_event()
    decorated = {
        **event,
        "unsigned": {"age": 1},
        "signatures": {"x": {"ed25519:1": "s"}},
        "hashes": {"sha256": "zzz"},
    }
    assert compute_content_hash(decorated) == compute_content_hash(event)


def test_content_hash_is_independent_std_base64_sha256() -> None:
    event = make_event(content={"body": "ü/+?"})
    expected = base64.b64encode(_canonical_sha256(event)).decode().rstrip("=")
    assert compute_content_hash(event) == expected


def test_content_hash_covers_content() -> None:
    assert compute_content_hash(make_event(content={"body": "a"})) != compute_content_hash(
        make_event(content={"body": "b"})
    )


def test_add_content_hash_keeps_input_and_other_hashes() -> None:
    event = make_event(hashes={"sha512": "other"})
    before = copy.deepcopy(event)
    hashed = add_content_hash(event)
    assert event == before
    assert hashed["hashes"] == {"sha512": "other", "sha256": compute_content_hash(event)}
    assert check_content_hash(hashed)


def test_check_content_hash() -> None:
    hashed = add_content_hash(make_event())
    assert check_content_hash(hashed)
    assert check_content_hash({**hashed, "unsigned": {"age": 9}, "signatures": {}})
    assert not check_content_hash({**hashed, "content": {"body": "changed"}})
    assert not check_content_hash(make_event())
    for bad in ({"sha256": 5}, {"sha256": "?!"}, {"sha256": "ü"}, "nope", {}):
        assert not check_content_hash({**hashed, "hashes": bad})


def test_check_content_hash_accepts_padded_base64() -> None:
    hashed = add_content_hash(make_event())
    padded = hashed["hashes"]["sha256"] + "="
    assert check_content_hash({**hashed, "hashes": {"sha256": padded}})


# --- reference hash, event ids ------------------------------------------------------------------


@by_hash_id_version
def test_reference_hash_is_urlsafe_sha256_of_redacted_event(rv: RoomVersion) -> None:
    event = make_event(hashes={"sha256": "h"}, signatures={"s": {"ed25519:1": "x"}})
    stripped = redact(event, rv)
    del stripped["signatures"]
    digest = _canonical_sha256(stripped)
    if rv.urlsafe_event_ids:  # v4+
        expected = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", expected)
    else:  # v3: standard base64
        expected = base64.b64encode(digest).decode().rstrip("=")
        assert re.fullmatch(r"[A-Za-z0-9+/]{43}", expected)
    assert compute_reference_hash(event, rv) == expected


@by_hash_id_version
def test_event_id_ignores_signatures_unsigned_age_ts_and_redactable_content(
    rv: RoomVersion,
) -> None:
    event = make_event()
    event_id = compute_event_id(event, rv)
    assert re.fullmatch(r"\$[A-Za-z0-9+/_-]{43}", event_id)
    assert compute_event_id({**event, "signatures": {"x": {"ed25519:1": "s"}}}, rv) == event_id
    assert compute_event_id({**event, "unsigned": {"age": 1}, "age_ts": 9}, rv) == event_id
    assert compute_event_id({**event, "content": {"body": "other"}}, rv) == event_id
    assert compute_event_id(redact(event, rv), rv) == event_id


@by_hash_id_version
@pytest.mark.parametrize(
    "change",
    [
        {"sender": "@mallory:example.org"},
        {"depth": 6},
        {"prev_events": ["$other"]},
        {"origin_server_ts": 1},
        {"hashes": {"sha256": "different"}},
        {"state_key": ""},
    ],
)
def test_event_id_covers_protected_fields(rv: RoomVersion, change: JsonDict) -> None:
    event = make_event()
    assert compute_event_id({**event, **change}, rv) != compute_event_id(event, rv)


def test_origin_is_hashed_before_v11_only() -> None:
    event = make_event(origin="example.org")
    assert compute_event_id(event, ROOM_V10) != compute_event_id(make_event(), ROOM_V10)
    for rv in (ROOM_V11, ROOM_V12):
        assert compute_event_id(event, rv) == compute_event_id(make_event(), rv)


@by_hash_id_version
def test_event_id_round_trip_through_signing(rv: RoomVersion) -> None:
    key = generate_signing_key("a_test")
    signed = sign_event(make_event(), "example.org", key, rv)
    event_id = compute_event_id(signed, rv)
    # A receiving server computes the same id from the PDU, with or without unsigned data,
    # from a redacted copy, and after more servers have signed it.
    assert compute_event_id({**signed, "unsigned": {"age": 10}}, rv) == event_id
    assert compute_event_id(redact(signed, rv), rv) == event_id
    countersigned = sign_event(signed, "other.org", generate_signing_key("b"), rv)
    assert compute_event_id(countersigned, rv) == event_id
    # The content hash is part of the id, so an unhashed event has a different one.
    assert compute_event_id(make_event(), rv) != event_id


# --- v12 room ids -------------------------------------------------------------------------------


def _create_event(**content: Any) -> JsonDict:
    """A v12 m.room.create event: no room_id, no prev_events or auth_events."""
    return {
        "type": "m.room.create",
        "state_key": "",
        "sender": "@alice:example.org",
        "content": {"room_version": "12", **content},
        "origin_server_ts": 1_700_000_000_000,
        "depth": 1,
        "prev_events": [],
        "auth_events": [],
    }


def test_v12_room_id_is_create_event_id_with_bang(spec_key: SigningKey) -> None:
    create = sign_event(_create_event(), "example.org", spec_key, ROOM_V12)
    room_id = room_id_for_create_event(create, ROOM_V12)
    assert re.fullmatch(r"![A-Za-z0-9_-]{43}", room_id)
    assert room_id == "!" + compute_event_id(create, ROOM_V12)[1:]
    assert room_id == "!" + compute_reference_hash(create, ROOM_V12)


def test_v12_room_id_covers_the_whole_create_content() -> None:
    base = room_id_for_create_event(_create_event(), ROOM_V12)
    with_creators = room_id_for_create_event(
        _create_event(additional_creators=["@bob:example.org"]), ROOM_V12
    )
    # v11+ redaction keeps all of m.room.create's content, so every key is part of the id.
    assert with_creators != base
    assert room_id_for_create_event(_create_event(), ROOM_V12) == base
    assert room_id_for_create_event({**_create_event(), "unsigned": {"a": 1}}, ROOM_V12) == base


@pytest.mark.parametrize("rv", [ROOM_V10, ROOM_V11], ids=["v10", "v11"])
def test_room_id_derivation_needs_v12(rv: RoomVersion) -> None:
    with pytest.raises(ValueError):
        room_id_for_create_event(_create_event(), rv)


# --- event signatures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (SPEC_MINIMAL_EVENT, SPEC_MINIMAL_EVENT_SIGNED),
        (SPEC_MESSAGE_EVENT, SPEC_MESSAGE_EVENT_SIGNED),
    ],
    ids=["minimal", "redactable"],
)
def test_sign_event_spec_vectors(spec_key: SigningKey, event: JsonDict, expected: JsonDict) -> None:
    # The appendix vectors predate room version 11: the signed (redacted) form keeps the
    # top-level `origin`, which v11 no longer protects, so they hold for the v10 rules.
    before = copy.deepcopy(event)
    assert sign_event(event, "domain", spec_key, ROOM_V10) == expected
    assert event == before
    verify_event_signature(expected, "domain", "ed25519:1", verify_key_base64(spec_key), ROOM_V10)


@pytest.mark.parametrize("rv", [ROOM_V11, ROOM_V12], ids=["v11", "v12"])
def test_spec_vector_event_under_v11_rules(spec_key: SigningKey, rv: RoomVersion) -> None:
    signed = sign_event(SPEC_MINIMAL_EVENT, "domain", spec_key, rv)
    # Same content hash, different signature (origin is no longer signed) ...
    assert signed["hashes"] == SPEC_MINIMAL_EVENT_SIGNED["hashes"]
    assert signed["signatures"] != SPEC_MINIMAL_EVENT_SIGNED["signatures"]
    verify_event_signature(signed, "domain", "ed25519:1", verify_key_base64(spec_key), rv)
    # ... so changing origin does not break a v11+ signature.
    moved = {**signed, "origin": "elsewhere"}
    verify_event_signature(moved, "domain", "ed25519:1", verify_key_base64(spec_key), rv)


def _assert_bad_signature(event: JsonDict, key: SigningKey, rv: RoomVersion) -> None:
    with pytest.raises(MatrixError) as exc:
        verify_event_signature(event, "example.org", key_id(key), verify_key_base64(key), rv)
    assert exc.value.status == 403
    assert exc.value.errcode == Codes.FORBIDDEN


@by_version
def test_sign_and_verify_event(rv: RoomVersion) -> None:
    key = generate_signing_key("a_1")
    event = make_event(unsigned={"age": 5})
    signed = sign_event(event, "example.org", key, rv)
    assert check_content_hash(signed)
    assert signed["unsigned"] == {"age": 5}
    assert list(signed["signatures"]) == ["example.org"]
    verify = verify_key_base64(key)
    verify_event_signature(signed, "example.org", key_id(key), verify, rv)
    # The signature covers the redacted form: it holds for a redacted copy, and for an event
    # whose redactable content was altered (the content hash catches that instead).
    verify_event_signature(redact(signed, rv), "example.org", key_id(key), verify, rv)
    altered = {**signed, "content": {"body": "forged"}}
    verify_event_signature(altered, "example.org", key_id(key), verify, rv)
    assert not check_content_hash(altered)


@by_version
@pytest.mark.parametrize(
    "change",
    [
        {"sender": "@mallory:example.org"},
        {"prev_events": ["$forged"]},
        {"hashes": {"sha256": "AAAA"}},
        {"signatures": {}},
    ],
)
def test_verify_event_rejects_tampering(rv: RoomVersion, change: JsonDict) -> None:
    key = generate_signing_key("a_1")
    signed = sign_event(make_event(), "example.org", key, rv)
    _assert_bad_signature({**signed, **change}, key, rv)


@by_version
def test_verify_event_rejects_tampered_protected_content(rv: RoomVersion) -> None:
    key = generate_signing_key("a_1")
    signed = sign_event(
        make_event("m.room.member", content={"membership": "join"}), "example.org", key, rv
    )
    _assert_bad_signature({**signed, "content": {"membership": "ban"}}, key, rv)


@by_version
def test_verify_event_rejects_other_key(rv: RoomVersion) -> None:
    signed = sign_event(make_event(), "example.org", generate_signing_key("a_1"), rv)
    _assert_bad_signature(signed, generate_signing_key("a_1"), rv)


@by_version
def test_sign_event_keeps_other_servers_signatures(rv: RoomVersion) -> None:
    key_a, key_b = generate_signing_key("a"), generate_signing_key("b")
    once = sign_event(make_event(), "a.org", key_a, rv)
    twice = sign_event(once, "b.org", key_b, rv)
    assert set(twice["signatures"]) == {"a.org", "b.org"}
    verify_event_signature(twice, "a.org", "ed25519:a", verify_key_base64(key_a), rv)
    verify_event_signature(twice, "b.org", "ed25519:b", verify_key_base64(key_b), rv)
    assert once["signatures"] == {"a.org": once["signatures"]["a.org"]}
