"""This server's signing keys: the current one (the key file), the retired ones (the store),
their publication at ``GET /_matrix/key/v2/server`` and rotation (``edgehs rotate-key``).

https://spec.matrix.org/v1.19/server-server-api/#publishing-keys
"""

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

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


def write_signing_key(path: Path, key: SigningKey) -> None:
    """Replace the key file with ``key`` atomically: a temporary file beside it, created
    exclusively with mode 0600 (never readable by others, never through a planted symlink),
    flushed to disk, then renamed over the old file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(encode_signing_key(key) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


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
        2. Record the current key as old (durably, before the key file changes: a crash
           after this step leaves the old key current and still published as current).
        3. Replace the key file atomically.
        4. Switch to the new key in memory and tell the listeners.
        """
        now = int(time.time() * 1000) if now_ms is None else now_ms
        taken = {key_id(self.signing_key)} | {k.key_id for k in await self.store.old_keys()}
        new = generate_signing_key(new_key_version())
        while key_id(new) in taken:
            new = generate_signing_key(new_key_version())
        old = self.signing_key
        await self.store.add_old_key(OldVerifyKey(key_id(old), verify_key_base64(old), now))
        write_signing_key(self.key_path, new)
        self.signing_key = new
        for listener in self.listeners:
            listener(new)
        return key_id(new)
