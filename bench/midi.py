"""The MIDI device scenario (``python -m bench --midi``): MIDI bytes in -> event in a client's
/sync, with edgehs and ``python -m devices.midi`` as separate processes. edgehs only: Synapse
has no MIDI device service, so there is nothing to compare with.

Setup (untimed): a fresh edgehs (``bench.edgehs.prepare``), ``python -m devices init`` for the
midi service with two simulated ports whose input is a FIFO: ``keys`` with the default batch
window (20 ms) and ``keys0`` with none (one event per message); the registration listed in
edgehs.yaml; a user (an owner in devices.yaml) registered before the service starts, then
joined to both rooms. One long-poll /sync loop (``timeout=30000``, a filter for the two rooms'
``org.edgehs.midi`` events) stamps each message's arrival with the clock the writer uses.

Timed:
- idle latency: single note-ons written one at a time into each FIFO; per note, the write ->
  the /sync response that carries it. p50 / p99 per port.
- latency under load: notes paced at ``LOAD_RATE``/s (a 31250-baud DIN MIDI cable carries at
  most ~1,040 three-byte messages/s) for ``load_s`` seconds into ``keys``; p50 / p99.
- burst throughput: ``burst`` notes written at once into ``keys``; notes/s from the first byte
  written to the last note seen in /sync. Every message must arrive, in order (else a note).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench import edgehs
from bench.client import Client, _seg
from bench.procs import Launch, ServerProcess, free_port
from bench.report import _fmt
from bench.stats import ms, percentile

ROOT = Path(__file__).resolve().parent.parent
MIDI = "org.edgehs.midi"
OWNER = "midibench"
READY_LINE = "service ready (application service"
LOAD_RATE = 1000
BEGIN = "<!-- bench:midi:begin (written by `python -m bench --midi`) -->"
END = "<!-- bench:midi:end -->"


@dataclass(frozen=True)
class MidiParams:
    idle_notes: int = 200
    load_s: float = 5.0
    burst: int = 20_000


FULL = MidiParams()
QUICK = MidiParams(idle_notes=50, load_s=2.0, burst=5_000)
LABELS = {
    "idle_p50_w20": "MIDI in -> /sync latency p50, idle, batch window 20 ms (default)",
    "idle_p99_w20": "MIDI in -> /sync latency p99, idle, batch window 20 ms (default)",
    "idle_p50_w0": "MIDI in -> /sync latency p50, idle, batch window 0 (event per message)",
    "idle_p99_w0": "MIDI in -> /sync latency p99, idle, batch window 0 (event per message)",
    "direct_p50": "baseline: the client PUTs the same event itself -> /sync, p50",
    "direct_p99": "baseline: the client PUTs the same event itself -> /sync, p99",
    "load_p50": f"MIDI in -> /sync latency p50 at {LOAD_RATE} notes/s (window 20 ms)",
    "load_p99": f"MIDI in -> /sync latency p99 at {LOAD_RATE} notes/s (window 20 ms)",
    "burst_rate": "MIDI in -> /sync sustained throughput, burst (window 20 ms)",
    "burst_events": "events the burst became (window 20 ms, max_batch 500)",
}
UNITS = {"burst_rate": "notes/s", "burst_events": "events"}


@dataclass
class Follower:
    """The client's /sync loop: per room, (arrival time, message content) in order."""

    client: Client
    rooms: list[str]
    since: str | None = None
    arrivals: dict[str, list[tuple[float, dict[str, Any]]]] = field(default_factory=dict)
    limited: int = 0
    events: dict[str, int] = field(default_factory=dict)  # MIDI events per room
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def sync_filter(self) -> dict[str, Any]:
        return {"presence": {"types": []}, "account_data": {"types": []},
                "room": {"rooms": self.rooms, "state": {"types": []},
                         "ephemeral": {"types": []}, "account_data": {"types": []},
                         "timeline": {"types": [MIDI], "limit": 1000}}}

    async def run(self) -> None:
        while True:
            resp = await self.client.sync(since=self.since, timeout_ms=30_000,
                                          sync_filter=self.sync_filter())
            now = time.perf_counter()
            for room_id, room in (resp.get("rooms", {}).get("join", {})).items():
                timeline = room.get("timeline", {})
                if timeline.get("limited") and self.since is not None:
                    self.limited += 1
                for event in timeline.get("events", []):
                    if event.get("type") == MIDI and self.since is not None:
                        self.events[room_id] = self.events.get(room_id, 0) + 1
                        content = event.get("content", {})
                        items = content.get("batch", [content])
                        self.arrivals.setdefault(room_id, []).extend((now, c) for c in items)
            self.since = str(resp["next_batch"])
            self.changed.set()

    async def wait(self, room_id: str, count: int, timeout_s: float = 120.0) -> None:
        deadline = time.perf_counter() + timeout_s
        while len(self.arrivals.get(room_id, [])) < count:
            if time.perf_counter() > deadline:
                got = len(self.arrivals.get(room_id, []))
                raise RuntimeError(f"{got}/{count} MIDI messages reached /sync in {room_id}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(),
                                       max(0.0, deadline - time.perf_counter()))


