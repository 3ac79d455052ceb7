"""systemd's notify protocol (``sd_notify(3)``) without libsystemd: READY=1, WATCHDOG=1, STOPPING=1.

A message is one datagram to the unix socket named by ``$NOTIFY_SOCKET``: a filesystem path, or
an abstract socket name written with a leading ``@``. Without ``$NOTIFY_SOCKET`` (not started by
systemd with ``Type=notify``) every call is a no-op. Failures are logged, never raised: a
homeserver must not stop serving because its supervisor went away.
See https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Mapping

log = logging.getLogger(__name__)


def _address(name: str) -> str | bytes:
    """The socket address for ``$NOTIFY_SOCKET``: ``@name`` is the abstract ``\\0name``."""
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


def notify(message: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``message`` (e.g. ``"READY=1"``) to the service manager; True if it was sent."""
    name = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not name:
        return False
    if name[0] not in "/@":
        log.warning("NOTIFY_SOCKET=%r is neither a path nor an abstract name; ignored", name)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(_address(name))
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("cannot notify systemd (%s) of %s: %s", name, message.split("\n")[0], exc)
        return False
    return True


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of ``$WATCHDOG_USEC``), or None when the watchdog
    is off or meant for another process (``$WATCHDOG_PID`` names a different pid)."""
    env = os.environ if env is None else env
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or not env.get("NOTIFY_SOCKET"):
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000


async def watchdog(interval: float) -> None:
    """Ping WATCHDOG=1 every ``interval`` seconds until cancelled. It runs on the event loop,
    so a loop stuck in blocking code stops the pings and systemd restarts the service."""
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def watchdog_running() -> AsyncIterator[float | None]:
    """Run :func:`watchdog` for the duration of the block when ``$WATCHDOG_USEC`` asks for it."""
    interval = watchdog_interval()
    task = asyncio.create_task(watchdog(interval)) if interval else None
    try:
        yield interval
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
