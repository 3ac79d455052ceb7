"""The camera as the callee of Matrix VoIP calls, with aiortc.

Spec: https://spec.matrix.org/v1.19/client-server-api/#voice-over-ip (call events version "1"
with ``party_id``; version 0 invites are answered as version 0).

    caller                          camera (this module)
    m.call.invite {offer} ───────▶  RTCPeerConnection, relay view of the capture, answer
                        ◀─────────  m.call.answer {answer: SDP with every host candidate}
    m.call.candidates ───────────▶  addIceCandidate ("" = end of candidates)
    m.call.select_answer ────────▶  another party chosen -> end silently
    m.call.negotiate {offer} ────▶  m.call.negotiate {answer}
    m.call.hangup ───────────────▶  close          (ICE failure / timeout -> m.call.hangup ◀──)

aiortc gathers every candidate before the answer is sent, so the answer SDP carries them all and
the camera sends no m.call.candidates of its own.

The host addresses offered are each camera's ``ice_hosts`` (see ice.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceCandidate,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)

from .driver import Camera, CameraError
from .ice import candidate_from_matrix, restrict_host_addresses

log = logging.getLogger(__name__)

CALL_EVENTS = ("m.call.invite", "m.call.candidates", "m.call.answer", "m.call.select_answer",
               "m.call.reject", "m.call.negotiate", "m.call.hangup")
NEGOTIATE_LIFETIME_MS = 10_000
HANGUP_SEND_TIMEOUT = 3.0  # seconds a hangup may take while the service stops

Send = Callable[[str, dict[str, Any]], Awaitable[Any]]

def video_stream_id(sdp: str) -> str | None:
    """The msid stream id of the first video section of ``sdp``."""
    in_video = False
    for line in sdp.splitlines():
        if line.startswith("m="):
            in_video = line.startswith("m=video")
        elif in_video and line.startswith("a=msid:"):
            return line[len("a=msid:"):].split()[0]
    return None


def invite_problem(event: dict[str, Any], me: str, now_ms: int) -> str | None:
    """Why the camera ignores this m.call.invite, or None when it is for the camera."""
    content = event.get("content")
    if not isinstance(content, dict):
        return "no content"
    offer = content.get("offer")
    if not isinstance(content.get("call_id"), str) or not isinstance(offer, dict) or \
            not isinstance(offer.get("sdp"), str):
        return "malformed invite"
    invitee = content.get("invitee")
    if isinstance(invitee, str) and invitee != me:
        return f"invite is for {invitee}"
    lifetime = content.get("lifetime")
    age = event.get("unsigned", {}).get("age")
    if not isinstance(age, int):
        ts = event.get("origin_server_ts")
        age = now_ms - ts if isinstance(ts, int) else 0
    if isinstance(lifetime, int) and age > lifetime:
        return f"invite expired ({age} ms old, lifetime {lifetime} ms)"
    return None


def is_version0(content: dict[str, Any]) -> bool:
    return content.get("version") in (0, "0")


@dataclass(frozen=True)
class CallSettings:
    ice_hosts: tuple[str, ...] = ()  # addresses or interface names; () = every host address
    ice_servers: tuple[str, ...] = ()  # "stun:host:port" / "turn:..." URLs; () = LAN only
    max_viewers: int = 4
    connect_timeout: float = 30.0  # seconds from the answer until media must flow


@dataclass(eq=False)
class Call:
    call_id: str
    caller: str
    caller_party: str | None  # None for version 0 callers
    version: str | int
    pc: RTCPeerConnection | None = None
    view: MediaStreamTrack | None = None
    ready: bool = False  # remote + local descriptions set: candidates go straight to the pc
    connected: bool = False
    ended: bool = False
    pending: list[RTCIceCandidate | None] = field(default_factory=list)

    def base(self, party_id: str) -> dict[str, Any]:
        return {"call_id": self.call_id, "version": self.version, "party_id": party_id}

    def from_caller(self, event: dict[str, Any]) -> bool:
        """Spec: the callee ignores events whose user_id + party_id are not the caller's."""
        party = event.get("content", {}).get("party_id")
        return event.get("sender") == self.caller and (
            self.caller_party is None or party is None or party == self.caller_party)


