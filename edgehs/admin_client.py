"""How the command-line tools that write (``edgehs register-user``, ``edgehs device add``) reach
the database: one process writes a data dir, the one holding its lock
(``edgehs.store.writer_lock``).

- No process holds the lock: the command takes it (so no server can start meanwhile), opens
  the database, writes, and lets go.
- A running edgehs holds it: the command asks that server through its admin API
  (edgehs/api/admin.py) on the listen address, authenticated by ``DATA_DIR/admin.secret`` (or
  a server admin's access token), with blocking stdlib HTTP (no event loop of its own).
"""

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from typing import TypeVar

from edgehs.api import admin
from edgehs.config import Config
from edgehs.homeserver import HomeServer
from edgehs.store.writer_lock import DataDirLocked
from edgehs.types import JsonDict

T = TypeVar("T")

WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class AdminApiError(Exception):
    """The running server could not do it; the message says why (one line)."""


def local_host(host: str) -> str:
    """An address this machine reaches its own listener on (wildcards become loopback)."""
    return WILDCARD_HOSTS.get(host, host)


def admin_url(config: Config, path: str) -> str:
    host = local_host(config.listen_host)
    base = f"http://[{host}]" if ":" in host else f"http://{host}"
    return f"{base}:{config.listen_port}{admin.ADMIN_PREFIX}{path}"


def admin_credential(config: Config, admin_token: str | None, holder: DataDirLocked,
                     command: str) -> str:
    """``--admin-token``, else the secret the running server wrote to DATA_DIR/admin.secret."""
    if admin_token:
        return admin_token
    path = admin.secret_path(config.data_dir)
    try:
        secret = admin.read_secret(path)
    except PermissionError as exc:
        raise AdminApiError(
            f"edgehs is running and {path} cannot be read (permission denied): run this as "
            f"the user edgehs runs as (e.g. sudo -u edgehs edgehs {command} ...), or pass "
            "--admin-token with a server admin's access token") from exc
    except OSError as exc:
        raise AdminApiError(
            f"{holder.holder} holds {config.data_dir}, but {path} cannot be read "
            f"({exc.strerror or exc}): it is still starting, or it is another edgehs command; "
            "try again when it is done, or pass --admin-token with a server admin's access "
            "token") from exc
    if not secret:
        raise AdminApiError(f"{path} is empty: restart edgehs to write a new one")
    return secret


def admin_post(config: Config, path: str, body: JsonDict, credential: str,
               holder: DataDirLocked) -> JsonDict:
    """POST ``body`` to ``ADMIN_PREFIX + path`` on the running server; its JSON answer."""
    url = admin_url(config, path)
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {credential}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            answer = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read())
            reason = f"{error['error']} ({error['errcode']})"
        except (ValueError, KeyError, TypeError):
            reason = f"HTTP {exc.code}: is the process on {url} the edgehs of {config.data_dir}?"
        raise AdminApiError(reason) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise AdminApiError(f"{holder.holder} holds {config.data_dir}, but it did not "
                            f"answer {url} ({exc}): it is still starting, or it is another "
                            "edgehs command; try again when it is done") from exc
    if not isinstance(answer, dict):
        raise AdminApiError(f"unexpected answer from {url}: not a JSON object")
    return answer


def write(config: Config, direct: Callable[[HomeServer], Awaitable[T]],
          live: Callable[[DataDirLocked], T]) -> tuple[T, bool]:
    """``direct(server)`` on a HomeServer of our own when the data dir's lock is free (held
    while it runs), else ``live(holder)`` through the running server; and which one it was.
    ``MatrixError`` and ``AdminApiError`` pass through."""

    async def run() -> T:
        server = HomeServer(config)
        await server.start()  # DataDirLocked before it opens anything
        try:
            return await direct(server)
        finally:
            await server.stop()

    try:
        return asyncio.run(run()), False
    except DataDirLocked as holder:
        return live(holder), True
