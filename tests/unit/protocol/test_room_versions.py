"""The room version table and the per-version event format.

https://spec.matrix.org/v1.19/rooms/ and the pages of each version (rooms/v1 ... rooms/v12).
"""

import dataclasses
import re

import pytest
from signedjson.key import generate_signing_key, get_verify_key
from unpaddedbase64 import encode_base64

from edgehs.errors import Codes, MatrixError
from edgehs.protocol.canonical_json import check_canonical_json
from edgehs.protocol.events import (
    auth_event_ids,
    compute_event_id,
    compute_reference_hash,
    event_reference,
    event_refs_well_formed,
    new_legacy_event_id,
    prev_event_ids,
    sign_event,
    verify_event_signature,
)
from edgehs.protocol.room_versions import (
    DEFAULT_ROOM_VERSION,
    KNOWN_ROOM_VERSIONS,
    ROOM_V1,
    ROOM_V2,
    ROOM_V3,
    ROOM_V4,
    ROOM_V12,
    RoomVersion,
    get_room_version,
)
from edgehs.protocol.signing import key_valid_for_event
from edgehs.types import JsonDict

# Each version's differences from the previous one, as the rooms/vN pages list them.
CHANGES: dict[str, set[str]] = {
    "2": {"state_res_v2"},
    "3": {"event_id_in_pdu", "event_refs_with_hashes", "redaction_domain_auth"},
    "4": {"urlsafe_event_ids"},
    "5": {"enforce_key_validity"},
    "6": {"special_case_aliases_auth", "strict_canonical_json",
          "limit_notifications_power_levels"},
    "7": {"knock_join_rule"},
    "8": {"restricted_join_rule"},
    "9": {"redaction_keeps_join_authorised"},
    "10": {"knock_restricted_join_rule", "enforce_int_power_levels"},
    "11": {"implicit_room_creator", "redacts_in_content", "updated_redaction_rules"},
    "12": {"room_id_from_create_event", "creators_have_infinite_power", "state_res_v2_1"},
}


def flags(rv: RoomVersion) -> dict[str, object]:
    return {f.name: getattr(rv, f.name) for f in dataclasses.fields(rv) if f.name != "identifier"}


def test_every_stable_version_is_known_and_12_is_the_default() -> None:
    assert list(KNOWN_ROOM_VERSIONS) == [str(n) for n in range(1, 13)]
    assert DEFAULT_ROOM_VERSION is ROOM_V12
    assert get_room_version("1") is ROOM_V1
    with pytest.raises(MatrixError) as caught:
        get_room_version("13")
    assert caught.value.errcode == Codes.UNSUPPORTED_ROOM_VERSION


@pytest.mark.parametrize("identifier", list(CHANGES))
def test_each_version_changes_only_its_own_flags(identifier: str) -> None:
    rv = KNOWN_ROOM_VERSIONS[identifier]
    previous = KNOWN_ROOM_VERSIONS[str(int(identifier) - 1)]
    changed = {name for name, value in flags(rv).items() if flags(previous)[name] != value}
    assert changed == CHANGES[identifier]


def test_records_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ROOM_V1.knock_join_rule = True  # type: ignore[misc]


# -- event ids -----------------------------------------------------------------------------------


def pdu(**fields: object) -> JsonDict:
    event: JsonDict = {
        "type": "m.room.message",
        "room_id": "!room:example.org",
        "sender": "@alice:example.org",
        "content": {"body": "hello"},
        "origin_server_ts": 1_700_000_000_000,
        "depth": 5,
        "prev_events": [],
        "auth_events": [],
    }
    event.update(fields)
    return event


def test_v1_v2_event_ids_are_chosen_by_the_origin() -> None:
    event_id = new_legacy_event_id("example.org")
    assert re.fullmatch(r"\$[A-Za-z]{18}:example\.org", event_id)
    assert new_legacy_event_id("example.org") != event_id
    for rv in (ROOM_V1, ROOM_V2):
        with pytest.raises(ValueError):
            compute_event_id(pdu(), rv)


