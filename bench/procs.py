"""Starting, watching and stopping a homeserver process.

Memory is VmRSS / VmHWM from ``/proc/PID/status`` summed over the process and its
descendants; CPU is utime + stime from ``/proc/PID/stat``, likewise summed.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

_CLK_TCK = os.sysconf("SC_CLK_TCK")

# Every process spawned here, so an interrupted run still kills its servers at exit.
_LIVE: set[subprocess.Popen[bytes]] = set()


class ServerStartError(RuntimeError):
    """The server exited or never answered GET /_matrix/client/versions."""


@dataclass(frozen=True)
class Launch:
    """How to start one server: argv, working directory, log file and extra env."""

    name: str
    argv: list[str]
    cwd: Path
    log_path: Path
    base_url: str
    env: dict[str, str] = field(default_factory=dict)
    config_path: Path | None = None  # the YAML config (the appservice scenario edits it)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: split after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants that are alive now."""
    children = _children_map()
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2 :].split()
    # fields[11] is utime, fields[12] stime (fields 14 and 15 of proc(5), counted from 1).
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


class ServerProcess:
    """One homeserver process, started in its own session so the whole group can be killed."""

    def __init__(self, launch: Launch) -> None:
        self.launch = launch
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        self.launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env.update(self.launch.env)
        with self.launch.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.launch.argv,
                cwd=self.launch.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        _LIVE.add(self.proc)

    async def start(self, timeout_s: float) -> float:
        """Spawn the process and poll GET /versions; returns ms from spawn to first 200."""
        url = self.launch.base_url + "/_matrix/client/versions"
        async with aiohttp.ClientSession() as session:
            started = time.perf_counter()
            self.spawn()
            deadline = started + timeout_s
            while time.perf_counter() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise ServerStartError(
                        f"{self.launch.name} exited with code {self.proc.returncode} before "
                        f"answering /versions; log {self.launch.log_path}:\n{self.log_tail()}"
                    )
                try:
                    timeout = aiohttp.ClientTimeout(total=2.0)
                    async with session.get(url, timeout=timeout) as resp:
                        if resp.status == 200:
                            await resp.read()
                            return (time.perf_counter() - started) * 1000.0
                except (TimeoutError, aiohttp.ClientError, OSError):
                    pass
                await asyncio.sleep(0.02)
        raise ServerStartError(
            f"{self.launch.name} did not answer /versions within {timeout_s:.0f}s; "
            f"log {self.launch.log_path}:\n{self.log_tail()}"
        )

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("process not started")
        return self.proc.pid

    def rss_mb(self) -> float:
        """Resident memory of the process tree now, in MiB."""
        return sum(_status_kb(p, "VmRSS") for p in process_tree(self.pid)) / 1024.0

    def peak_rss_mb(self) -> float:
        """Peak resident memory (VmHWM) summed over the process tree, in MiB."""
        return sum(_status_kb(p, "VmHWM") for p in process_tree(self.pid)) / 1024.0

    def cpu_seconds(self) -> float:
        """User + system CPU seconds used so far by the process tree."""
        return sum(_cpu_seconds(p) for p in process_tree(self.pid))

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL it if it is still there after ``grace_s``."""
        proc = self.proc
        if proc is None:
            return
        _kill_group(proc, grace_s)
        _LIVE.discard(proc)
        self.proc = None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.launch.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _kill_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    # Kill leftovers of the group (children) even when the leader already exited.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5.0)


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE):
        _kill_group(proc, grace_s=3.0)
    _LIVE.clear()
