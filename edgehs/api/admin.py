"""edgehs's own admin API (not part of Matrix): what the command-line tools write while the
server runs.

Only one process writes a data dir's database: the one holding its lock
(``edgehs.store.writer_lock``), which owns the stream positions, the notifier and the caches.
While edgehs runs, the commands that write therefore ask the server to do it:

- ``edgehs device add`` through ``POST /_edgehs/admin/v1/devices`` (room events: the device's
  room, its join, the owner's invite); a token replaced there is refused at once, because the
  server's own token cache forgets the old one;
- ``edgehs register-user`` through ``POST /_edgehs/admin/v1/users``;
- ``edgehs rotate-key`` through ``POST /_edgehs/admin/v1/rotate_key``: the running server
  signs with the new key from its answer on.

Authentication (``Authorization: Bearer ...`` only; never in the query string, where proxies
and shells would log it):

- the **local admin secret**: 32 random bytes the server writes to ``DATA_DIR/admin.secret``
  (mode 0600, replaced at every start, removed at a clean stop). Whoever can read that file can
  already read the database, so it grants nothing new. It is accepted only from this machine
  (a loopback peer, or a peer whose address is the listening socket's own), compared in
  constant time, and never logged;
- or the access token of a server admin (``edgehs register-user --admin``), for a client on
  another machine.

Errors: no or malformed header 401 ``M_MISSING_TOKEN``; an unknown token 401
``M_UNKNOWN_TOKEN``; a valid token that is not an admin's (or the secret from elsewhere) 403
``M_FORBIDDEN``.
"""

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from edgehs.api.keys import CONFIG_KEY, hs
from edgehs.api.params import field, json_body, require
from edgehs.errors import Codes, MatrixError
from edgehs.service.devices import provision_device

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/_edgehs/admin/v1"
SECRET_FILE = "admin.secret"
SECRET_BYTES = 32


@dataclass(frozen=True)
class AdminState:
    secret: str | None  # None when the file could not be written: admin tokens only
    lock: asyncio.Lock  # one provisioning at a time (they share rooms and device ids)


ADMIN_KEY = web.AppKey("admin", AdminState)


def secret_path(data_dir: Path) -> Path:
    return data_dir / SECRET_FILE


def write_secret(path: Path) -> str:
    """A fresh secret in ``path`` (mode 0600), replacing the file atomically. The temporary
    file is created exclusively (O_EXCL never follows a planted symlink) with mode 0600 from
    the start, so the secret is never readable by others, not even for a moment."""
    secret = secrets.token_urlsafe(SECRET_BYTES)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(secret + "\n")
    os.replace(tmp, path)
    return secret


def read_secret(path: Path) -> str:
    """The secret a running server wrote (OSError if it cannot be read)."""
    return path.read_text().strip()


