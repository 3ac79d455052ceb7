"""devices/camera/call.py + ice.py: the VoIP mapping, with a real aiortc caller on loopback."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aioice.ice
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from av.video.frame import VideoFrame

from devices.camera.call import CallManager, CallSettings, invite_problem, video_stream_id
from devices.camera.driver import Camera, SourceConfig
from devices.camera.ice import candidate_from_matrix, host_addresses, restrict_host_addresses

ME, ALICE = "@camera_front:test.local", "@alice:test.local"
HOST_LINE = "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host"


class Room:
    """What the manager sends, as (type, content)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.notices: list[str] = []
        self.changed = asyncio.Event()

    async def send(self, event_type: str, content: dict[str, Any]) -> None:
        self.sent.append((event_type, content))
        self.changed.set()

    async def notice(self, text: str) -> None:
        self.notices.append(text)
        self.changed.set()

    async def next_of(self, event_type: str) -> dict[str, Any]:
        while True:
            for etype, content in self.sent:
                if etype == event_type:
                    self.sent.remove((etype, content))
                    return content
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 15)


def event(etype: str, content: dict[str, Any], sender: str = ALICE, **extra: Any
          ) -> dict[str, Any]:
    return {"type": etype, "sender": sender, "content": content, "room_id": "!r:test.local",
            "event_id": "$e", "origin_server_ts": 0, **extra}


def invite(call_id: str, sdp: str, version: Any = "1", **content: Any) -> dict[str, Any]:
    return event("m.call.invite", {"call_id": call_id, "version": version, "party_id": "alice1",
                                   "lifetime": 60000, "offer": {"type": "offer", "sdp": sdp},
                                   **content}, unsigned={"age": 10})


@pytest.fixture
async def setup() -> AsyncIterator[tuple[CallManager, Room, Camera]]:
    room = Room()
    camera = Camera(SourceConfig(width=160, height=120, fps=10))
    manager = CallManager(camera, CallSettings(ice_hosts=("127.0.0.1",), max_viewers=2),
                          room.send, ME, "cam1", room.notice)
    yield manager, room, camera
    await manager.close()
    camera.close()


async def caller_offer(audio: bool = True, video: bool = True) -> RTCPeerConnection:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if audio:
        pc.addTransceiver("audio", direction="sendrecv")
    if video:
        pc.addTransceiver("video", direction="recvonly")
    with restrict_host_addresses(["127.0.0.1"]):
        await pc.setLocalDescription(await pc.createOffer())
    return pc


def first_video(pc: RTCPeerConnection) -> "asyncio.Future[MediaStreamTrack]":
    """The first video track the caller receives."""
    video: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "video" and not video.done():
            video.set_result(track)
    return video


def test_pure_helpers() -> None:
    c = candidate_from_matrix({"candidate": HOST_LINE, "sdpMid": "0", "sdpMLineIndex": 0})
    assert c is not None and (c.ip, c.port, c.type, c.sdpMid) == ("127.0.0.1", 40000, "host", "0")
    assert candidate_from_matrix({"candidate": ""}) is None  # end of candidates
    with pytest.raises(ValueError):
        candidate_from_matrix({"candidate": HOST_LINE})  # neither sdpMid nor sdpMLineIndex
    with pytest.raises(ValueError):
        candidate_from_matrix({"candidate": 5})
    assert video_stream_id("m=audio 9 x\r\na=msid:aa t1\r\nm=video 9 y\r\na=msid:vv t2\r\n") == "vv"
    assert video_stream_id("m=audio 9 x\r\n") is None
    assert host_addresses(["127.0.0.1", "::1", "127.0.0.1"]) == ["127.0.0.1", "::1"]
    assert host_addresses(["127.0.0.1", "::1"], use_ipv6=False) == ["127.0.0.1"]
    assert host_addresses(["lo"], use_ipv6=False) == ["127.0.0.1"]
    assert host_addresses(["no-such-if0"]) == []


def test_invite_problems() -> None:
    ok = invite("c1", "v=0")
    assert invite_problem(ok, ME, 0) is None
    assert "for @bob" in str(invite_problem(invite("c1", "v=0", invitee="@bob:x"), ME, 0))
    assert invite_problem(invite("c1", "v=0", invitee=ME), ME, 0) is None
    stale = {**ok, "unsigned": {"age": 70000}}
    assert "expired" in str(invite_problem(stale, ME, 0))
    no_age = {k: v for k, v in ok.items() if k != "unsigned"}
    assert "expired" in str(invite_problem({**no_age, "origin_server_ts": 1}, ME, 90000))
    assert invite_problem(event("m.call.invite", {"call_id": "c"}), ME, 0) == "malformed invite"


