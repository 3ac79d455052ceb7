"""This server's signing keys: the current one (the key file), the retired ones (the store),
their publication at ``GET /_matrix/key/v2/server`` and rotation (``edgehs rotate-key``).

https://spec.matrix.org/v1.19/server-server-api/#publishing-keys
"""

import asyncio
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from edgehs.errors import Codes, MatrixError
from edgehs.protocol.signing import (
    SigningKey,
    encode_signing_key,
    generate_signing_key,
    key_id,
    sign_json,
    verify_key_base64,
)
from edgehs.store.server_keys import OldVerifyKey, ServerKeyStore
from edgehs.types import JsonDict

KeyListener = Callable[[SigningKey], None]


def new_key_version() -> str:
    """A fresh key version, ``a_`` and 4 hex digits, as for the first key."""
    return "a_" + secrets.token_hex(2)


def stage_signing_key(path: Path, key: SigningKey) -> Path:
    """Write ``key`` to a temporary file beside ``path`` and return it; renaming it over
    ``path`` (``os.replace``) then replaces the key file atomically. The file is created
    exclusively with mode 0600 (never readable by others, never through a planted symlink)
    and flushed to disk before it is returned."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(encode_signing_key(key) + "\n")
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


class ServerKeys:
    """The current signing key and the old verify keys of ``server_name``.

    Whoever signs with the current key registers a listener, called with the new key when it
    is rotated (the event service signs new events with it at once)."""

    def __init__(self, server_name: str, signing_key: SigningKey, key_path: Path,
                 store: ServerKeyStore, validity_period_ms: int) -> None:
        self.server_name = server_name
        self.signing_key = signing_key
        self.key_path = key_path
        self.store = store
        self.validity_period_ms = validity_period_ms
        self.listeners: list[KeyListener] = []
        self._rotating = asyncio.Lock()  # one rotation at a time

    async def server_keys(self, now_ms: int | None = None) -> JsonDict:
        """The body of ``GET /_matrix/key/v2/server``.

        https://spec.matrix.org/v1.19/server-server-api/#get_matrixkeyv2server

        1. ``verify_keys``: the current key, by key id.
        2. ``old_verify_keys``: the retired keys with their ``expired_ts`` (the current key
           is left out, should a rotation have stopped between its two writes).
        3. ``valid_until_ts``: now plus the configured validity period.
        4. Signed by the current key.
        """
        now = int(time.time() * 1000) if now_ms is None else now_ms
        current = key_id(self.signing_key)
        old = {k.key_id: {"key": k.verify_key, "expired_ts": k.expired_ts}
               for k in await self.store.old_keys() if k.key_id != current}
        body: JsonDict = {
            "server_name": self.server_name,
            "verify_keys": {current: {"key": verify_key_base64(self.signing_key)}},
            "old_verify_keys": old,
            "valid_until_ts": now + self.validity_period_ms,
        }
        return sign_json(body, self.server_name, self.signing_key)

    async def rotate(self, now_ms: int | None = None) -> str:
        """A new signing key becomes current; the previous one becomes an old verify key
        expired now. Returns the new key id.

        1. Generate a key whose id is neither the current one nor a retired one.
        2. Write it to a temporary file beside the key file (a full disk or a read-only
           data dir fails here, before anything changed: 500 ``M_UNKNOWN``).
        3. Record the current key as old, durably, before the key file changes: a crash
           after this step leaves the old key current, and published as current only.
        4. Rename the temporary file over the key file.
        5. Switch to the new key in memory and tell the listeners.
        """
        async with self._rotating:
            now = int(time.time() * 1000) if now_ms is None else now_ms
            old = self.signing_key
            taken = {key_id(old)} | {k.key_id for k in await self.store.old_keys()}
            new = generate_signing_key(new_key_version())  # 1.
            while key_id(new) in taken:
                new = generate_signing_key(new_key_version())
            try:
                tmp = stage_signing_key(self.key_path, new)  # 2.
            except OSError as exc:
                raise MatrixError(500, Codes.UNKNOWN, f"Cannot write the new signing key next "
                                  f"to {self.key_path}: {exc.strerror or exc}") from exc
            try:
                await self.store.add_old_key(  # 3.
                    OldVerifyKey(key_id(old), verify_key_base64(old), now))
                try:
                    os.replace(tmp, self.key_path)  # 4.
                except OSError as exc:
                    raise MatrixError(500, Codes.UNKNOWN, f"Cannot replace {self.key_path}: "
                                      f"{exc.strerror or exc}") from exc
            finally:
                tmp.unlink(missing_ok=True)
            self.signing_key = new  # 5.
            for listener in self.listeners:
                listener(new)
            return key_id(new)
