"""Canonical JSON: the one byte encoding that hashes and signatures are computed over.

https://spec.matrix.org/v1.19/appendices/#canonical-json

The encoding is the shortest UTF-8 JSON with object keys sorted by Unicode code point. The
``canonicaljson`` library (matrix-org) does the encoding; this module adds the size helper used
for the spec's size limits and the strict value check that room versions 6 and later require
(https://spec.matrix.org/v1.19/rooms/v10/#canonical-json).
"""

from canonicaljson import encode_canonical_json as _encode

from edgehs.errors import Codes, MatrixError

# https://spec.matrix.org/v1.19/appendices/#canonical-json: integers in [-(2**53)+1, (2**53)-1].
MAX_SAFE_INTEGER = 2**53 - 1
MIN_SAFE_INTEGER = -(2**53) + 1


def encode_canonical_json(obj: object) -> bytes:
    """Encode ``obj`` as canonical JSON bytes.

    https://spec.matrix.org/v1.19/appendices/#canonical-json

    The encoder does not reject floats or out-of-range integers (some non-event JSON, and events
    from old room versions, carry them); call :func:`check_canonical_json` where the spec
    requires the strict form. NaN and infinities raise ``ValueError``.
    """
    return _encode(obj)


def json_size(obj: object) -> int:
    """The length in bytes of ``obj``'s canonical JSON encoding.

    This is the measure behind the spec's size limits, e.g. the 65536-byte PDU limit:
    https://spec.matrix.org/v1.19/client-server-api/#size-limits
    """
    return len(_encode(obj))


def check_canonical_json(obj: object, *, strict: bool = True) -> None:
    """Reject values that canonical JSON cannot represent, as room versions >= 6 require.

    ``strict=False`` (events of room versions 1-5, before ``rv.strict_canonical_json``) skips
    rules 1 and 2: floats and integers of any size are allowed there.

    https://spec.matrix.org/v1.19/appendices/#canonical-json and
    https://spec.matrix.org/v1.19/rooms/v10/#canonical-json ("Servers MUST strictly enforce
    the JSON format ... a 400 M_BAD_JSON error on most endpoints").

    1. Numbers must be integers (floats are not permitted).
    2. Integers must lie in ``[-(2**53)+1, (2**53)-1]``.
    3. Object keys must be strings.
    4. Strings must be valid Unicode (no lone surrogates, which UTF-8 cannot encode).

    Raises ``MatrixError(400, M_BAD_JSON)`` naming the offending path.
    """
    stack: list[tuple[str, object]] = [("", obj)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, str):
            _check_string(value, path)
            continue
        if isinstance(value, int | float) and not strict:
            continue
        if isinstance(value, float):
            # 1. Floats are not permitted.
            raise MatrixError(
                400, Codes.BAD_JSON, f"Bad JSON value at {path or '.'}: floats are not allowed"
            )
        if isinstance(value, int):
            # 2. Integers must be within the range IEEE doubles represent exactly.
            if not MIN_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                raise MatrixError(
                    400, Codes.BAD_JSON, f"Bad JSON value at {path or '.'}: integer out of range"
                )
            continue
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    # 3. Object keys are strings.
                    raise MatrixError(
                        400, Codes.BAD_JSON, f"Bad JSON value at {path or '.'}: non-string key"
                    )
                _check_string(key, path)
                stack.append((f"{path}.{key}", item))
            continue
        if isinstance(value, list | tuple):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
            continue
        raise MatrixError(
            400, Codes.BAD_JSON, f"Bad JSON value at {path or '.'}: {type(value).__name__}"
        )


def _check_string(value: str, path: str) -> None:
    # 4. Lone surrogates (from "\\ud800"-style escapes) cannot be encoded as UTF-8.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MatrixError(
            400, Codes.BAD_JSON, f"Bad JSON value at {path or '.'}: invalid Unicode string"
        ) from exc