def test_host_filter_applies_inside_the_block_only() -> None:
    with restrict_host_addresses(["127.0.0.1"]):
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1"]
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(True, True)  # aioice's own choice


async def test_a_call_receives_camera_frames_and_ends_on_hangup(
        setup: tuple[CallManager, Room, Camera]) -> None:
    manager, room, camera = setup
    caller = await caller_offer()
    video = first_video(caller)
    manager.on_event(invite("c1", caller.localDescription.sdp))
    answer = await room.next_of("m.call.answer")
    assert (answer["call_id"], answer["version"], answer["party_id"]) == ("c1", "1", "cam1")
    sdp = answer["answer"]["sdp"]
    assert answer["answer"]["type"] == "answer" and "127.0.0.1" in sdp
    assert "a=candidate" in sdp and "a=sendonly" in sdp and "a=inactive" in sdp  # audio off
    assert list(answer["sdp_stream_metadata"].values()) == [
        {"purpose": "m.usermedia", "audio_muted": True, "video_muted": False}]
    await caller.setRemoteDescription(RTCSessionDescription(**answer["answer"]))
    track = await asyncio.wait_for(video, 15)
    frames = [await asyncio.wait_for(track.recv(), 15) for _ in range(3)]
    assert all(isinstance(f, VideoFrame) and (f.width, f.height) == (160, 120) for f in frames)
    assert camera.viewers == 1 and manager.active == 1
    manager.on_event(event("m.call.hangup", {"call_id": "c1", "version": "1",
                                             "party_id": "someone-else", "reason": "user_hangup"}))
    manager.on_event(event("m.call.hangup", {"call_id": "c1", "version": "1", "party_id": "alice1",
                                             "reason": "user_hangup"}, sender="@bob:test.local"))
    await asyncio.sleep(0.05)
    assert manager.active == 1  # not from the caller's party: ignored
    manager.on_event(event("m.call.hangup", {"call_id": "c1", "version": "1", "party_id": "alice1",
                                             "reason": "user_hangup"}))
    for _ in range(100):
        if camera.viewers == 0:
            break
        await asyncio.sleep(0.02)
    assert camera.viewers == 0 and manager.active == 0 and not camera.capturing
    assert all(etype != "m.call.hangup" for etype, _ in room.sent)  # the caller hung up
    manager.on_event(invite("c1", caller.localDescription.sdp))  # redelivered: ignored
    await asyncio.sleep(0.05)
    assert room.sent == []
    await caller.close()


async def test_trickled_candidates_and_select_answer_elsewhere(
        setup: tuple[CallManager, Room, Camera]) -> None:
    manager, room, camera = setup
    caller = await caller_offer(audio=False)
    sdp = caller.localDescription.sdp
    lines = [line[2:] for line in sdp.splitlines() if line.startswith("a=candidate:")]
    stripped = "\r\n".join(line for line in sdp.splitlines()
                           if not line.startswith(("a=candidate:", "a=end-of-candidates"))) + "\r\n"
    manager.on_event(invite("c2", stripped, version=1))  # an integer version counts as "1"
    manager.on_event(event("m.call.candidates", {
        "call_id": "c2", "version": "1", "party_id": "alice1",
        "candidates": [*({"candidate": c, "sdpMid": "0", "sdpMLineIndex": 0} for c in lines),
                       {"candidate": "bad"}, "junk", {"candidate": ""}]}))
    answer = await room.next_of("m.call.answer")
    video = first_video(caller)
    await caller.setRemoteDescription(RTCSessionDescription(**answer["answer"]))
    frame = await asyncio.wait_for((await asyncio.wait_for(video, 15)).recv(), 15)
    assert isinstance(frame, VideoFrame) and frame.width == 160
    manager.on_event(event("m.call.select_answer", {"call_id": "c2", "version": "1",
                                                    "party_id": "alice1",
                                                    "selected_party_id": "cam1"}))
    await asyncio.sleep(0.05)
    assert manager.active == 1  # ours was selected
    manager.on_event(event("m.call.select_answer", {"call_id": "c2", "version": "1",
                                                    "party_id": "alice1",
                                                    "selected_party_id": "other"}))
    for _ in range(100):
        if manager.active == 0:
            break
        await asyncio.sleep(0.02)
    assert manager.active == 0 and camera.viewers == 0
    assert all(etype != "m.call.hangup" for etype, _ in room.sent)  # answered elsewhere: silent
    await caller.close()