async def admin_secret_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the secret file exists while the server runs (only the server process
    creates it: command-line tools that open the database never do)."""
    path = secret_path(app[CONFIG_KEY].data_dir)
    secret: str | None
    try:
        secret = write_secret(path)
    except OSError as exc:
        log.warning("cannot write %s (%s): the admin API accepts admin access tokens only",
                    path, exc.strerror or exc)
        secret = None
    app[ADMIN_KEY] = AdminState(secret, asyncio.Lock())
    yield
    if secret is not None:
        with contextlib.suppress(OSError):
            if hmac.compare_digest(read_secret(path), secret):  # still ours: remove it
                path.unlink()


def _from_this_machine(request: web.Request) -> bool:
    """The peer is this machine: a loopback address, or the address the request came in on
    (a client on this host connecting to its LAN address)."""
    if request.remote is None:
        return False
    try:
        peer = ipaddress.ip_address(request.remote)
    except ValueError:
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    if peer.is_loopback:
        return True
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return isinstance(sockname, tuple) and bool(sockname) and str(sockname[0]) == request.remote


async def authorize(request: web.Request) -> str:
    """Who is asking, for the log ("local admin secret" or an admin's user id), or the
    errors listed in the module docstring."""
    header = request.headers.get("Authorization")
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise MatrixError(401, Codes.MISSING_TOKEN,
                          "The admin API needs an Authorization: Bearer header")
    state = request.app[ADMIN_KEY]
    if state.secret is not None and hmac.compare_digest(token.encode(), state.secret.encode()):
        if not _from_this_machine(request):
            raise MatrixError(403, Codes.FORBIDDEN,
                              "The admin secret is only accepted from this machine")
        return "the local admin secret"
    server = hs(request)
    if server.appservices.by_token(token) is not None:
        raise MatrixError(403, Codes.FORBIDDEN, "Application services are not server admins")
    info = await server.users.validate_token(token)  # 401 M_UNKNOWN_TOKEN
    if info.room_id is not None or not await server.users.is_admin(info.user_id):
        raise MatrixError(403, Codes.FORBIDDEN, "Only server admins may use the admin API")
    return info.user_id


async def add_device(request: web.Request) -> web.Response:
    """POST /_edgehs/admin/v1/devices — edgehs's admin API (no spec section); the Matrix side
    is https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3createroom

    Body: ``{"name": str, "room_alias"?: str, "owner"?: str, "any_room"?: bool}`` as for
    ``edgehs device add NAME [--room ALIAS] [--owner USER] [--any-room]``. Answers the
    provisioned device (``user_id``, ``room_id``, ``room_alias``, ``access_token``,
    ``device_id``, ``room_limited``, ``created_user``, ``created_room``, ``invited_owner``);
    the device's previous token stops working before the answer is sent.
    """
    who = await authorize(request)
    body = await json_body(request, allow_empty=False)
    name = require(body, "name", str)
    room = field(body, "room_alias", str)
    owner = field(body, "owner", str)
    any_room = bool(field(body, "any_room", bool, default=False))
    server = hs(request)
    async with request.app[ADMIN_KEY].lock:
        device = await provision_device(server.users, server.rooms, name, room=room,
                                        owner=owner, any_room=any_room)
    log.info("device %s provisioned in %s by %s (new user: %s, new room: %s)", device.user_id,
             device.room_alias, who, device.created_user, device.created_room)
    return web.json_response(device.to_json())


async def register_user(request: web.Request) -> web.Response:
    """POST /_edgehs/admin/v1/users — edgehs's admin API (no spec section); the Matrix side
    is https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3register

    Body: ``{"username": str, "password": str, "admin"?: bool}`` as for
    ``edgehs register-user USER --password PASSWORD [--admin]`` (registration may be closed
    to clients). Answers ``{"user_id": str}``; a taken name is 400 ``M_USER_IN_USE``, a name
    outside the grammar 400 ``M_INVALID_USERNAME``.
    """
    who = await authorize(request)
    body = await json_body(request, allow_empty=False)
    username = require(body, "username", str)
    password = require(body, "password", str)
    admin = bool(field(body, "admin", bool, default=False))
    user_id = await hs(request).users.register(username, password, admin=admin)
    log.info("user %s registered%s by %s", user_id, " as a server admin" if admin else "", who)
    return web.json_response({"user_id": user_id})


async def rotate_key(request: web.Request) -> web.Response:
    """POST /_edgehs/admin/v1/rotate_key — edgehs's admin API (no spec section); the Matrix
    side is https://spec.matrix.org/v1.19/server-server-api/#get_matrixkeyv2server

    Body: ``{}`` (or none), as for ``edgehs rotate-key``. A new signing key becomes current
    (key file rewritten, events signed with it from now on); the previous one is published
    in ``old_verify_keys``. Answers ``{"key_id": str}``, the new key's id.
    """
    who = await authorize(request)
    await json_body(request)  # an object if anything: nothing is read from it yet
    async with request.app[ADMIN_KEY].lock:
        new_id = await hs(request).server_keys.rotate()
    log.info("signing key rotated to %s by %s", new_id, who)
    return web.json_response({"key_id": new_id})
