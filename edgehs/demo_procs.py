"""The child processes of ``edgehs demo`` (edgehs/demo.py): each started in its own process
group with the demo's death signalled to it, its output copied to ``DIR/logs/NAME.log`` (loud
lines also to the console), and stopped with SIGTERM, then SIGKILL after ``STOP_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
from collections import deque
from pathlib import Path

STOP_TIMEOUT = 15.0  # seconds a child may take after SIGTERM before it gets SIGKILL
# systemd's variables are the demo's own, not its children's.
CHILD_ENV_DROP = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID")
LOUD = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|^Traceback|^[\w.]*(Error|Exception)\b")


def child_env() -> dict[str, str]:
    """The demo's environment without systemd's variables."""
    return {k: v for k, v in os.environ.items() if k not in CHILD_ENV_DROP}


class Child:
    """One child process; its output goes to ``DIR/logs/NAME.log`` and (loud lines, or all
    with ``verbose``) to the console prefixed with ``[NAME]``."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, verbose: bool) -> None:
        self.name, self.argv, self.verbose = name, argv, verbose
        self.log_path = log_dir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.tail: deque[str] = deque(maxlen=40)
        self._pump: asyncio.Task[None] | None = None
        # Linux: the child gets SIGTERM when the demo dies, even by SIGKILL (no orphans).
        # prctl is looked up here: between fork and exec the child only calls it.
        prctl = ctypes.CDLL(None).prctl if sys.platform == "linux" else None
        self._preexec = (lambda: prctl(1, signal.SIGTERM)) if prctl else None  # PDEATHSIG

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=child_env(), limit=1 << 20,
            # Own process group: a Ctrl-C in the terminal reaches the demo only, which then
            # stops the children in order (devices first).
            process_group=0, preexec_fn=self._preexec)
        self._pump = asyncio.create_task(self._copy_output())

    async def _copy_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with self.log_path.open("ab") as log:
            log.write(f"===== {' '.join(self.argv)} (pid {self.proc.pid}) =====\n".encode())
            while True:
                try:
                    line = await self.proc.stdout.readline()
                except ValueError:  # a line over 1 MiB: its start is dropped
                    continue
                if not line:
                    break
                log.write(line)
                log.flush()
                text = line.decode(errors="replace").rstrip()
                self.tail.append(text)
                if self.verbose or LOUD.search(text):
                    print(f"[{self.name}] {text}", flush=True)

    @property
    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; waits for the output to be copied."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                print(f"{self.name} did not stop within {STOP_TIMEOUT:.0f} s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self._pump is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pump, 5)

    def report(self) -> str:
        lines = "\n".join(f"  {line}" for line in self.tail)
        return f"last lines of {self.log_path}:\n{lines}"
