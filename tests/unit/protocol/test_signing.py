"""Signing keys and signed JSON: https://spec.matrix.org/v1.19/appendices/#signing-json"""

import copy
import re

import pytest

from edgehs.errors import Codes, MatrixError
from edgehs.protocol.signing import (
    SigningKey,
    decode_signing_key,
    encode_signing_key,
    generate_signing_key,
    key_id,
    sign_json,
    signature_key_ids,
    verify_json,
    verify_key_base64,
)
from edgehs.types import JsonDict

# https://spec.matrix.org/v1.19/appendices/#cryptographic-test-vectors
SPEC_SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
SPEC_SERVER = "domain"
SPEC_KEY_ID = "ed25519:1"


@pytest.fixture
def spec_key() -> SigningKey:
    return decode_signing_key(f"ed25519 1 {SPEC_SEED}")


# --- the spec's test vectors --------------------------------------------------------------------


def test_spec_vector_signs_empty_object(spec_key: SigningKey) -> None:
    assert sign_json({}, SPEC_SERVER, spec_key) == {
        "signatures": {
            "domain": {
                "ed25519:1": "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"  # noqa: E501
            }
        }
    }


def test_spec_vector_signs_object_with_data(spec_key: SigningKey) -> None:
    assert sign_json({"one": 1, "two": "Two"}, SPEC_SERVER, spec_key) == {
        "one": 1,
        "signatures": {
            "domain": {
                "ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"  # noqa: E501
            }
        },
        "two": "Two",
    }


@pytest.mark.parametrize(
    "signed",
    [
        {
            "signatures": {
                "domain": {
                    "ed25519:1": "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"  # noqa: E501
                }
            }
        },
        {
            "one": 1,
            "signatures": {
                "domain": {
                    "ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"  # noqa: E501
                }
            },
            "two": "Two",
        },
    ],
)
def test_spec_vectors_verify(spec_key: SigningKey, signed: JsonDict) -> None:
    verify_json(signed, SPEC_SERVER, SPEC_KEY_ID, verify_key_base64(spec_key))


# --- keys ---------------------------------------------------------------------------------------


def test_spec_seed_decodes_to_key_id_ed25519_1(spec_key: SigningKey) -> None:
    assert key_id(spec_key) == SPEC_KEY_ID
    # The spec's seed string has non-zero padding bits in its last character ("...XA1"); the
    # canonical unpadded base64 of the same 32 bytes ends in "...XA0". Both decode alike.
    line = encode_signing_key(spec_key)
    assert line == f"ed25519 1 {SPEC_SEED[:-1]}0"
    assert verify_key_base64(decode_signing_key(line)) == verify_key_base64(spec_key)


def test_generate_encode_decode_round_trip() -> None:
    key = generate_signing_key("a_Xy3z")
    assert key_id(key) == "ed25519:a_Xy3z"
    line = encode_signing_key(key)
    assert re.fullmatch(r"ed25519 a_Xy3z [A-Za-z0-9+/]{43}", line)
    again = decode_signing_key(line + "\n")
    assert key_id(again) == key_id(key)
    assert verify_key_base64(again) == verify_key_base64(key)
    assert encode_signing_key(again) == line


def test_generated_keys_differ() -> None:
    assert verify_key_base64(generate_signing_key("a")) != verify_key_base64(
        generate_signing_key("a")
    )


def test_verify_key_is_unpadded_base64_of_32_bytes(spec_key: SigningKey) -> None:
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}", verify_key_base64(spec_key))


@pytest.mark.parametrize("version", ["", "a:b", "a b", "a-b", "ключ"])
def test_generate_rejects_bad_versions(version: str) -> None:
    with pytest.raises(ValueError):
        generate_signing_key(version)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "ed25519 1",
        f"ed25519 1 {SPEC_SEED} extra",
        f"curve25519 1 {SPEC_SEED}",
        f"ed25519 a:b {SPEC_SEED}",
        "ed25519 1 AAAA",  # 3 bytes, not a 32-byte seed
        "ed25519 1 !!!not-base64!!!",
    ],
)
def test_decode_rejects_bad_lines(line: str) -> None:
    with pytest.raises(ValueError):
        decode_signing_key(line)


# --- sign_json ----------------------------------------------------------------------------------


def test_sign_json_does_not_modify_its_input(spec_key: SigningKey) -> None:
    obj: JsonDict = {
        "a": 1,
        "signatures": {"other.org": {"ed25519:x": "sig"}, "domain": {"ed25519:old": "s"}},
        "unsigned": {"age": 5},
    }
    before = copy.deepcopy(obj)
    signed = sign_json(obj, SPEC_SERVER, spec_key)
    assert obj == before
    assert signed is not obj


