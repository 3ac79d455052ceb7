"""The camera service: each configured camera is a virtual user ``@camera_{name}`` in its room
``#camera_{name}``. Matrix -> camera mapping:

- ``m.call.invite`` (video) from a member with power >= ``actuate_power`` -> answered with the
  live picture (call.py); from anyone else -> ``m.call.reject`` (version 0: ``m.call.hangup``)
  plus a notice saying why.
- ``!snapshot`` -> the current picture as an ``m.image`` (JPEG through the media repository),
  a reply to the command; ``!status`` and ``!help`` -> a notice (anyone may ask).
- motion (if enabled) -> ``org.edgehs.camera.motion`` {camera, score, threshold, ts, url, info};
  score and threshold are the changed share of the picture in basis points (1/10000), integers
  because event JSON has no floats.

The room also holds the state event ``org.edgehs.camera`` (state key "") describing the source.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from av.video.frame import VideoFrame

from devices.common.config import ServiceConfig
from devices.common.device import DeviceService
from devices.common.intent import Intent

from .call import CALL_EVENTS, CallManager, invite_problem, now_ms
from .config import CameraConfig, parse_cameras
from .driver import Camera, CameraError, describe, encode_jpeg
from .motion import MotionWatcher

MOTION_EVENT = "org.edgehs.camera.motion"
STATE_EVENT = "org.edgehs.camera"
HELP = ("Call this room (video) to watch the camera. Commands: !snapshot posts a picture, "
        "!status tells what the camera is doing, !help shows this.")


def basis_points(fraction: float) -> int:
    """0.1834 -> 1834 (Matrix event content allows integers, not floats)."""
    return round(fraction * 10_000)


@dataclass
class CameraDevice:
    config: CameraConfig
    intent: Intent
    room_id: str
    camera: Camera
    calls: CallManager
    motion: MotionWatcher | None = None


class CameraService(DeviceService):
    service = "camera"

    @classmethod
    def validate(cls, config: ServiceConfig) -> None:
        parse_cameras(config.section)

    async def start(self) -> None:
        self.party_id = f"edgehs-{secrets.token_hex(6)}"  # this process's VoIP party
        self.devices: dict[str, CameraDevice] = {}  # room id -> camera
        self._tasks: set[asyncio.Future[Any]] = set()
        for config in parse_cameras(self.config.section):
            await self._start_camera(config)

    async def _start_camera(self, config: CameraConfig) -> None:
        source = config.source
        if source.path is not None and not source.path.exists():
            self.log.warning("camera %s: %s does not exist (yet); calls and snapshots will "
                             "fail until it does", config.name, source.path)
        intent, room_id = await self.setup_device(
            config.name, displayname=f"Camera {config.name}", room_name=f"Camera {config.name}",
            topic=HELP)
        camera = Camera(source)

        async def send(event_type: str, content: dict[str, Any]) -> None:
            await intent.send_event(room_id, event_type, content)

        async def notice(text: str) -> None:
            await intent.send_notice(room_id, text)

        calls = CallManager(camera, config.call, send, intent.user_id, self.party_id, notice)
        device = CameraDevice(config, intent, room_id, camera, calls)
        state = {"name": config.name, "source": describe(source), "kind": source.kind,
                 "width": source.width, "height": source.height, "fps": source.fps,
                 "motion": config.motion.settings.enabled}
        if await intent.get_state(room_id, STATE_EVENT) != state:
            await intent.send_state(room_id, STATE_EVENT, "", state)
        if config.motion.settings.enabled:
            device.motion = MotionWatcher(
                camera, config.motion.settings,
                lambda score, frame: self._report_motion(device, score, frame))
            device.motion.start()
        self.devices[room_id] = device
        self.log.info("camera %s: %s, room %s", config.name, describe(source), room_id)

    async def stop(self) -> None:
        for device in getattr(self, "devices", {}).values():
            if device.motion is not None:
                await device.motion.stop()
            await device.calls.close()
            device.camera.close()
        tasks = list(getattr(self, "_tasks", ()))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        """Work that must not hold up the AS transaction (answers, uploads)."""
        task: asyncio.Future[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._done(done, name))

    def _done(self, task: asyncio.Future[Any], name: str) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("%s failed", name, exc_info=task.exception())

    # --- Matrix -> camera ------------------------------------------------------------------

    async def on_event(self, event: dict[str, Any]) -> None:
        room_id, etype = event.get("room_id"), event.get("type")
        device = self.devices.get(room_id) if isinstance(room_id, str) else None
        sender = event.get("sender")
        if device is None or not isinstance(sender, str):
            return
        if etype in CALL_EVENTS:
            await self._on_call_event(device, event)
        elif etype == "m.room.message":
            content = event.get("content") or {}
            body = content.get("body")
            if content.get("msgtype") == "m.text" and isinstance(body, str):
                await self._on_command(device, event, body.strip().lower())

    async def _on_call_event(self, device: CameraDevice, event: dict[str, Any]) -> None:
        if event["type"] == "m.call.invite":
            problem = invite_problem(event, device.intent.user_id, now_ms())
            if problem is not None:
                self.log.info("camera %s: ignoring invite from %s: %s", device.config.name,
                              event["sender"], problem)
                return
            if not await self.may_actuate(device.room_id, event["sender"]):
                self._spawn(self._refuse_call(device, event), "refuse call")
                return
        device.calls.on_event(event)

    async def _refuse_call(self, device: CameraDevice, event: dict[str, Any]) -> None:
        await device.calls.decline(event)
        await self.refuse(device.room_id, event["sender"], "call this camera")

    async def _on_command(self, device: CameraDevice, event: dict[str, Any], text: str) -> None:
        room_id, sender = device.room_id, event["sender"]
        if text == "!snapshot":
            if await self.may_actuate(room_id, sender):
                self._spawn(self._snapshot(device, event.get("event_id")), "snapshot")
            else:
                self._spawn(self.refuse(room_id, sender, "take snapshots"), "refuse snapshot")
        elif text == "!status":
            self._spawn(device.intent.send_notice(room_id, self._status(device)), "status")
        elif text == "!help":
            self._spawn(device.intent.send_notice(room_id, HELP), "help")

    def _status(self, device: CameraDevice) -> str:
        config, camera = device.config, device.camera
        motion = config.motion.settings
        parts = [f"{config.name}: {describe(config.source)}",
                 f"{device.calls.active} call(s) of at most {config.call.max_viewers}",
                 "capturing" if camera.capturing else "idle",
                 f"motion detection on (threshold {motion.threshold})" if motion.enabled
                 else "motion detection off"]
        return "; ".join(parts)

    # --- camera -> Matrix ------------------------------------------------------------------

    async def _post_picture(self, device: CameraDevice, frame: VideoFrame,
                            label: str) -> tuple[str, dict[str, Any]]:
        """Upload the frame as JPEG; (mxc URI, m.image info)."""
        jpeg = await asyncio.to_thread(encode_jpeg, frame)
        filename = f"{device.config.name}-{time.strftime('%Y%m%d-%H%M%S')}-{label}.jpg"
        url = await device.intent.upload(jpeg.data, "image/jpeg", filename)
        info = {"mimetype": "image/jpeg", "w": jpeg.width, "h": jpeg.height,
                "size": len(jpeg.data)}
        return url, {"filename": filename, "info": info}

    async def _snapshot(self, device: CameraDevice, reply_to: object) -> None:
        try:
            frame = await device.camera.grab()
        except CameraError as exc:
            await device.intent.send_notice(device.room_id, f"No snapshot: {exc}")
            return
        url, meta = await self._post_picture(device, frame, "snapshot")
        content: dict[str, Any] = {"msgtype": "m.image", "body": meta["filename"], "url": url,
                                   **meta}
        if isinstance(reply_to, str):
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        await device.intent.send_event(device.room_id, "m.room.message", content)

    async def _report_motion(self, device: CameraDevice, score: float,
                             frame: VideoFrame) -> None:
        url, meta = await self._post_picture(device, frame, "motion")
        settings = device.config.motion.settings
        await device.intent.send_event(device.room_id, MOTION_EVENT, {
            "camera": device.config.name, "score": basis_points(score),
            "threshold": basis_points(settings.threshold), "ts": now_ms(), "url": url,
            "info": meta["info"]})
        if device.config.motion.image:
            await device.intent.send_event(device.room_id, "m.room.message", {
                "msgtype": "m.image", "body": f"Motion on {device.config.name} "
                                              f"(score {score:.2f})", "url": url, **meta})
