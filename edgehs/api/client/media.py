"""Content repository: upload, asynchronous upload, download, thumbnails, config, URL previews.

https://spec.matrix.org/v1.19/client-server-api/#content-repository

The authenticated endpoints live under ``/_matrix/client/v1/media``; uploads stay under
``/_matrix/media/v3`` (and ``/_matrix/media/v1/create``); the deprecated unauthenticated
downloads and thumbnails under ``/_matrix/media/v3`` (and the r0 / v1 aliases) are still served.

URL previews are not implemented: edgehs has no policy yet for fetching arbitrary URLs from a
home network, so ``preview_url`` answers 403 M_FORBIDDEN, as Synapse does with previews off.
"""

import re
from collections.abc import AsyncIterator
from urllib.parse import quote

from aiohttp import web

from edgehs.api.auth import requester
from edgehs.api.keys import hs
from edgehs.api.params import json_body, query_bool, query_int
from edgehs.errors import Codes, MatrixError
from edgehs.service.media import DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS, MediaFile

CHUNK_SIZE = 65536
MAX_FILENAME_LENGTH = 255
MAX_THUMBNAIL_SIDE = 8192  # larger requests are clamped: a thumbnail is never upscaled anyway
CONTENT_TYPE_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+"
                             r"(\s*;[\x20-\x7e]*)?$")

# https://spec.matrix.org/v1.19/client-server-api/#serving-inline-content (Synapse's list;
# SVG is deliberately absent).
INLINE_CONTENT_TYPES = frozenset({
    "text/css", "text/plain", "text/csv", "application/json", "application/ld+json",
    "image/jpeg", "image/gif", "image/png", "image/apng", "image/webp", "image/avif",
    "video/mp4", "video/webm", "video/ogg", "video/quicktime",
    "audio/mp4", "audio/webm", "audio/aac", "audio/mpeg", "audio/ogg", "audio/wave",
    "audio/wav", "audio/x-wav", "audio/x-pn-wav", "audio/flac", "audio/x-flac",
})
# Text types served with "; charset=UTF-8" when the upload named no charset (as Synapse).
TEXT_CONTENT_TYPES = frozenset({
    "text/css", "text/csv", "text/html", "text/calendar", "text/plain", "text/javascript",
    "application/json", "application/ld+json", "application/rtf", "image/svg+xml", "text/xml",
})
# The spec's recommended policy plus Synapse's media-src.
MEDIA_CSP = ("sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
             "style-src 'unsafe-inline'; media-src 'self'; object-src 'self';")
# RFC 2616 separators: a filename containing one (or SP, CTLs, non-ASCII) is sent as filename*.
FILENAME_SEPARATORS = frozenset('()<>@,;:\\"/[]?={}')


# --- response shaping ---------------------------------------------------------------------------

def content_disposition(disposition: str, filename: str | None) -> str:
    """RFC 6266: ``filename=token`` when the name is a plain token, else RFC 5987
    ``filename*=utf-8''<percent-encoded>``."""
    if not filename:
        return disposition
    if all(32 < ord(c) < 127 and c not in FILENAME_SEPARATORS for c in filename):
        return f"{disposition}; filename={filename}"
    return f"{disposition}; filename*=utf-8''{quote(filename.encode('utf-8'), safe='')}"


def file_response(media: MediaFile, filename: str | None, *, thumbnail: bool,
                  authenticated: bool) -> web.FileResponse:
    base = media.content_type.split(";", 1)[0].strip().lower()
    content_type = media.content_type
    if media.content_type.lower() in TEXT_CONTENT_TYPES:
        content_type += "; charset=UTF-8"
    inline = thumbnail or base in INLINE_CONTENT_TYPES
    headers = {
        "Content-Type": content_type,
        "Content-Disposition": content_disposition("inline" if inline else "attachment",
                                                   filename),
        "Content-Security-Policy": MEDIA_CSP,
        "Cross-Origin-Resource-Policy": "cross-origin",
        "X-Content-Type-Options": "nosniff",
        "X-Robots-Tag": "noindex, nofollow, noarchive, noimageindex",
        # mxc content never changes; authenticated answers stay out of shared caches.
        "Cache-Control": ("private" if authenticated else "public") + ", max-age=86400",
    }
    return web.FileResponse(media.path, headers=headers)


# --- request parsing ----------------------------------------------------------------------------

def _upload_params(request: web.Request) -> tuple[str, str | None]:
    """(content type, filename) of an upload; refuses an oversized Content-Length unread."""
    limit = hs(request).media.max_upload_size
    if request.content_length is not None and request.content_length > limit:
        raise MatrixError(413, Codes.TOO_LARGE, f"Cannot upload files larger than {limit} bytes")
    content_type = request.headers.get("Content-Type") or "application/octet-stream"
    if len(content_type) > 255 or not CONTENT_TYPE_RE.match(content_type):
        raise MatrixError(400, Codes.INVALID_PARAM, "Content-Type is not a valid media type")
    filename = request.query.get("filename") or None
    if filename is not None and (len(filename) > MAX_FILENAME_LENGTH
                                 or any(ord(c) < 32 or ord(c) == 127 for c in filename)):
        raise MatrixError(400, Codes.INVALID_PARAM,
                          f"filename must be at most {MAX_FILENAME_LENGTH} printable characters")
    return content_type, filename


