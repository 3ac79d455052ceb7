"""Error rendering, CORS and the JSON content type.

https://spec.matrix.org/v1.19/client-server-api/#standard-error-response
https://spec.matrix.org/v1.19/client-server-api/#web-browser-clients
"""

import json
import logging

from aiohttp import web

from edgehs.api.keys import Handler
from edgehs.errors import Codes, MatrixError

log = logging.getLogger(__name__)

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
}


def error_response(status: int, errcode: str, msg: str, **extra: object) -> web.Response:
    return web.json_response({"errcode": errcode, "error": msg, **extra}, status=status,
                             dumps=json.dumps)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except MatrixError as exc:
        resp = web.json_response(exc.to_json(), status=exc.status)
        if exc.errcode == Codes.LIMIT_EXCEEDED and "retry_after_ms" in exc.extra:
            resp.headers["Retry-After"] = str(max(1, int(exc.extra["retry_after_ms"]) // 1000))
        return resp
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, Codes.TOO_LARGE, "Request body is too large")
    except web.HTTPNotFound:
        return error_response(404, Codes.UNRECOGNIZED, "Unrecognized request")
    except web.HTTPMethodNotAllowed:
        return error_response(405, Codes.UNRECOGNIZED, "Method not allowed for this endpoint")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, Codes.UNKNOWN, exc.reason)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, Codes.UNKNOWN, "Internal server error")


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "OPTIONS":
        return web.Response(status=204, headers=CORS_HEADERS)
    resp = await handler(request)
    resp.headers.update(CORS_HEADERS)
    return resp


async def json_without_charset(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: send JSON as plain ``Content-Type: application/json``, as the
    spec's examples and other homeservers do. The media type defines no charset parameter
    (JSON is UTF-8, RFC 8259 section 11), and clients that compare the whole header value
    refuse the ``; charset=utf-8`` aiohttp adds to text bodies. Media files keep the type
    they are served with (a JSON upload is served with ``charset=UTF-8``).
    https://spec.matrix.org/v1.19/client-server-api/#api-standards"""
    if isinstance(response, web.FileResponse):
        return
    if response.content_type == "application/json" and response.charset is not None:
        response.charset = None
