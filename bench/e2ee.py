"""The E2EE scenario (``python -m bench --e2ee``): /keys/query and to-device
latency, edgehs and Synapse one after the other on fresh data dirs.

Setup (untimed): ``users`` users register and log in (one device each) and upload device keys
signed with their device's ed25519 key (signedjson) plus 5 signed one-time keys; user 0
creates a public room, all others join it.

Timed:
- ``/keys/query``: user 0 asks for the device keys of every member of the room (all
  ``users`` users, ``"device_keys": {user: []}``), ``query_samples`` times one after another;
  p50 / p95. Sanity: every member's device must be in every answer (else a note).
- to-device: user 1 long-polls ``GET /sync?since=..&timeout=30000`` (a filter that leaves out
  rooms, presence and account data); 200 ms later user 0 sends ``PUT
  /sendToDevice/org.edgehs.bench.ping/{txnId}`` to user 1's device; time from the send's start to
  the long-poll answer carrying the message (matched by a nonce). A /sync that wakes for
  something else is followed by the next one until the message comes. ``to_device_samples``
  samples; p50 / p99.

The table is written to its own marked section of RESULTS.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json

from bench.client import Client, JsonDict
from bench.model import Metric
from bench.procs import ServerProcess, ServerStartError, free_port
from bench.report import _fmt, _ratio
from bench.runner import Target, log
from bench.stats import ms, percentile

API = "/_matrix/client/v3"
PING = "org.edgehs.bench.ping"
PARK_S = 0.2
LONG_POLL_MS = 30_000
BEGIN = "<!-- bench:e2ee:begin (written by `python -m bench --e2ee`) -->"
END = "<!-- bench:e2ee:end -->"
# /sync without rooms, presence or account data: the to-device section is what is awaited.
SYNC_FILTER: JsonDict = {"room": {"rooms": []}, "presence": {"types": []},
                         "account_data": {"types": []}}


@dataclass(frozen=True)
class E2eeParams:
    users: int = 20
    query_samples: int = 100
    to_device_samples: int = 50
    startup_timeout_s: float = 120.0


FULL = E2eeParams()
QUICK = E2eeParams(users=8, query_samples=20, to_device_samples=10)

METRICS = (
    Metric("query_p50", "/keys/query for all room members, p50", "ms"),
    Metric("query_p95", "/keys/query for all room members, p95", "ms"),
    Metric("td_p50", "to-device send -> recipient's /sync, p50", "ms"),
    Metric("td_p99", "to-device send -> recipient's /sync, p99", "ms"),
)


@dataclass
class E2eeResult:
    name: str
    version: str = "?"
    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class Member:
    client: Client
    device_id: str


def _device_keys(user_id: str, device_id: str) -> tuple[JsonDict, JsonDict]:
    """Signed device keys and 5 signed one-time keys of a fresh ed25519 key."""
    key = generate_signing_key(device_id)
    public = encode_verify_key_base64(get_verify_key(key))
    keys = sign_json({
        "user_id": user_id, "device_id": device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {f"ed25519:{device_id}": public, f"curve25519:{device_id}": public},
    }, user_id, key)
    otks = {f"signed_curve25519:{device_id}{i}":
            sign_json(copy.deepcopy({"key": f"{public[:20]}{i}"}), user_id, key)
            for i in range(5)}
    return dict(keys), otks


async def setup(session: aiohttp.ClientSession, base_url: str, params: E2eeParams
                ) -> tuple[list[Member], str]:
    tag = uuid.uuid4().hex[:6]
    members = []
    for i in range(max(params.users, 2)):
        client = Client(session, base_url)
        name, password = f"e2ee{i}_{tag}", f"e2ee-pw-{i}-{tag}"
        await client.register(name, password)
        await client.login(name, password)
        _, whoami = await client.request("GET", f"{API}/account/whoami")
        device_id = str(whoami["device_id"])
        assert client.user_id is not None
        keys, otks = _device_keys(client.user_id, device_id)
        await client.request("POST", f"{API}/keys/upload",
                             body={"device_keys": keys, "one_time_keys": otks})
        members.append(Member(client, device_id))
    room_id = await members[0].client.create_room("e2ee", preset="public_chat")
    for member in members[1:]:
        await member.client.join(room_id)
    return members, room_id


async def keys_query(members: list[Member], params: E2eeParams, result: E2eeResult) -> None:
    asker = members[0].client
    wanted = {str(m.client.user_id): [] for m in members}
    latencies, missing = [], 0
    for _ in range(params.query_samples):
        started = time.perf_counter()
        _, resp = await asker.request("POST", f"{API}/keys/query", body={"device_keys": wanted})
        latencies.append(time.perf_counter() - started)
        found = resp.get("device_keys", {})
        missing += sum(1 for m in members
                       if m.device_id not in found.get(str(m.client.user_id), {}))
    if missing:
        result.notes.append(f"/keys/query: {missing} member devices missing over "
                            f"{params.query_samples} answers")
    result.metrics["query_p50"] = ms(percentile(latencies, 50))
    result.metrics["query_p95"] = ms(percentile(latencies, 95))


def _carries(sync: JsonDict, nonce: str) -> bool:
    events = sync.get("to_device", {}).get("events", [])
    return any(e.get("type") == PING and e.get("content", {}).get("nonce") == nonce
               for e in events)


async def to_device(members: list[Member], params: E2eeParams, result: E2eeResult) -> None:
    sender, recipient = members[0], members[1]
    rx = recipient.client
    since = str((await rx.sync(sync_filter=SYNC_FILTER))["next_batch"])
    # Drain whatever is pending (device list changes of the setup) before timing.
    for _ in range(10):
        resp = await rx.sync(since=since, sync_filter=SYNC_FILTER)
        if str(resp["next_batch"]) == since:
            break
        since = str(resp["next_batch"])
    latencies = []
    for i in range(params.to_device_samples):
        nonce = f"{i}-{uuid.uuid4().hex[:8]}"
        poll = asyncio.create_task(rx.sync(since=since, timeout_ms=LONG_POLL_MS,
                                           sync_filter=SYNC_FILTER))
        await asyncio.sleep(PARK_S)
        started = time.perf_counter()
        await sender.client.request(
            "PUT", f"{API}/sendToDevice/{PING}/{nonce}",
            body={"messages": {str(rx.user_id): {recipient.device_id: {"nonce": nonce}}}})
        try:
            for _ in range(20):
                resp = await poll
                arrived = time.perf_counter()
                since = str(resp["next_batch"])
                if _carries(resp, nonce):
                    latencies.append(arrived - started)
                    break
                poll = asyncio.create_task(rx.sync(since=since, timeout_ms=LONG_POLL_MS,
                                                   sync_filter=SYNC_FILTER))
            else:
                raise RuntimeError(f"to-device message {nonce} never reached /sync")
        finally:
            if not poll.done():
                poll.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await poll
    result.metrics["td_p50"] = ms(percentile(latencies, 50))
    result.metrics["td_p99"] = ms(percentile(latencies, 99))


async def measure_server(target: Target, work: Path, params: E2eeParams) -> E2eeResult:
    result = E2eeResult(target.name)
    try:
        result.version = target.version()
        launch = target.prepare(work / f"e2ee-{target.slug}", free_port())
    except Exception as exc:
        result.error = f"could not prepare {target.name}: {exc}"
        return result
    server = ServerProcess(launch)
    try:
        log(f"{target.name}: starting for the E2EE scenario")
        try:
            await server.start(params.startup_timeout_s)
        except ServerStartError as exc:
            result.error = f"{target.name} did not start: {exc}"
            return result
        connector = aiohttp.TCPConnector(limit=16)
        async with aiohttp.ClientSession(connector=connector) as session:
            try:
                members, _room = await asyncio.wait_for(
                    setup(session, launch.base_url, params), 300)
            except Exception as exc:
                result.error = f"setup failed: {type(exc).__name__}: {exc}"
                return result
            for name, step in (("keys/query", keys_query), ("to-device", to_device)):
                log(f"{target.name}: {name}")
                try:
                    await asyncio.wait_for(step(members, params, result), 600)
                except Exception as exc:
                    result.notes.append(f"{name}: {type(exc).__name__}: {exc}")
    finally:
        server.stop()
    return result


def section(command: str, params: E2eeParams, results: list[E2eeResult]) -> str:
    by_name = {r.name: r for r in results}
    ours, theirs = by_name.get("edgehs"), by_name.get("Synapse")
    rows = ["| metric | edgehs | Synapse | ratio edgehs/Synapse |",
            "| --- | ---: | ---: | --- |"]
    for metric in METRICS:
        a = ours.metrics.get(metric.key) if ours else None
        b = theirs.metrics.get(metric.key) if theirs else None
        rows.append(f"| {metric.label} ({metric.unit}) | {_fmt(a)} | {_fmt(b)} "
                    f"| {_ratio(metric, a, b)} |")
    versions = ", ".join(f"{r.name} {r.version}" for r in results)
    notes = [f"- **{r.name} not measured**: {r.error}" for r in results if r.error]
    notes += [f"- {r.name}: {n}" for r in results for n in r.notes]
    parts = [
        "## End-to-end encryption: /keys/query and to-device",
        f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}; command: "
        f"`{command}`; machine: nproc={os.cpu_count()}, load average "
        f"{os.getloadavg()[0]:.1f} at the end (other work shares the CPUs); versions: "
        f"{versions}\n"
        f"- sizes: {params.users} users with uploaded device keys in one room; /keys/query of "
        f"all {params.users} members x {params.query_samples} (one after another); "
        f"{params.to_device_samples} to-device messages, each into a parked long-poll /sync",
        "\n".join(rows),
    ]
    if notes:
        parts.append("Notes:\n\n" + "\n".join(notes))
    return "\n\n".join(parts)


def write_section(path: Path, body: str) -> None:
    """Replace (or append) this scenario's marked section; the rest of the file is kept."""
    block = f"{BEGIN}\n{body}\n{END}"
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, _, tail = text.partition(BEGIN)
        _, _, tail = tail.partition(END)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main(targets: list[Target], work: Path, quick: bool, write: bool, command: str,
         results_path: Path) -> int:
    params = QUICK if quick else FULL

    async def run() -> list[E2eeResult]:
        return [await measure_server(t, work, params) for t in targets]

    try:
        results = asyncio.run(run())
    except KeyboardInterrupt:
        log("interrupted; servers stopped")
        return 130
    body = section(command, params, results)
    print(body)
    if write:
        write_section(results_path, body)
        log(f"wrote the E2EE section of {results_path}")
    return 0 if all(r.error is None for r in results) else 1
