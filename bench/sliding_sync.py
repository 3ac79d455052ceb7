"""Simplified sliding sync (MSC4186): edgehs and Synapse side by side, the same requests.

``python -m bench --sliding-sync [--quick] [--only edgehs|synapse] [--no-write]``

Per server, on a fresh data dir: two users; "main" creates ``rooms`` rooms with ``messages``
messages each and the second user joins the first room (untimed). Then:

- initial sliding sync: a new connection (no ``pos``) with Element X's room list request (one
  list, ranges [[0, rooms-1]], ``timeline_limit`` 1, the room summary's ``required_state``);
  median of ``samples`` requests, each on a fresh ``conn_id``;
- wake-up: main long-polls with the pos of its last response (``timeout`` 30 s); 200 ms later
  the second user sends into the first room; the time from the send's start to the long-poll
  returning that event, p50 / p95 over ``wake_samples``.

Synapse 1.163 serves the endpoint by default (``experimental_features.msc3575_enabled``
defaults to true). Written to its own marked section of RESULTS.md.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench import edgehs, synapse
from bench.client import Client, JsonDict
from bench.midi import write_results
from bench.procs import ServerProcess, free_port
from bench.stats import median, ms, percentile

SS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
BEGIN = "<!-- bench:sliding-sync:begin (written by `python -m bench --sliding-sync`) -->"
END = "<!-- bench:sliding-sync:end -->"
LONG_POLL_MS = 30_000
PARK_S = 0.2
REQUIRED_STATE = [
    ["m.room.encryption", ""], ["m.room.member", "$LAZY"], ["m.room.member", "$ME"],
    ["m.room.name", ""], ["m.room.canonical_alias", ""], ["m.room.power_levels", ""],
    ["m.room.join_rules", ""], ["m.room.tombstone", ""], ["m.room.create", ""],
    ["m.room.history_visibility", ""], ["m.room.topic", ""], ["m.room.avatar", ""],
]
LABELS = {
    "initial_ms": "initial sliding sync, new connection (median)",
    "wake_p50": "sliding sync wake-up latency p50",
    "wake_p95": "sliding sync wake-up latency p95",
}


@dataclass(frozen=True)
class SlidingParams:
    rooms: int = 20
    messages: int = 50
    samples: int = 5
    wake_samples: int = 30


FULL = SlidingParams()
QUICK = SlidingParams(messages=10, samples=3, wake_samples=8)


def body(params: SlidingParams, conn_id: str) -> JsonDict:
    return {"conn_id": conn_id, "lists": {"all": {
        "ranges": [[0, params.rooms - 1]], "timeline_limit": 1,
        "required_state": REQUIRED_STATE}}}


async def sliding(client: Client, req: JsonDict, pos: str | None = None,
                  timeout_ms: int = 0) -> JsonDict:
    query = {"timeout": str(timeout_ms), **({"pos": pos} if pos else {})}
    _, resp = await client.request("POST", SS, body=req, params=query,
                                   timeout_s=timeout_ms / 1000 + 30)
    return resp


async def _poll_until(client: Client, req: JsonDict, pos: str, marker: str
                      ) -> tuple[float, str]:
    for _ in range(10):
        resp = await sliding(client, req, pos, LONG_POLL_MS)
        arrived = time.perf_counter()
        pos = str(resp["pos"])
        for room in resp.get("rooms", {}).values():
            if any(e.get("content", {}).get("body") == marker for e in room.get("timeline", [])):
                return arrived, pos
    raise RuntimeError(f"{marker!r} never came down sliding sync after 10 long-polls")


async def scenario(base_url: str, params: SlidingParams) -> tuple[dict[str, float], list[str]]:
    metrics: dict[str, float] = {}
    notes: list[str] = []
    tag = uuid.uuid4().hex[:6]
    async with aiohttp.ClientSession() as session:
        main, other = Client(session, base_url), Client(session, base_url)
        for i, c in enumerate((main, other)):
            await c.register(f"ss{i}_{tag}", f"ss-bench-pw-{i}")
            await c.login(f"ss{i}_{tag}", f"ss-bench-pw-{i}")
        rooms = []
        for r in range(params.rooms):
            room_id = await main.create_room(f"ss room {r}", preset="public_chat")
            rooms.append(room_id)
            for i in range(params.messages):
                await main.send_text(room_id, f"room {r} message {i}")
        await other.join(rooms[0])
        samples, resp = [], {}
        for i in range(params.samples):
            started = time.perf_counter()
            resp = await sliding(main, body(params, f"bench-{i}"))
            samples.append(time.perf_counter() - started)
        metrics["initial_ms"] = ms(median(samples))
        got = resp.get("rooms", {})
        if len(got) != params.rooms or any(len(r.get("timeline", [])) != 1
                                           for r in got.values()):
            notes.append(f"initial response had {len(got)} rooms (expected {params.rooms}), "
                         "or timelines not of 1 event")
        req = body(params, f"bench-{params.samples - 1}")
        pos = str(resp["pos"])
        waits = []
        for i in range(params.wake_samples):
            marker = f"ss wake {i} {uuid.uuid4().hex[:8]}"
            poll = asyncio.create_task(_poll_until(main, req, pos, marker))
            await asyncio.sleep(PARK_S)
            if poll.done():
                poll.result()
            started = time.perf_counter()
            try:
                await other.send_text(rooms[0], marker)
                arrived, pos = await poll
            finally:
                poll.cancel()
            waits.append(arrived - started)
        metrics["wake_p50"] = ms(percentile(waits, 50))
        metrics["wake_p95"] = ms(percentile(waits, 95))
    return metrics, notes


async def measure(work: Path, name: str, params: SlidingParams
                  ) -> tuple[str, dict[str, float], list[str]]:
    root = work / f"sliding-{name}"
    if name == "edgehs":
        version, launch = edgehs.version(), edgehs.prepare(root, free_port())
    else:
        venv = work / "synapse-venv"
        version = synapse.ensure_venv(venv, work / "synapse-install.log")
        launch = synapse.prepare(root, free_port(), venv)
    server = ServerProcess(launch)
    try:
        await server.start(120)
        metrics, notes = await scenario(launch.base_url, params)
    finally:
        server.stop()
    return version, metrics, notes


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.3g}" if value < 100 else f"{value:,.0f}"


def table(results: dict[str, tuple[str, dict[str, float], list[str]]],
          params: SlidingParams, command: str) -> str:
    ours = results.get("edgehs", ("?", {}, []))
    theirs = results.get("synapse", ("?", {}, []))
    rows = [
        "## Simplified sliding sync (MSC4186)",
        "",
        f"- date: {time.strftime('%Y-%m-%dT%H:%M:%S%z')}; command: `{command}`; "
        f"machine: nproc={os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at the end "
        f"(other work shares the CPUs); versions: edgehs {ours[0]}, Synapse {theirs[0]}",
        "- both servers measured one after the other, each on a fresh data dir; Synapse with "
        "the bench's config (bench/synapse.py), sliding sync on by its default",
        f"- sizes: {params.rooms} rooms of {params.messages} messages; one list over all of "
        f"them, timeline_limit 1, Element X's room-summary required_state; median of "
        f"{params.samples} initial requests; {params.wake_samples} wake-up samples",
        "",
        "| metric | edgehs | Synapse | ratio edgehs/Synapse |",
        "| --- | ---: | ---: | --- |",
    ]
    for key, label in LABELS.items():
        a, b = ours[1].get(key), theirs[1].get(key)
        ratio = f"{a / b:.2f}x ({'better' if a < b else 'worse'})" if a and b else "n/a"
        rows.append(f"| {label} (ms) | {_fmt(a)} | {_fmt(b)} | {ratio} |")
    for name, (_v, _m, notes) in results.items():
        rows += [f"- note ({name}): {n}" for n in notes]
    return "\n".join(rows)


def main(work: Path, quick: bool, write: bool, command: str, only: str | None) -> int:
    params = QUICK if quick else FULL
    results: dict[str, tuple[str, dict[str, float], list[str]]] = {}
    code = 0
    for name in [only] if only else ["edgehs", "synapse"]:
        try:
            results[name] = asyncio.run(measure(work, name, params))
        except Exception as exc:
            print(f"[bench] sliding sync on {name} failed: {type(exc).__name__}: {exc}",
                  file=sys.stderr)
            results[name] = ("?", {}, [f"failed: {type(exc).__name__}: {exc}"])
            code = 1
    text = table(results, params, command)
    print(text)
    if write:
        write_results(Path(__file__).resolve().parent / "RESULTS.md", text, BEGIN, END)
    return code
