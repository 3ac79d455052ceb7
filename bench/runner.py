"""Measure one server: prepare, start (timed), load it with the scenarios, restart (timed), stop.

Every step has a time budget; a failing scenario becomes a note and the others still run.
The server is always stopped, whatever happens.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import aiohttp

from bench import appservice, scenarios
from bench.model import Params, ServerResult
from bench.procs import Launch, ServerProcess, ServerStartError, free_port

T = TypeVar("T")

# Seconds to let a freshly started server settle before reading its idle RSS.
SETTLE_S = 2.0


@dataclass(frozen=True)
class Target:
    """A server to benchmark: ``prepare`` writes a fresh config under a dir for a port."""

    name: str
    slug: str
    version: Callable[[], str]
    prepare: Callable[[Path, int], Launch]


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


async def _step(
    result: ServerResult, name: str, make: Callable[[], Awaitable[T]], budget_s: float
) -> T | None:
    """Run one step within ``budget_s``; a failure is noted on ``result`` and gives None."""
    log(f"{result.name}: {name}")
    try:
        return await asyncio.wait_for(make(), budget_s)
    except TimeoutError:
        result.notes.append(f"{name}: timed out after {budget_s:.0f}s")
    except Exception as exc:
        result.notes.append(f"{name}: {type(exc).__name__}: {exc}")
    return None


async def _load(server: ServerProcess, params: Params, result: ServerResult) -> None:
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        base_url = server.launch.base_url
        world = await _step(
            result, "setup (register, login, rooms)",
            lambda: scenarios.setup(session, base_url, params), 300,
        )  # fmt: skip
        if world is None:
            return
        cpu_before = server.cpu_seconds()
        steps: list[tuple[str, Callable[[], Awaitable[None]], float]] = [
            ("sequential send", lambda: scenarios.sequential_send(world, params, result), 300),
            ("concurrent send", lambda: scenarios.concurrent_send(world, params, result), 300),
            ("fill extra rooms", lambda: scenarios.fill_extra_rooms(world, params), 300),
            ("initial sync", lambda: scenarios.initial_sync(world, params, result), 180),
            ("sync wake-up", lambda: scenarios.sync_wakeup(world, params, result), 600),
            ("pagination", lambda: scenarios.paginate(world, params, result), 180),
        ]
        for name, make, budget in steps:
            await _step(result, name, make, budget)
        result.metrics["cpu_load_s"] = server.cpu_seconds() - cpu_before


async def run_server(target: Target, work: Path, params: Params) -> ServerResult:
    """Everything for one server, from a wiped data dir to a stopped process."""
    result = ServerResult(name=target.name)
    try:
        result.version = target.version()
        launch = target.prepare(work / target.slug, free_port())
    except Exception as exc:
        result.error = f"could not prepare {target.name}: {exc}"
        log(result.error)
        return result
    server = ServerProcess(launch)
    try:
        log(f"{target.name}: starting ({' '.join(launch.argv)})")
        try:
            result.metrics["startup_ms"] = await server.start(params.startup_timeout_s)
        except ServerStartError as exc:
            result.error = f"{target.name} did not start: {exc}"
            log(result.error)
            return result
        await asyncio.sleep(SETTLE_S)
        result.metrics["rss_idle_mb"] = server.rss_mb()
        await _load(server, params, result)
        if server.proc is not None and server.proc.poll() is not None:
            result.notes.append(
                f"{target.name} exited during the load (code {server.proc.returncode}):\n"
                f"{server.log_tail()}"
            )
            return result
        result.metrics["rss_load_mb"] = server.rss_mb()
        result.metrics["rss_peak_mb"] = server.peak_rss_mb()
        server.stop()
        log(f"{target.name}: restarting on the same data")
        try:
            result.metrics["restart_ms"] = await server.start(params.startup_timeout_s)
        except ServerStartError as exc:
            result.notes.append(f"restart failed: {exc}")
        else:
            await _step(
                result, "appservice delivery",
                lambda: appservice.measure(server, params, result), 600,
            )  # fmt: skip
    finally:
        server.stop()
    return result