async def test_busy_audio_only_and_broken_camera(setup: tuple[CallManager, Room, Camera],
                                                 tmp_path: Path) -> None:
    manager, room, _ = setup
    callers = [await caller_offer() for _ in range(3)]
    for i, caller in enumerate(callers):
        manager.on_event(invite(f"b{i}", caller.localDescription.sdp))
    hangup = await room.next_of("m.call.hangup")
    assert (hangup["call_id"], hangup["reason"], hangup["party_id"]) == ("b2", "user_busy", "cam1")
    await room.next_of("m.call.answer")
    await room.next_of("m.call.answer")
    await manager.close()
    assert [c["reason"] for t, c in room.sent if t == "m.call.hangup"] == ["user_hangup"] * 2
    room.sent.clear()

    audio_only = await caller_offer(video=False)
    manager.on_event(invite("a1", audio_only.localDescription.sdp))
    hangup = await room.next_of("m.call.hangup")
    assert hangup["reason"] == "user_media_failed" and "video calls only" in room.notices[-1]

    manager.camera = Camera(SourceConfig(kind="v4l2", path=tmp_path / "video7"))
    manager.on_event(invite("m1", callers[0].localDescription.sdp))
    hangup = await room.next_of("m.call.hangup")
    assert hangup["reason"] == "user_media_failed" and "video7" in room.notices[-1]
    for pc in [*callers, audio_only]:
        await pc.close()


async def test_decline_rejects_version1_and_hangs_up_version0(
        setup: tuple[CallManager, Room, Camera]) -> None:
    manager, room, _ = setup
    await manager.decline(invite("d1", "v=0"))
    await manager.decline(invite("d0", "v=0", version=0))
    assert room.sent == [
        ("m.call.reject", {"call_id": "d1", "version": "1", "party_id": "cam1"}),
        ("m.call.hangup", {"call_id": "d0", "version": 0, "party_id": "cam1",
                           "reason": "user_busy"}),
    ]


async def test_two_viewers_share_one_capture(setup: tuple[CallManager, Room, Camera]) -> None:
    """Both calls' encoders get the same frames (in worker threads) from one capture."""
    manager, room, camera = setup
    tracks = []
    callers = [await caller_offer(audio=False) for _ in range(2)]
    for i, caller in enumerate(callers):
        video = first_video(caller)
        manager.on_event(invite(f"v{i}", caller.localDescription.sdp))
        answer = await room.next_of("m.call.answer")
        await caller.setRemoteDescription(RTCSessionDescription(**answer["answer"]))
        tracks.append(await asyncio.wait_for(video, 15))

    async def frames(track: Any) -> int:
        for _ in range(30):
            frame = await asyncio.wait_for(track.recv(), 15)
            assert isinstance(frame, VideoFrame) and (frame.width, frame.height) == (160, 120)
        return 30

    assert await asyncio.gather(*(frames(t) for t in tracks)) == [30, 30]
    assert camera.viewers == 2 and camera.capturing
    for caller in callers:
        await caller.close()


async def test_negotiate_offer_gets_a_negotiate_answer(
        setup: tuple[CallManager, Room, Camera]) -> None:
    manager, room, _ = setup
    caller = await caller_offer(audio=False)
    video = first_video(caller)
    manager.on_event(invite("n1", caller.localDescription.sdp))
    answer = await room.next_of("m.call.answer")
    await caller.setRemoteDescription(RTCSessionDescription(**answer["answer"]))
    await asyncio.wait_for((await asyncio.wait_for(video, 15)).recv(), 15)
    await caller.setLocalDescription(await caller.createOffer())  # e.g. a hold or ICE restart
    manager.on_event(event("m.call.negotiate", {
        "call_id": "n1", "version": "1", "party_id": "alice1", "lifetime": 10000,
        "description": {"type": "offer", "sdp": caller.localDescription.sdp}}))
    negotiate = await room.next_of("m.call.negotiate")
    assert negotiate["description"]["type"] == "answer" and negotiate["party_id"] == "cam1"
    await caller.setRemoteDescription(RTCSessionDescription(**negotiate["description"]))
    assert caller.signalingState == "stable"
    await caller.close()
