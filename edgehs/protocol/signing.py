"""Server signing keys and signed JSON.

https://spec.matrix.org/v1.19/appendices/#signing-json

Built on matrix-org's ``signedjson`` (ed25519 via PyNaCl) and ``unpaddedbase64``. Keys are
``signedjson.types.SigningKey`` objects: a PyNaCl key carrying ``alg`` and ``version``.
The key file format is Synapse's: one line ``"ed25519 <version> <unpadded base64 seed>"``.
"""

import re

from signedjson.key import (
    NACL_ED25519,
    decode_signing_key_base64,
    decode_verify_key_base64,
    encode_signing_key_base64,
    encode_verify_key_base64,
    get_verify_key,
)
from signedjson.key import generate_signing_key as _generate_signing_key
from signedjson.sign import SignatureVerifyException, verify_signed_json
from signedjson.sign import sign_json as _sign_json
from signedjson.types import SigningKey

from edgehs.errors import Codes, MatrixError
from edgehs.protocol.room_versions import RoomVersion
from edgehs.types import JsonDict

__all__ = [
    "SigningKey",
    "decode_signing_key",
    "encode_signing_key",
    "generate_signing_key",
    "key_id",
    "key_valid_for_event",
    "sign_json",
    "signature_key_ids",
    "verify_json",
    "verify_key_base64",
]

# https://spec.matrix.org/v1.19/server-server-api/#publishing-keys: the version part of a key
# id ("ed25519:abc_1") is made of the characters [a-zA-Z0-9_].
_KEY_VERSION_RE = re.compile(r"[A-Za-z0-9_]+")


def _check_version(version: str) -> None:
    if not _KEY_VERSION_RE.fullmatch(version):
        raise ValueError(f"Invalid signing key version {version!r}: must match [a-zA-Z0-9_]+")


def generate_signing_key(version: str) -> SigningKey:
    """A fresh ed25519 signing key with the given version (e.g. ``"a_Xy3z"``).

    https://spec.matrix.org/v1.19/server-server-api/#publishing-keys
    """
    _check_version(version)
    return _generate_signing_key(version)


def encode_signing_key(key: SigningKey) -> str:
    """The key as one key-file line, ``"ed25519 <version> <unpadded base64 seed>"``."""
    return f"{key.alg} {key.version} {encode_signing_key_base64(key)}"


def decode_signing_key(text: str) -> SigningKey:
    """Parse a key-file line written by :func:`encode_signing_key`.

    Raises ``ValueError`` for a malformed line, an unknown algorithm, a bad version or a seed
    that is not 32 bytes of base64.
    """
    parts = text.split()
    if len(parts) != 3:
        raise ValueError("Signing key must be '<algorithm> <version> <base64 seed>'")
    algorithm, version, seed_b64 = parts
    if algorithm != NACL_ED25519:
        raise ValueError(f"Unsupported signing key algorithm {algorithm!r}")
    _check_version(version)
    try:
        return decode_signing_key_base64(algorithm, version, seed_b64)
    except ValueError:
        raise
    except Exception as e:  # nacl raises its own ValueError subclasses, binascii.Error etc.
        raise ValueError(f"Invalid signing key seed: {e}") from e


def verify_key_base64(key: SigningKey) -> str:
    """The public (verify) key of ``key`` as unpadded base64, as published in ``/key/v2/server``.

    https://spec.matrix.org/v1.19/server-server-api/#get_matrixkeyv2server
    """
    return encode_verify_key_base64(get_verify_key(key))


def key_id(key: SigningKey) -> str:
    """The signing key identifier, ``"<algorithm>:<version>"`` (e.g. ``"ed25519:a_Xy3z"``).

    https://spec.matrix.org/v1.19/appendices/#signing-details
    """
    return f"{key.alg}:{key.version}"


