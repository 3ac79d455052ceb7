"""One writer per data dir: an exclusive ``flock`` on ``DATA_DIR/edgehs.lock``.

The server (``edgehs run``) takes it before it opens the database and keeps it for its
lifetime; a command-line tool that writes the database itself (``edgehs register-user``,
``edgehs device add`` while no server runs) takes it for as long as it writes. A second
process finds the lock held and stops (``edgehs run``) or asks the running server instead
(the admin API), so two processes never write one SQLite file, and never both believe they
own the stream positions, the notifier and the caches.

The kernel releases an ``flock`` when its process dies, so a crash never leaves a stale lock.
The file itself stays (removing it would race with a process that has just opened it); it
holds the pid of the current holder, for the message a second process prints.
"""

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_FILE = "edgehs.lock"


def lock_path(data_dir: Path) -> Path:
    return data_dir / LOCK_FILE


class DataDirLocked(Exception):
    """Another process holds the data dir's lock; ``str()`` is a one-line message."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        self.data_dir = data_dir
        self.pid = pid
        self.holder = "another edgehs process" + (f" (pid {pid})" if pid is not None else "")
        super().__init__(f"the data dir {data_dir} is in use by {self.holder}: only one "
                         "process may write its database")


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode("ascii").strip()
        return int(text) if text else None
    return None


class DataDirLock:
    """A held lock; :meth:`release` (or the process's end) lets the next one in."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: Path) -> "DataDirLock":
        """Take the lock without waiting: :class:`DataDirLocked` if another process (or
        another holder in this one) has it; ``OSError`` if the file cannot be opened."""
        path = lock_path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except PermissionError:
            # Another user's data dir: the lock still tells whether its server runs.
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise DataDirLocked(data_dir, pid) from None
        except BaseException:
            os.close(fd)
            raise
        with contextlib.suppress(OSError):  # read-only: the lock holds, without a pid
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Empty the pid and unlock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the last descriptor releases the flock
