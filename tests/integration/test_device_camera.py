"""The camera service end to end: a real edgehs, ``python -m devices.camera`` as a process
(test pattern, ICE on 127.0.0.1) and an aiortc caller that signals only through Matrix events:
m.call.invite sent with the Client-Server API, m.call.answer read from /sync, video frames
received and decoded. Also ``!snapshot``, refusals, motion events, an edgehs restart and bad
configuration.
"""

import asyncio
import io
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from av.video.frame import VideoFrame
from devices_support import *  # noqa: F403  (the device fixtures)
from devices_support import SERVER_NAME, DeviceProcess, DevicesSetup, MatrixUser, q, run_module
from PIL import Image

from devices.camera.ice import restrict_host_addresses

pytestmark = pytest.mark.integration

CAMERA = f"@camera_front:{SERVER_NAME}"
ALIAS = f"#camera_front:{SERVER_NAME}"
V3 = "/_matrix/client/v3"
FRAME_TIMEOUT = 20.0

StartDevice = Callable[..., Awaitable[DeviceProcess]]
MakeUser = Callable[[str], Awaitable[MatrixUser]]


@pytest.fixture
def device_services() -> list[str]:
    return ["camera"]


class Syncer:
    """/sync for one user from 'now': ``next(room, predicate)`` long-polls for an event."""

    def __init__(self, user: MatrixUser) -> None:
        self.user = user
        self.since: str | None = None
        self.seen: list[dict[str, Any]] = []

    async def start(self) -> None:
        body = await self.user.request("GET", f"{V3}/sync", params={"timeout": "0"})
        self.since = body["next_batch"]

    async def next(self, room_id: str, predicate: Callable[[dict[str, Any]], bool],
                   what: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.seen:
                if predicate(event):
                    self.seen.remove(event)
                    return event
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} in /sync within {timeout:.0f}s; saw "
                                     f"{[(e['type'], e['sender']) for e in self.seen]}")
            assert self.since is not None
            body = await self.user.request("GET", f"{V3}/sync", params={
                "since": self.since, "timeout": "2000"})
            self.since = body["next_batch"]
            room = body.get("rooms", {}).get("join", {}).get(room_id, {})
            self.seen += room.get("timeline", {}).get("events", [])


def call_event(call_id: str, event_type: str, sender: str = CAMERA
               ) -> Callable[[dict[str, Any]], bool]:
    return lambda e: (e["type"] == event_type and e["sender"] == sender
                      and e["content"].get("call_id") == call_id)