def sign_json(obj: JsonDict, server_name: str, key: SigningKey) -> JsonDict:
    """A copy of ``obj`` with this server's signature added under ``signatures``.

    https://spec.matrix.org/v1.19/appendices/#signing-details

    1. ``signatures`` and ``unsigned`` are removed.
    2. The rest is encoded as canonical JSON and signed.
    3. The unpadded base64 signature is added under ``signatures[server_name][key_id]``, existing
       signatures are kept, and ``unsigned`` is put back.

    ``obj`` itself is not modified.
    """
    copy = dict(obj)
    if "signatures" in obj:
        # Copy the two levels signedjson writes into, so the caller's dicts stay untouched.
        copy["signatures"] = {name: dict(sigs) for name, sigs in obj["signatures"].items()}
    return _sign_json(copy, server_name, key)


def signature_key_ids(obj: JsonDict, server_name: str) -> list[str]:
    """The key ids of ``server_name``'s signatures on ``obj`` whose algorithm we support.

    https://spec.matrix.org/v1.19/appendices/#checking-for-a-signature steps 1-2.
    """
    signatures = obj.get("signatures")
    if not isinstance(signatures, dict):
        return []
    by_server = signatures.get(server_name)
    if not isinstance(by_server, dict):
        return []
    return [kid for kid in by_server if kid.startswith(NACL_ED25519 + ":")]


def verify_json(obj: JsonDict, server_name: str, key_id: str, verify_key_b64: str) -> None:
    """Check ``server_name``'s signature with ``key_id`` on ``obj``.

    https://spec.matrix.org/v1.19/appendices/#checking-for-a-signature

    1. ``signatures`` must have an entry for ``server_name`` (checked by signedjson).
    2. ``key_id``'s algorithm must be one we understand (ed25519).
    3. The caller has looked up ``verify_key_b64`` for ``key_id``; it is decoded here.
    4. The signature is base64-decoded.
    5. ``signatures`` and ``unsigned`` are removed.
    6. The rest is encoded as canonical JSON.
    7. The signature is checked against those bytes.

    Raises ``MatrixError(403, M_FORBIDDEN)`` if any step fails.
    """
    algorithm, _, version = key_id.partition(":")
    # 2. Only ed25519 is defined.
    if algorithm != NACL_ED25519 or not version:
        raise MatrixError(
            403, Codes.FORBIDDEN, f"Signature from {server_name} with {key_id}: unknown algorithm"
        )
    # 3. Decode the verification key.
    try:
        verify_key = decode_verify_key_base64(algorithm, version, verify_key_b64)
    except Exception as e:
        raise MatrixError(
            403, Codes.FORBIDDEN, f"Signature from {server_name} with {key_id}: bad key ({e})"
        ) from e
    # 1. The signatures must be shaped as {server_name: {key_id: signature}}; signedjson checks
    # the entries exist, this guards against a remote sending some other shape.
    signatures = obj.get("signatures")
    if not isinstance(signatures, dict) or not isinstance(signatures.get(server_name), dict):
        raise MatrixError(403, Codes.FORBIDDEN, f"No signature from {server_name}")
    # 4-7. signedjson does the rest.
    try:
        verify_signed_json(obj, server_name, verify_key)
    except SignatureVerifyException as e:
        raise MatrixError(
            403, Codes.FORBIDDEN, f"Signature from {server_name} with {key_id} invalid: {e}"
        ) from e


def key_valid_for_event(valid_until_ts: int, origin_server_ts: int, rv: RoomVersion) -> bool:
    """Whether a server key whose ``valid_until_ts`` is given may verify an event sent at
    ``origin_server_ts``.

    https://spec.matrix.org/v1.19/rooms/v5/#signing-key-validity-period: from room version 5
    (``rv.enforce_key_validity``) the event's ``origin_server_ts`` must not be later than the
    key's ``valid_until_ts``; earlier versions accept any key the server published.
    """
    return not rv.enforce_key_validity or origin_server_ts <= valid_until_ts
