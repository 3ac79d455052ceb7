"""The device processes' memory (``python -m bench --devices``): resident memory (VmRSS) of
edgehs and of each device service (``python -m devices.midi``, ``.gpio``, ``.camera``) on the
simulated hardware ``python -m devices init`` sets up. edgehs only: Synapse has no device
services, so there is nothing to compare with.

Steps (each RSS is read ``SETTLE_S`` seconds after the step, so start-up allocations are done):
1. a fresh edgehs without registrations (``bench.edgehs.prepare``): its idle RSS;
2. ``python -m devices init`` for midi, gpio and camera (one owner user), the three
   registrations listed in edgehs.yaml, edgehs restarted: its idle RSS with them loaded;
3. the owner registered, each service started (until its "service ready" log line, i.e. its
   rooms exist and the owner is invited), the owner joined to every device room: each
   service's idle RSS, and edgehs's with the three services connected;
4. one call to the camera with aiortc as the caller (``m.call.invite`` sent through edgehs,
   ``m.call.answer`` read from /sync, ICE on 127.0.0.1), ``CALL_FRAMES`` video frames
   received: the camera service's RSS during the call; then ``m.call.hangup``, and its RSS
   once the call is gone.
RSS is summed over each process and its children, as in the main bench.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench import edgehs
from bench.client import Client, _seg
from bench.midi import READY_LINE, write_results
from bench.procs import Launch, ServerProcess, free_port
from bench.report import _fmt

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("midi", "gpio", "camera")
OWNER = "devbench"
SETTLE_S = 2.0
CALL_FRAMES = 30
CALL_TIMEOUT_S = 30.0
BEGIN = "<!-- bench:devices:begin (written by `python -m bench --devices`) -->"
END = "<!-- bench:devices:end -->"
LABELS = {
    "edgehs_bare": "edgehs idle, no registrations",
    "edgehs_regs": "edgehs idle, the three device registrations loaded",
    "edgehs_running": "edgehs idle, the three device services connected",
    "midi": "devices.midi idle (one simulated port: FIFO in, FIFO out)",
    "gpio": "devices.gpio idle (mock board: LED, button, motion sensor, CPU temperature)",
    "camera": "devices.camera idle (320x240 test pattern, no call)",
    "camera_call": f"devices.camera during one call (aiortc caller, {CALL_FRAMES} frames in)",
    "camera_after": f"devices.camera {SETTLE_S:.0f} s after the hangup",
}


def _setup_devices(root: Path, edgehs_config: Path, base_url: str) -> Path:
    """``python -m devices init`` for all three services; registrations into edgehs.yaml."""
    directory = root / "devices"
    result = subprocess.run(
        [sys.executable, "-m", "devices", "init", str(directory), "--server-name",
         edgehs.SERVER_NAME, "--homeserver", base_url, "--services", ",".join(SERVICES),
         "--owner", f"@{OWNER}:{edgehs.SERVER_NAME}", "--port-base", str(free_port())],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"devices init failed: {result.stdout}{result.stderr}")
    path = directory / "devices.yaml"
    raw = yaml.safe_load(path.read_text())
    registrations = [
        str((directory / raw[svc]["appservice"].get(
            "registration", f"appservices/edgehs_{svc}.yaml")).resolve())
        for svc in SERVICES]
    config = yaml.safe_load(edgehs_config.read_text())
    config["app_service_config_files"] = registrations
    edgehs_config.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def _settled_rss(proc: ServerProcess) -> float:
    await asyncio.sleep(SETTLE_S)
    return proc.rss_mb()


async def _wait_ready(proc: ServerProcess, timeout_s: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout_s
    while READY_LINE not in proc.launch.log_path.read_text(errors="replace"):
        if proc.proc is None or proc.proc.poll() is not None or time.perf_counter() > deadline:
            raise RuntimeError(f"{proc.launch.name} did not start:\n{proc.log_tail()}")
        await asyncio.sleep(0.05)


async def _join(owner: Client, alias: str, timeout_s: float = 30.0) -> str:
    """Join a device room once the service has invited the owner; its room id."""
    deadline = time.perf_counter() + timeout_s
    while True:
        status, body = await owner.request("POST", f"/_matrix/client/v3/join/{_seg(alias)}",
                                           body={}, expect=(200, 403, 404))
        if status == 200:
            return str(body["room_id"])
        if time.perf_counter() > deadline:
            raise RuntimeError(f"could not join {alias}: {status} {body}")
        await asyncio.sleep(0.1)


async def _call(owner: Client, room_id: str, camera: ServerProcess) -> float:
    """One call to the camera as a browser would place it; the camera's RSS during it."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamTrack

    from devices.camera.ice import restrict_host_addresses

    camera_user = f"@camera_front:{edgehs.SERVER_NAME}"
    only_room = {"room": {"rooms": [room_id], "timeline": {"limit": 50}}}
    _, first = await owner.request("GET", "/_matrix/client/v3/sync", params={"timeout": "0"})
    since = str(first["next_batch"])
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        pc.addTransceiver("video", direction="recvonly")
        with restrict_host_addresses(["127.0.0.1"]):
            await pc.setLocalDescription(await pc.createOffer())
        video: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video" and not video.done():
                video.set_result(track)

        base = {"call_id": "bench-call", "version": "1", "party_id": "bench"}
        await owner.request(
            "PUT", f"/_matrix/client/v3/rooms/{_seg(room_id)}/send/m.call.invite/bench-invite",
            body={**base, "lifetime": 60000, "invitee": camera_user,
                  "offer": {"type": "offer", "sdp": pc.localDescription.sdp}})
        deadline = time.perf_counter() + CALL_TIMEOUT_S
        answer: dict[str, Any] | None = None
        while answer is None:
            if time.perf_counter() > deadline:
                raise RuntimeError("the camera did not answer the call")
            resp = await owner.sync(since=since, timeout_ms=2000, sync_filter=only_room)
            since = str(resp["next_batch"])
            room = resp.get("rooms", {}).get("join", {}).get(room_id, {})
            answer = next((e["content"] for e in room.get("timeline", {}).get("events", [])
                           if e.get("type") == "m.call.answer"
                           and e.get("sender") == camera_user), None)
        await owner.request(
            "PUT", f"/_matrix/client/v3/rooms/{_seg(room_id)}/send/m.call.select_answer/"
                   "bench-select", body={**base, "selected_party_id": answer["party_id"]})
        await pc.setRemoteDescription(RTCSessionDescription(**answer["answer"]))
        track = await asyncio.wait_for(video, CALL_TIMEOUT_S)
        for _ in range(CALL_FRAMES):
            await asyncio.wait_for(track.recv(), CALL_TIMEOUT_S)
        rss = camera.rss_mb()
        await owner.request(
            "PUT", f"/_matrix/client/v3/rooms/{_seg(room_id)}/send/m.call.hangup/bench-hangup",
            body={**base, "reason": "user_hangup"})
        return rss
    finally:
        await pc.close()