def test_sign_json_keeps_other_signatures_and_unsigned(spec_key: SigningKey) -> None:
    obj: JsonDict = {
        "a": 1,
        "signatures": {"other.org": {"ed25519:x": "sig"}, "domain": {"ed25519:old": "s"}},
        "unsigned": {"age": 5},
    }
    signed = sign_json(obj, SPEC_SERVER, spec_key)
    assert signed["unsigned"] == {"age": 5}
    assert signed["signatures"]["other.org"] == {"ed25519:x": "sig"}
    assert set(signed["signatures"]["domain"]) == {"ed25519:old", "ed25519:1"}
    verify_json(signed, SPEC_SERVER, SPEC_KEY_ID, verify_key_base64(spec_key))


def test_signature_ignores_unsigned_and_other_signatures(spec_key: SigningKey) -> None:
    plain = sign_json({"one": 1, "two": "Two"}, SPEC_SERVER, spec_key)
    decorated = sign_json(
        {"one": 1, "two": "Two", "unsigned": {"x": 1}, "signatures": {"o": {"ed25519:z": "q"}}},
        SPEC_SERVER,
        spec_key,
    )
    assert decorated["signatures"]["domain"] == plain["signatures"]["domain"]


# --- verify_json --------------------------------------------------------------------------------


def _signed(spec_key: SigningKey) -> JsonDict:
    return sign_json({"one": 1, "two": "Two", "unsigned": {"u": 1}}, SPEC_SERVER, spec_key)


def test_verify_accepts_changes_to_unsigned(spec_key: SigningKey) -> None:
    signed = _signed(spec_key)
    signed["unsigned"] = {"age_ts": 123}
    verify_json(signed, SPEC_SERVER, SPEC_KEY_ID, verify_key_base64(spec_key))


def _assert_forbidden(obj: JsonDict, server: str, kid: str, verify_key: str) -> MatrixError:
    with pytest.raises(MatrixError) as exc:
        verify_json(obj, server, kid, verify_key)
    assert exc.value.status == 403
    assert exc.value.errcode == Codes.FORBIDDEN
    return exc.value


def test_verify_rejects_tampered_object(spec_key: SigningKey) -> None:
    signed = _signed(spec_key)
    signed["two"] = "Three"
    err = _assert_forbidden(signed, SPEC_SERVER, SPEC_KEY_ID, verify_key_base64(spec_key))
    assert "invalid" in err.msg


def test_verify_rejects_wrong_key(spec_key: SigningKey) -> None:
    other = verify_key_base64(generate_signing_key("1"))
    _assert_forbidden(_signed(spec_key), SPEC_SERVER, SPEC_KEY_ID, other)


@pytest.mark.parametrize(
    "signatures",
    [
        None,
        {},
        {"other.org": {"ed25519:1": "x"}},
        {"domain": {}},
        {"domain": {"ed25519:2": "x"}},
        {"domain": "not a dict"},
        ["not", "a", "dict"],
        {"domain": {"ed25519:1": "!!! not base64 !!!"}},
        {"domain": {"ed25519:1": 42}},
        {"domain": {"ed25519:1": "AAAA"}},
    ],
)
def test_verify_rejects_missing_or_malformed_signatures(
    spec_key: SigningKey, signatures: object
) -> None:
    obj: JsonDict = {"one": 1}
    if signatures is not None:
        obj["signatures"] = signatures
    _assert_forbidden(obj, SPEC_SERVER, SPEC_KEY_ID, verify_key_base64(spec_key))


@pytest.mark.parametrize("kid", ["curve25519:1", "ed25519", "ed25519:", "1"])
def test_verify_rejects_unknown_algorithms(spec_key: SigningKey, kid: str) -> None:
    _assert_forbidden(_signed(spec_key), SPEC_SERVER, kid, verify_key_base64(spec_key))


@pytest.mark.parametrize("bad_key", ["", "AAAA", "!!!"])
def test_verify_rejects_malformed_verify_keys(spec_key: SigningKey, bad_key: str) -> None:
    _assert_forbidden(_signed(spec_key), SPEC_SERVER, SPEC_KEY_ID, bad_key)


# --- signature_key_ids --------------------------------------------------------------------------


def test_signature_key_ids_lists_supported_algorithms_only() -> None:
    obj: JsonDict = {
        "signatures": {
            "domain": {"ed25519:1": "a", "ed25519:a_b": "b", "curve25519:2": "c"},
            "other": {"ed25519:9": "d"},
        }
    }
    assert signature_key_ids(obj, "domain") == ["ed25519:1", "ed25519:a_b"]
    assert signature_key_ids(obj, "other") == ["ed25519:9"]
    assert signature_key_ids(obj, "nobody") == []
    assert signature_key_ids({}, "domain") == []
    assert signature_key_ids({"signatures": []}, "domain") == []
    assert signature_key_ids({"signatures": {"domain": "x"}}, "domain") == []