async def caller_offer() -> RTCPeerConnection:
    """A caller like a browser: audio both ways, video from the camera; loopback ICE."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="sendrecv")
    pc.addTransceiver("video", direction="recvonly")
    with restrict_host_addresses(["127.0.0.1"]):
        await pc.setLocalDescription(await pc.createOffer())
    return pc


def invite_content(call_id: str, sdp: str) -> dict[str, Any]:
    return {"call_id": call_id, "version": "1", "party_id": "owner-phone", "lifetime": 60000,
            "offer": {"type": "offer", "sdp": sdp}, "invitee": CAMERA}


async def download_jpeg(user: MatrixUser, mxc: str) -> Image.Image:
    assert mxc.startswith("mxc://"), mxc
    server, media_id = mxc[len("mxc://"):].split("/", 1)
    if user._http is None:
        await user.request("GET", f"{V3}/account/whoami")
    assert user._http is not None
    async with user._http.get(f"/_matrix/client/v1/media/download/{q(server)}/{q(media_id)}",
                              headers=user.auth) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("image/jpeg")
        data = await resp.read()
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "JPEG"
    return image


async def start_camera(devices: DevicesSetup, owner: MatrixUser,
                       device_process: StartDevice) -> tuple[DeviceProcess, str]:
    proc = await device_process("camera")
    room_id = await owner.join_when_invited(ALIAS)
    return proc, room_id


async def test_call_gets_live_video_and_snapshot(devices: DevicesSetup, owner: MatrixUser,
                                                 device_process: StartDevice) -> None:
    proc, room_id = await start_camera(devices, owner, device_process)
    state = await owner.wait_for_state(room_id, "org.edgehs.camera")
    assert state["kind"] == "test_pattern" and (state["width"], state["height"]) == (320, 240)

    syncer = Syncer(owner)
    await syncer.start()
    caller = await caller_offer()
    video: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

    @caller.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "video" and not video.done():
            video.set_result(track)

    await owner.send(room_id, invite_content("call-1", caller.localDescription.sdp),
                     event_type="m.call.invite")

    answer = await syncer.next(room_id, call_event("call-1", "m.call.answer"), "m.call.answer")
    content = answer["content"]
    assert content["version"] == "1" and isinstance(content["party_id"], str)
    assert content["answer"]["type"] == "answer" and "127.0.0.1" in content["answer"]["sdp"]
    await owner.send(room_id, {"call_id": "call-1", "version": "1", "party_id": "owner-phone",
                               "selected_party_id": content["party_id"]},
                     event_type="m.call.select_answer")
    await caller.setRemoteDescription(RTCSessionDescription(**content["answer"]))
    track = await asyncio.wait_for(video, FRAME_TIMEOUT)
    frames = [await asyncio.wait_for(track.recv(), FRAME_TIMEOUT) for _ in range(5)]
    assert all(isinstance(f, VideoFrame) and (f.width, f.height) == (320, 240) for f in frames)
    assert len({f.pts for f in frames}) == 5  # five different frames

    status_id = await owner.send_text(room_id, "!status")
    status = await owner.wait_for(room_id, sender=CAMERA, type="m.room.message",
                                  after=status_id, what="status notice")
    assert "1 call(s)" in status["content"]["body"], status

    await owner.send(room_id, {"call_id": "call-1", "version": "1", "party_id": "owner-phone",
                               "reason": "user_hangup"}, event_type="m.call.hangup")
    status_id = await owner.send_text(room_id, "!status")
    status = await owner.wait_for(room_id, sender=CAMERA, type="m.room.message",
                                  after=status_id, what="status notice after the hangup")
    assert "0 call(s)" in status["content"]["body"] and "idle" in status["content"]["body"]
    await caller.close()

    command_id = await owner.send_text(room_id, "!snapshot")
    image_event = await owner.wait_for(
        room_id, lambda e: e["content"].get("msgtype") == "m.image", sender=CAMERA,
        after=command_id, what="the snapshot m.image")
    image_content = image_event["content"]
    assert image_content["m.relates_to"] == {"m.in_reply_to": {"event_id": command_id}}
    info = image_content["info"]
    assert (info["mimetype"], info["w"], info["h"]) == ("image/jpeg", 320, 240)
    image = await download_jpeg(owner, image_content["url"])
    assert image.size == (320, 240) and info["size"] > 0
    assert proc.running


async def test_members_without_power_are_refused(devices: DevicesSetup, owner: MatrixUser,
                                                 make_user: MakeUser,
                                                 device_process: StartDevice) -> None:
    _, room_id = await start_camera(devices, owner, device_process)
    bob = await make_user("bob")
    await owner.request("POST", f"{V3}/rooms/{q(room_id)}/invite", json={"user_id": bob.user_id})
    await bob.join(room_id)
    syncer = Syncer(bob)
    await syncer.start()
    caller = await caller_offer()
    await bob.send(room_id, {**invite_content("bob-1", caller.localDescription.sdp),
                             "party_id": "bob-laptop"}, event_type="m.call.invite")
    reject = await syncer.next(room_id, call_event("bob-1", "m.call.reject"), "m.call.reject")
    assert reject["content"]["version"] == "1" and reject["content"]["party_id"]
    notice = await syncer.next(room_id, lambda e: e["sender"] == CAMERA and "may not call"
                               in e["content"].get("body", ""), "refusal notice")
    assert notice["content"] == {"msgtype": "m.notice", "body": f"{bob.user_id} may not call "
                                 f"this camera here: needs power 50 (has 0)"}
    await caller.close()

    command_id = await bob.send_text(room_id, "!snapshot")
    refusal = await bob.wait_for(room_id, sender=CAMERA, type="m.room.message",
                                 after=command_id, what="snapshot refusal")
    assert refusal["content"]["body"].startswith(f"{bob.user_id} may not take snapshots")
    messages = await bob.messages(room_id)
    assert not any(e["content"].get("msgtype") == "m.image" for e in messages)


async def test_motion_events_and_edgehs_restart(devices: DevicesSetup, owner: MatrixUser,
                                                server: Any, device_process: StartDevice
                                                ) -> None:
    devices.update("camera", lambda section: section["cameras"][0].update(motion={
        "enabled": True, "threshold": 0.05, "min_interval": 1, "sample_fps": 2}))
    proc, room_id = await start_camera(devices, owner, device_process)

    def motion(e: dict[str, Any]) -> bool:
        return bool(e["type"] == "org.edgehs.camera.motion")

    first = await owner.wait_for(room_id, motion, sender=CAMERA, what="a motion event")
    content = first["content"]
    assert content["camera"] == "front" and content["threshold"] == 500  # basis points
    assert 500 <= content["score"] <= 10_000
    assert content["info"]["mimetype"] == "image/jpeg" and isinstance(content["ts"], int)
    assert (await download_jpeg(owner, content["url"])).size == (320, 240)

    await server.restart()  # motion keeps coming while edgehs is away: retried, not lost
    assert proc.running
    latest = (await owner.messages(room_id))[-1]["event_id"]
    await owner.wait_for(room_id, motion, sender=CAMERA, after=latest,
                         what="a motion event after the restart")
    command_id = await owner.send_text(room_id, "!snapshot")
    image_event = await owner.wait_for(
        room_id, lambda e: e["content"].get("msgtype") == "m.image", sender=CAMERA,
        after=command_id, what="a snapshot after the restart")
    await download_jpeg(owner, image_event["content"]["url"])
    log = proc.log_text()
    assert "Traceback" not in log


@pytest.mark.parametrize(("change", "key"), [
    (lambda s: s["cameras"][0]["source"].update(kind="usb"), "camera.cameras[0].source.kind"),
    (lambda s: s["cameras"][0].update(ice_hosts=["0.0.0.0"]), "camera.cameras[0].ice_hosts[0]"),
    (lambda s: s["cameras"][0].update(motion={"threshold": "high"}),
     "camera.cameras[0].motion.threshold"),
])
def test_bad_config_exits_2_naming_the_key(devices: DevicesSetup,
                                           change: Callable[[dict[str, Any]], None],
                                           key: str) -> None:
    devices.update("camera", change)
    done = run_module("devices.camera", "-c", str(devices.config_path))
    assert done.returncode == 2, done
    assert f"devices.yaml: {key}: " in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