async def measure(work: Path) -> dict[str, float]:
    root = work / "devices"
    launch = edgehs.prepare(root, free_port())
    assert launch.config_path is not None
    metrics: dict[str, float] = {}
    server = ServerProcess(launch)
    services: dict[str, ServerProcess] = {}
    try:
        await server.start(120)
        metrics["edgehs_bare"] = await _settled_rss(server)
        server.stop()
        config = _setup_devices(root, launch.config_path, launch.base_url)
        await server.start(120)
        metrics["edgehs_regs"] = await _settled_rss(server)
        async with aiohttp.ClientSession() as session:
            owner = Client(session, launch.base_url)
            await owner.register(OWNER, "devices-bench-pw")
            await owner.login(OWNER, "devices-bench-pw")
            rooms: dict[str, str] = {}
            for svc in SERVICES:
                proc = services[svc] = ServerProcess(Launch(
                    name=f"devices.{svc}",
                    argv=[sys.executable, "-m", f"devices.{svc}", "-c", str(config)],
                    cwd=ROOT, log_path=root / f"{svc}.log", base_url=launch.base_url))
                proc.spawn()
                await _wait_ready(proc)
            for svc, name in (("midi", "keys"), ("gpio", "board"), ("camera", "front")):
                rooms[svc] = await _join(owner, f"#{svc}_{name}:{edgehs.SERVER_NAME}")
            await asyncio.sleep(SETTLE_S)
            for svc, proc in services.items():
                metrics[svc] = proc.rss_mb()
            metrics["edgehs_running"] = server.rss_mb()
            metrics["camera_call"] = await _call(owner, rooms["camera"], services["camera"])
            metrics["camera_after"] = await _settled_rss(services["camera"])
    finally:
        for proc in services.values():
            proc.stop()
        server.stop()
    return metrics


def table(metrics: dict[str, float], command: str) -> str:
    rows = [
        "## Device processes: resident memory (edgehs only)",
        "",
        f"- date: {time.strftime('%Y-%m-%dT%H:%M:%S%z')}; command: `{command}`; "
        f"machine: nproc={os.cpu_count()}; python {sys.version.split()[0]}",
        f"- VmRSS of each process (children included), {SETTLE_S:.0f} s after the step; the "
        "services run on the simulated hardware of `python -m devices init` (see "
        "bench/devices.py for the steps).",
        "- There is no Synapse equivalent (Synapse has no device services).",
        "",
        "| process | RSS (MiB) |",
        "| --- | ---: |",
    ]
    rows += [f"| {label} | {_fmt(metrics.get(key))} |" for key, label in LABELS.items()]
    return "\n".join(rows)


def main(work: Path, write: bool, command: str) -> int:
    try:
        metrics = asyncio.run(measure(work))
    except Exception as exc:
        print(f"[bench] devices scenario failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    body = table(metrics, command)
    print(body)
    if write:
        write_results(Path(__file__).resolve().parent / "RESULTS.md", body, BEGIN, END)
    return 0
