"""Request parsing: bodies (size-limited, JSON objects only), fields and query parameters.
Every problem becomes a MatrixError with the spec's errcode."""

from typing import Any, TypeVar

from aiohttp import web

from edgehs.api.keys import CONFIG_KEY, ROOM_SCOPE
from edgehs.errors import Codes, MatrixError
from edgehs.service import json_parse
from edgehs.types import JsonDict

T = TypeVar("T")


async def read_body(request: web.Request, limit: int | None = None) -> bytes:
    """The raw body, refused with M_TOO_LARGE before it is read past ``limit``."""
    limit = limit or request.app[CONFIG_KEY].max_request_body_size
    if request.content_length is not None and request.content_length > limit:
        raise MatrixError(413, Codes.TOO_LARGE, f"Request body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise MatrixError(413, Codes.TOO_LARGE, f"Request body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: str | bytes, what: str) -> Any:
    """Any JSON text from a request (``what`` names it in the error): 400 M_NOT_JSON when it
    is not JSON, M_BAD_JSON when it nests deeper than the parser's limit."""
    try:
        return json_parse.loads(raw)
    except json_parse.JsonNestingError as exc:
        raise MatrixError(400, Codes.BAD_JSON, f"{what} is nested too deeply") from exc
    except ValueError as exc:
        raise MatrixError(400, Codes.NOT_JSON, f"{what} is not valid JSON: {exc}") from exc


async def json_body(request: web.Request, *, allow_empty: bool = True) -> JsonDict:
    """The request's JSON object body ({} when empty and allowed). A ``room_id`` in it must
    be the room the request's token is limited to, if it is (403 M_FORBIDDEN)."""
    raw = await read_body(request)
    if not raw.strip():
        if allow_empty:
            return {}
        raise MatrixError(400, Codes.NOT_JSON, "Request body must be a JSON object")
    body = parse_json(raw, "Request body")
    if not isinstance(body, dict):
        raise MatrixError(400, Codes.BAD_JSON, "Request body must be a JSON object")
    scope = request.get(ROOM_SCOPE)
    if scope is not None and "room_id" in body and body["room_id"] != scope:
        raise MatrixError(403, Codes.FORBIDDEN, "This token may only be used in one room")
    return body


def field(body: JsonDict, key: str, kind: type[T], *, required: bool = False,
          default: T | None = None) -> T | None:
    """``body[key]`` checked to be of ``kind`` (M_MISSING_PARAM / M_BAD_JSON otherwise)."""
    if key not in body or body[key] is None:
        if required:
            raise MatrixError(400, Codes.MISSING_PARAM, f"Missing parameter: {key}")
        return default
    value = body[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MatrixError(400, Codes.BAD_JSON, f"{key} must be of type {kind.__name__}")
    return value


def require(body: JsonDict, key: str, kind: type[T]) -> T:
    value = field(body, key, kind, required=True)
    assert value is not None
    return value


def query_int(request: web.Request, name: str, default: int, *, minimum: int = 0,
              maximum: int = 2**53) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise MatrixError(400, Codes.INVALID_PARAM, f"{name} must be an integer") from exc
    if value < minimum:
        raise MatrixError(400, Codes.INVALID_PARAM, f"{name} must be at least {minimum}")
    return min(value, maximum)


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw not in ("true", "false"):
        raise MatrixError(400, Codes.INVALID_PARAM, f"{name} must be true or false")
    return raw == "true"


def query_json(request: web.Request, name: str) -> Any:
    raw = request.query.get(name)
    return None if raw is None else parse_json(raw, name)