def _body(request: web.Request) -> AsyncIterator[bytes]:
    return request.content.iter_chunked(CHUNK_SIZE)


def _timeout(request: web.Request) -> int:
    return query_int(request, "timeout_ms", DEFAULT_TIMEOUT_MS, maximum=MAX_TIMEOUT_MS)


def _legacy_params(request: web.Request) -> None:
    """allow_remote / allow_redirect: checked, then moot (no federation, no redirects)."""
    query_bool(request, "allow_remote", True)
    query_bool(request, "allow_redirect", False)


def _dimension(request: web.Request, name: str) -> int:
    if not request.query.get(name):
        raise MatrixError(400, Codes.MISSING_PARAM, f"Missing query parameter: {name}")
    return query_int(request, name, 0, minimum=1, maximum=MAX_THUMBNAIL_SIDE)


# --- uploads -------------------------------------------------------------------------------------

async def upload(request: web.Request) -> web.Response:
    """POST /_matrix/media/v3/upload — https://spec.matrix.org/v1.19/client-server-api/#post_matrixmediav3upload"""
    who = await requester(request)
    content_type, filename = _upload_params(request)
    uri = await hs(request).media.upload(who.user_id, _body(request), content_type, filename)
    return web.json_response({"content_uri": uri})


async def upload_to(request: web.Request) -> web.Response:
    """PUT /_matrix/media/v3/upload/{serverName}/{mediaId} — https://spec.matrix.org/v1.19/client-server-api/#put_matrixmediav3uploadservernamemediaid"""
    who = await requester(request)
    content_type, filename = _upload_params(request)
    await hs(request).media.upload_to(
        who.user_id, request.match_info["serverName"], request.match_info["mediaId"],
        _body(request), content_type, filename,
    )
    return web.json_response({})


async def create(request: web.Request) -> web.Response:
    """POST /_matrix/media/v1/create — https://spec.matrix.org/v1.19/client-server-api/#post_matrixmediav1create"""
    who = await requester(request)
    await json_body(request)  # an empty object; anything that is not JSON is refused
    uri, expires_at = await hs(request).media.create(who.user_id)
    return web.json_response({"content_uri": uri, "unused_expires_at": expires_at})


# --- downloads and thumbnails -------------------------------------------------------------------

async def _download(request: web.Request, *, authenticated: bool) -> web.FileResponse:
    media = await hs(request).media.download(
        request.match_info["serverName"], request.match_info["mediaId"], _timeout(request),
    )
    filename = request.match_info.get("fileName") or media.filename
    return file_response(media, filename, thumbnail=False, authenticated=authenticated)


async def _thumbnail(request: web.Request, *, authenticated: bool) -> web.FileResponse:
    width, height = _dimension(request, "width"), _dimension(request, "height")
    method = request.query.get("method", "scale")
    if method not in ("scale", "crop"):
        raise MatrixError(400, Codes.INVALID_PARAM, "method must be scale or crop")
    query_bool(request, "animated")  # accepted; thumbnails are always static
    media = await hs(request).media.thumbnail(
        request.match_info["serverName"], request.match_info["mediaId"], width, height, method,
        _timeout(request),
    )
    return file_response(media, media.filename, thumbnail=True, authenticated=authenticated)


async def download(request: web.Request) -> web.FileResponse:
    """GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}] — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1mediadownloadservernamemediaid"""
    await requester(request)
    return await _download(request, authenticated=True)


async def thumbnail(request: web.Request) -> web.FileResponse:
    """GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId} — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1mediathumbnailservernamemediaid"""
    await requester(request)
    return await _thumbnail(request, authenticated=True)


async def download_legacy(request: web.Request) -> web.FileResponse:
    """GET /_matrix/media/v3/download/{serverName}/{mediaId}[/{fileName}] (deprecated, no
    auth) — https://spec.matrix.org/v1.19/client-server-api/#get_matrixmediav3downloadservernamemediaid"""
    _legacy_params(request)
    return await _download(request, authenticated=False)


async def thumbnail_legacy(request: web.Request) -> web.FileResponse:
    """GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId} (deprecated, no auth) — https://spec.matrix.org/v1.19/client-server-api/#get_matrixmediav3thumbnailservernamemediaid"""
    _legacy_params(request)
    return await _thumbnail(request, authenticated=False)


# --- config and previews -------------------------------------------------------------------------

async def config(request: web.Request) -> web.Response:
    """GET /_matrix/client/v1/media/config (and the deprecated /_matrix/media/v3/config) — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1mediaconfig"""
    await requester(request)
    return web.json_response(hs(request).media.config())


async def preview_url(request: web.Request) -> web.Response:
    """GET /_matrix/client/v1/media/preview_url (and /_matrix/media/v3/preview_url) — https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1mediapreview_url

    Always 403 M_FORBIDDEN: previews are disabled (see the module docstring)."""
    await requester(request)
    if not request.query.get("url"):
        raise MatrixError(400, Codes.MISSING_PARAM, "Missing query parameter: url")
    query_int(request, "ts", 0)
    raise MatrixError(403, Codes.FORBIDDEN, "URL previews are disabled on this server")