def test_v3_ids_use_standard_base64_and_v4_url_safe() -> None:
    # Find an event whose hash shows the difference ('+' or '/' in standard base64).
    for n in range(200):
        event = pdu(depth=n)
        v3 = compute_event_id(event, ROOM_V3)
        if re.search(r"[+/]", v3):
            break
    else:  # pragma: no cover - 200 hashes without '+' or '/' do not happen
        raise AssertionError("no hash with + or /")
    v4 = compute_event_id(event, ROOM_V4)
    assert v4 == v3.replace("+", "-").replace("/", "_")
    assert re.fullmatch(r"\$[A-Za-z0-9_-]{43}", v4)


def test_v1_references_carry_the_reference_hash() -> None:
    event = pdu(event_id="$abc:example.org")
    for rv in (ROOM_V1, ROOM_V2):
        ref = event_reference(event, rv)
        digest = compute_reference_hash(event, rv)  # standard base64 before v4
        assert ref == ["$abc:example.org", {"sha256": digest}]
        assert re.fullmatch(r"[A-Za-z0-9+/]{43}", digest)
    assert event_reference(event, ROOM_V3) == "$abc:example.org"


def test_v1_event_id_is_covered_by_the_signature() -> None:
    key = generate_signing_key("k")
    verify = encode_base64(get_verify_key(key).encode())
    signed = sign_event(pdu(event_id="$abc:example.org"), "example.org", key, ROOM_V1)
    verify_event_signature(signed, "example.org", "ed25519:k", verify, ROOM_V1)
    forged = {**signed, "event_id": "$other:example.org"}
    with pytest.raises(MatrixError):
        verify_event_signature(forged, "example.org", "ed25519:k", verify, ROOM_V1)


# -- prev_events / auth_events in both formats ----------------------------------------------------


def test_reference_helpers_read_both_formats() -> None:
    v1 = pdu(prev_events=[["$a:x", {"sha256": "h"}]],
             auth_events=[["$c:x", {"sha256": "h"}], ["$p:x", {"sha256": "h"}]])
    assert prev_event_ids(v1) == ["$a:x"]
    assert auth_event_ids(v1) == ["$c:x", "$p:x"]
    v4 = pdu(prev_events=["$a"], auth_events=["$c", "$p"])
    assert (prev_event_ids(v4), auth_event_ids(v4)) == (["$a"], ["$c", "$p"])
    junk = pdu(prev_events=[5, [], [7, {}], None], auth_events="nope")
    assert (prev_event_ids(junk), auth_event_ids(junk)) == ([], [])
    assert prev_event_ids({}) == []


def test_reference_shape_follows_the_version() -> None:
    pairs = [["$a:x", {"sha256": "h"}]]
    assert event_refs_well_formed(pairs, ROOM_V1)
    assert not event_refs_well_formed(["$a"], ROOM_V2)
    assert not event_refs_well_formed([["$a:x"]], ROOM_V1)
    assert event_refs_well_formed(["$a"], ROOM_V3)
    assert not event_refs_well_formed(pairs, ROOM_V4)
    assert not event_refs_well_formed(None, ROOM_V12)


# -- strict canonical JSON (v6) --------------------------------------------------------------------


@pytest.mark.parametrize("rv", list(KNOWN_ROOM_VERSIONS.values()),
                         ids=lambda rv: f"v{rv.identifier}")
def test_floats_and_big_integers_only_before_v6(rv: RoomVersion) -> None:
    for value in ({"n": 1.5}, {"n": 2**60}):
        if rv.strict_canonical_json:
            with pytest.raises(MatrixError):
                check_canonical_json(value, strict=rv.strict_canonical_json)
        else:
            check_canonical_json(value, strict=rv.strict_canonical_json)
    # Lone surrogates are never JSON UTF-8 can carry.
    with pytest.raises(MatrixError):
        check_canonical_json({"s": "\ud800"}, strict=rv.strict_canonical_json)



# -- signing key validity (v5) ---------------------------------------------------------------------


@pytest.mark.parametrize("rv", list(KNOWN_ROOM_VERSIONS.values()),
                         ids=lambda rv: f"v{rv.identifier}")
def test_expired_keys_refused_from_v5(rv: RoomVersion) -> None:
    assert key_valid_for_event(2000, 1000, rv)
    assert key_valid_for_event(1000, 1000, rv)
    assert key_valid_for_event(999, 1000, rv) is (not rv.enforce_key_validity)
