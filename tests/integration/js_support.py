"""Node.js third-party clients (tests/js) as subprocesses of the integration tests.

A plain module beside the tests: ``from js_support import ...``. A script reports its progress
on stdout as lines "EDGEHS-JS {json}" with a "step" key; its stderr goes to a log file in the
test's tmp dir, whose tail is shown when a step fails.
"""

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).resolve().parents[1] / "js"
PREFIX = "EDGEHS-JS "
STEP_TIMEOUT = 90.0  # seconds for one step of a node client (login and first sync, join, decrypt)


def js_ready() -> str | None:
    """Why the node clients cannot run here, or None when they can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (JS_DIR / "node_modules" / "matrix-js-sdk").is_dir():
        return "tests/js/node_modules is missing (run: npm ci --prefix tests/js)"
    return None


def require_js() -> None:
    reason = js_ready()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the JavaScript client tests")
    pytest.skip(reason)


class NodeClient:
    """``node tests/js/SCRIPT`` as a subprocess; its "EDGEHS-JS {json}" stdout lines are steps."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path
        self.lines: list[str] = []

    def log_tail(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-60:])

    async def step(self, name: str | None = None,
                   timeout: float = STEP_TIMEOUT) -> dict[str, Any]:
        """The next reported step, which must be ``name`` if one is given (an "error" step
        fails the test)."""
        assert self.proc.stdout is not None
        what = repr(name) if name is not None else f"the step after {self.lines[-1:]}"
        while True:
            try:
                raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            except TimeoutError:
                pytest.fail(f"node never reported {what}; stderr:\n{self.log_tail()}")
            if not raw:
                code = await self.proc.wait()
                pytest.fail(f"node exited ({code}) before {what}; stdout:\n"
                            + "\n".join(self.lines) + f"\nstderr:\n{self.log_tail()}")
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if not line.startswith(PREFIX):
                continue
            got = dict(json.loads(line[len(PREFIX):]))
            if got["step"] == "error":
                pytest.fail(f"node failed before {what}: {got['message']}\n{self.log_tail()}")
            if name is not None:
                assert got["step"] == name, f"expected step {name!r}, got {got}"
            return got


@contextlib.asynccontextmanager
async def node_script(tmp_path: Path, script: str, *args: str,
                      env: dict[str, str] | None = None) -> AsyncIterator[NodeClient]:
    log_path = tmp_path / f"{script}.stderr.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            "node", str(JS_DIR / script), *args, cwd=str(JS_DIR),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log,
            env={**os.environ, **(env or {})},
        )
    client = NodeClient(proc, log_path)
    try:
        yield client
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