def _note(i: int) -> bytes:
    """The i-th note: a unique (channel, note, velocity) for i < 260,096."""
    return bytes([0x90 | (i % 16), (i // 16) % 128, 1 + (i // 2048) % 127])


def _same(content: dict[str, Any], i: int) -> bool:
    raw = _note(i)
    return (content.get("channel"), content.get("note"), content.get("velocity")) == (
        (raw[0] & 0x0F) + 1, raw[1], raw[2])


def _setup_devices(root: Path, edgehs_config: Path, base_url: str) -> Path:
    directory = root / "devices"
    done = subprocess.run(
        [sys.executable, "-m", "devices", "init", str(directory), "--server-name",
         edgehs.SERVER_NAME, "--homeserver", base_url, "--services", "midi", "--owner",
         f"@{OWNER}:{edgehs.SERVER_NAME}", "--port-base", str(free_port())],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"devices init failed: {done.stdout}{done.stderr}")
    path = directory / "devices.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["midi"]["ports"] = [
        {"name": "keys", "input": {"kind": "fifo", "path": "keys.fifo"},
         "output": {"kind": "none"}, "batch_window_ms": 20},
        {"name": "keys0", "input": {"kind": "fifo", "path": "keys0.fifo"},
         "output": {"kind": "none"}, "batch_window_ms": 0},
    ]
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    registration = directory / raw["midi"]["appservice"].get(
        "registration", "appservices/edgehs_midi.yaml")
    config = yaml.safe_load(edgehs_config.read_text())
    config["app_service_config_files"] = [str(registration.resolve())]
    edgehs_config.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def _wait_log(proc: ServerProcess, line: str, timeout_s: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout_s
    while line not in proc.launch.log_path.read_text(errors="replace"):
        if proc.proc is None or proc.proc.poll() is not None or time.perf_counter() > deadline:
            raise RuntimeError(f"devices.midi did not start:\n{proc.log_tail()}")
        await asyncio.sleep(0.05)


async def _idle(follower: Follower, room_id: str, fd: int, count: int) -> list[float]:
    base = len(follower.arrivals.get(room_id, []))
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        os.write(fd, _note(i))
        await follower.wait(room_id, base + i + 1)
        arrived, content = follower.arrivals[room_id][base + i]
        if not _same(content, i):
            raise RuntimeError(f"note {i} arrived as {content}")
        latencies.append(arrived - started)
    return latencies


async def _direct(follower: Follower, owner: Client, room_id: str, count: int) -> list[float]:
    """The baseline: the client PUTs each note event itself (no device service involved)."""
    base = len(follower.arrivals.get(room_id, []))
    latencies = []
    for i in range(count):
        raw = _note(i)
        content = {"kind": "note", "state": "on", "note": raw[1], "velocity": raw[2],
                   "channel": (raw[0] & 0x0F) + 1, "midi_ts": time.time_ns() // 1_000_000}
        started = time.perf_counter()
        await owner.request("PUT", f"/_matrix/client/v3/rooms/{_seg(room_id)}/send/{MIDI}/"
                                   f"bench{i}", body=content)
        await follower.wait(room_id, base + i + 1)
        latencies.append(follower.arrivals[room_id][base + i][0] - started)
    return latencies


async def _load(follower: Follower, room_id: str, fd: int, seconds: float) -> list[float]:
    base = len(follower.arrivals.get(room_id, []))
    per_tick, tick = 10, 10 / LOAD_RATE
    total = int(seconds * LOAD_RATE) // per_tick * per_tick
    written: list[float] = []
    start = time.perf_counter()
    for chunk in range(total // per_tick):
        delay = start + chunk * tick - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        os.write(fd, b"".join(_note(chunk * per_tick + k) for k in range(per_tick)))
        written.extend([time.perf_counter()] * per_tick)
    await follower.wait(room_id, base + total)
    got = follower.arrivals[room_id][base:base + total]
    if not all(_same(c, i) for i, (_, c) in enumerate(got)):
        raise RuntimeError("notes under load arrived out of order or changed")
    return [arrived - w for (arrived, _), w in zip(got, written, strict=True)]


async def _burst(follower: Follower, room_id: str, fd: int, count: int) -> float:
    base = len(follower.arrivals.get(room_id, []))
    data = b"".join(_note(i) for i in range(count))
    started = time.perf_counter()
    await asyncio.to_thread(os.write, fd, data)
    await follower.wait(room_id, base + count)
    got = follower.arrivals[room_id][base:base + count]
    if not all(_same(c, i) for i, (_, c) in enumerate(got)):
        raise RuntimeError("burst notes arrived out of order or changed")
    return count / (got[-1][0] - started)


async def measure(work: Path, params: MidiParams) -> tuple[dict[str, float], list[str]]:
    root = work / "midi"
    launch = edgehs.prepare(root, free_port())
    assert launch.config_path is not None
    config = _setup_devices(root, launch.config_path, launch.base_url)
    server = ServerProcess(launch)
    service = ServerProcess(Launch(
        name="devices.midi", argv=[sys.executable, "-m", "devices.midi", "-c", str(config)],
        cwd=ROOT, log_path=root / "midi.log", base_url=launch.base_url))
    metrics: dict[str, float] = {}
    notes: list[str] = []
    fds: list[int] = []
    try:
        await server.start(120)
        async with aiohttp.ClientSession() as session:
            owner = Client(session, launch.base_url)
            await owner.register(OWNER, "midi-bench-pw")
            await owner.login(OWNER, "midi-bench-pw")
            service.spawn()
            await _wait_log(service, READY_LINE)
            rooms = {}
            for port in ("keys", "keys0"):
                _, resp = await owner.request(
                    "POST", f"/_matrix/client/v3/join/{_seg(f'#midi_{port}:bench.local')}",
                    body={})
                rooms[port] = str(resp["room_id"])
                fds.append(os.open(config.parent / f"{port}.fifo", os.O_WRONLY))
            rooms["direct"] = await owner.create_room("midi baseline")
            follower = Follower(owner, list(rooms.values()))
            task = asyncio.create_task(follower.run())
            try:
                while follower.since is None:
                    await asyncio.sleep(0.01)
                for port, fd, key in (("keys", fds[0], "w20"), ("keys0", fds[1], "w0")):
                    lat = await _idle(follower, rooms[port], fd, params.idle_notes)
                    metrics[f"idle_p50_{key}"] = ms(percentile(lat, 50))
                    metrics[f"idle_p99_{key}"] = ms(percentile(lat, 99))
                lat = await _direct(follower, owner, rooms["direct"], params.idle_notes)
                metrics["direct_p50"] = ms(percentile(lat, 50))
                metrics["direct_p99"] = ms(percentile(lat, 99))
                lat = await _load(follower, rooms["keys"], fds[0], params.load_s)
                metrics["load_p50"] = ms(percentile(lat, 50))
                metrics["load_p99"] = ms(percentile(lat, 99))
                events_before = follower.events.get(rooms["keys"], 0)
                metrics["burst_rate"] = await _burst(follower, rooms["keys"], fds[0],
                                                     params.burst)
                metrics["burst_events"] = float(follower.events[rooms["keys"]] - events_before)
            finally:
                task.cancel()
            if follower.limited:
                notes.append(f"/sync said `limited` {follower.limited} times")
    finally:
        for fd in fds:
            os.close(fd)
        service.stop()
        server.stop()
    return metrics, notes


def table(metrics: dict[str, float], params: MidiParams, command: str) -> str:
    rows = [
        "## MIDI device service (edgehs only)",
        "",
        f"- date: {time.strftime('%Y-%m-%dT%H:%M:%S%z')}; command: `{command}`; "
        f"machine: nproc={os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at the end "
        f"(client, edgehs and the MIDI service share the CPUs)",
        f"- sizes: {params.idle_notes} single notes per port (idle), {LOAD_RATE} notes/s for "
        f"{params.load_s:.0f} s (load), a burst of {params.burst:,} notes",
        "- There is no Synapse equivalent: Synapse has no MIDI device service, so the Synapse "
        "column is n/a.",
        "",
        "| metric | edgehs | Synapse |",
        "| --- | ---: | ---: |",
    ]
    for key, label in LABELS.items():
        rows.append(f"| {label} ({UNITS.get(key, 'ms')}) | "
                    f"{_fmt(metrics.get(key))} | n/a |")
    return "\n".join(rows)


def write_results(path: Path, body: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace (or append) the section between ``begin`` and ``end`` (the MIDI section by
    default) of RESULTS.md; the rest is kept."""
    block = f"{begin}\n{body}\n{end}"
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, _, tail = text.partition(begin)
        text = head + block + tail.partition(end)[2]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main(work: Path, quick: bool, write: bool, command: str) -> int:
    params = QUICK if quick else FULL
    try:
        metrics, notes = asyncio.run(measure(work, params))
    except Exception as exc:
        print(f"[bench] MIDI scenario failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    body = table(metrics, params, command)
    if notes:
        body += "\n\nNotes:\n\n" + "\n".join(f"- {n}" for n in notes)
    print(body)
    if write:
        write_results(Path(__file__).resolve().parent / "RESULTS.md", body)
    return 0