class CallManager:
    """The calls of one camera room; send() posts an event into that room as the camera."""

    def __init__(self, camera: Camera, settings: CallSettings, send: Send, user_id: str,
                 party_id: str, on_problem: Callable[[str], Awaitable[Any]] | None = None
                 ) -> None:
        self.camera, self.settings, self.send = camera, settings, send
        self.user_id, self.party_id = user_id, party_id
        self.on_problem = on_problem  # posts a notice for the humans
        self.calls: dict[str, Call] = {}
        self._tasks: set[asyncio.Future[Any]] = set()

    @property
    def active(self) -> int:
        return sum(1 for call in self.calls.values() if not call.ended)

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task: asyncio.Future[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._task_done(done, name))

    def _task_done(self, task: asyncio.Future[Any], name: str) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", name, exc_info=task.exception())

    # --- events in --------------------------------------------------------------------------

    async def decline(self, event: dict[str, Any]) -> None:
        """Refuse an invite: m.call.reject for version 1, m.call.hangup for version 0."""
        content = event["content"]
        call = Call(content["call_id"], event["sender"], content.get("party_id"),
                    0 if is_version0(content) else "1")
        if is_version0(content):
            await self.send("m.call.hangup", {**call.base(self.party_id), "reason": "user_busy"})
        else:
            await self.send("m.call.reject", call.base(self.party_id))

    def on_event(self, event: dict[str, Any]) -> None:
        """An m.call.* event in the room from someone else, already allowed by the caller."""
        etype, content = event.get("type"), event.get("content")
        if not isinstance(content, dict) or not isinstance(content.get("call_id"), str):
            return
        if etype == "m.call.invite":
            self._on_invite(event)
            return
        call = self.calls.get(content["call_id"])
        if call is None or call.ended or not call.from_caller(event):
            return
        if etype == "m.call.candidates":
            self._on_candidates(call, content.get("candidates"))
        elif etype == "m.call.select_answer":
            if content.get("selected_party_id") != self.party_id:
                self.stop_media(call)
                self._spawn(self.end(call, None, stopped=True), f"elsewhere {call.call_id}")
        elif etype == "m.call.hangup":
            self.stop_media(call)
            self._spawn(self.end(call, None, stopped=True), f"hangup {call.call_id}")
        elif etype == "m.call.negotiate":
            description = content.get("description")
            if isinstance(description, dict) and description.get("type") == "offer":
                self._spawn(self._renegotiate(call, str(description.get("sdp", ""))),
                            f"negotiate {call.call_id}")

    def _on_invite(self, event: dict[str, Any]) -> None:
        content = event["content"]
        if content["call_id"] in self.calls:
            return  # a redelivered invite
        call = Call(content["call_id"], event["sender"],
                    content.get("party_id") if isinstance(content.get("party_id"), str) else None,
                    0 if is_version0(content) else "1")
        busy = self.active >= self.settings.max_viewers
        self.calls[call.call_id] = call
        if busy:
            self._spawn(self.end(call, "user_busy"), f"busy {call.call_id}")
            return
        self._spawn(self._answer(call, content["offer"]["sdp"]), f"answer {call.call_id}")

    def _on_candidates(self, call: Call, entries: object) -> None:
        if not isinstance(entries, list):
            return
        for entry in entries:
            try:
                candidate = candidate_from_matrix(entry) if isinstance(entry, dict) else None
            except ValueError as exc:
                log.info("call %s: ignoring candidate %r: %s", call.call_id, entry, exc)
                continue
            if isinstance(entry, dict):
                call.pending.append(candidate)
        if call.ready:
            self._spawn(self._flush_candidates(call), f"candidates {call.call_id}")

    # --- the peer connection -----------------------------------------------------------------

    async def _answer(self, call: Call, offer_sdp: str) -> None:
        servers = [RTCIceServer(urls=url) for url in self.settings.ice_servers]
        pc = call.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        pc.on("connectionstatechange", lambda: self._on_state(call))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            if not any(t.kind == "video" for t in pc.getTransceivers()):
                await self._problem(call, "user_media_failed",
                                    "the camera answers video calls only")
                return
            call.view = self.camera.open_view()
            self._prepare_transceivers(pc, call.view)
            answer = await pc.createAnswer()
            with restrict_host_addresses(self.settings.ice_hosts):
                await pc.setLocalDescription(answer)
        except CameraError as exc:
            await self._problem(call, "user_media_failed", str(exc))
            return
        except Exception as exc:
            if call.ended:  # hung up (or the service stopped) while answering
                return
            log.exception("call %s: cannot answer", call.call_id)
            await self._problem(call, "unknown_error", f"cannot answer the call: {exc}")
            return
        if call.ended:
            return
        sdp = pc.localDescription.sdp
        content: dict[str, Any] = {**call.base(self.party_id),
                                   "answer": {"type": "answer", "sdp": sdp}}
        stream = video_stream_id(sdp)
        if stream is not None:
            content["sdp_stream_metadata"] = {stream: {
                "purpose": "m.usermedia", "audio_muted": True, "video_muted": False}}
        await self.send("m.call.answer", content)
        call.ready = True
        await self._flush_candidates(call)
        self._spawn(self._connect_deadline(call), f"deadline {call.call_id}")
        log.info("call %s from %s answered (%d active)", call.call_id, call.caller, self.active)

    def _prepare_transceivers(self, pc: RTCPeerConnection, view: MediaStreamTrack) -> None:
        """The first video section sends the camera; every other section is inactive."""
        sending = False
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video" and not sending:
                if transceiver.sender.track is None:
                    transceiver.sender.replaceTrack(view)
                transceiver.direction = "sendonly"
                sending = True
            elif transceiver.sender.track is None:
                transceiver.direction = "inactive"  # nothing received is left undecoded

    async def _renegotiate(self, call: Call, sdp: str) -> None:
        pc = call.pc
        if pc is None or not call.ready:
            return
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            if call.view is not None:
                self._prepare_transceivers(pc, call.view)
            answer = await pc.createAnswer()
            with restrict_host_addresses(self.settings.ice_hosts):
                await pc.setLocalDescription(answer)
        except Exception:
            log.exception("call %s: renegotiation failed", call.call_id)
            return
        await self.send("m.call.negotiate", {
            **call.base(self.party_id), "lifetime": NEGOTIATE_LIFETIME_MS,
            "description": {"type": "answer", "sdp": pc.localDescription.sdp}})

    async def _flush_candidates(self, call: Call) -> None:
        pc = call.pc
        while call.pending and pc is not None and not call.ended:
            candidate = call.pending.pop(0)
            try:
                await pc.addIceCandidate(candidate)
            except Exception as exc:  # a candidate aiortc cannot use must not end the call
                log.info("call %s: candidate refused: %s", call.call_id, exc)

    def _on_state(self, call: Call) -> None:
        pc = call.pc
        if pc is None or call.ended:
            return
        state = pc.connectionState
        log.info("call %s: connection %s", call.call_id, state)
        if state == "connected":
            call.connected = True
        elif state == "failed":
            reason = "ice_timeout" if call.connected else "ice_failed"
            self._spawn(self.end(call, reason), f"failed {call.call_id}")

    async def _connect_deadline(self, call: Call) -> None:
        await asyncio.sleep(self.settings.connect_timeout)
        if not call.ended and not call.connected:
            log.info("call %s: no media connection after %.0f s", call.call_id,
                     self.settings.connect_timeout)
            await self.end(call, "ice_failed")

    async def _problem(self, call: Call, reason: str, text: str) -> None:
        await self.end(call, reason)
        if self.on_problem is not None:
            await self.on_problem(f"Call from {call.caller} ended: {text}")

    def stop_media(self, call: Call) -> bool:
        """Mark the call ended and give its view back at once (so the camera's state is right
        for the next event); False if it had already ended."""
        if call.ended:
            return False
        call.ended = True
        if call.view is not None:
            self.camera.release(call.view)
            call.view = None
        return True

    async def end(self, call: Call, reason: str | None, *, stopped: bool = False) -> None:
        """Close the call; with a reason, also tell the caller (m.call.hangup)."""
        if not self.stop_media(call) and not stopped:
            return
        if call.pc is not None:
            with contextlib.suppress(Exception):
                await call.pc.close()
        if reason is not None:
            await self.send("m.call.hangup", {**call.base(self.party_id), "reason": reason})
        log.info("call %s ended (%s), %d active", call.call_id, reason or "by caller",
                 self.active)
        self._forget_ended()

    def _forget_ended(self) -> None:
        """Keep ended calls' ids for a while (redelivered invites), bounded."""
        ended = [cid for cid, call in self.calls.items() if call.ended]
        for cid in ended[:-100]:
            del self.calls[cid]

    async def close(self) -> None:
        """Hang up every call (best effort while stopping) and cancel the tasks."""
        for call in list(self.calls.values()):
            if not call.ended:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.end(call, "user_hangup"), HANGUP_SEND_TIMEOUT)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def now_ms() -> int:
    return int(time.time() * 1000)

