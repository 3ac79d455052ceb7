"""Motion detection by frame differencing on small grayscale frames.

A watcher holds one view of the camera (so the capture stays open while detection is enabled),
looks at ``sample_fps`` frames a second scaled down to 80x60 gray, and scores each against the
previous one: the fraction of pixels whose brightness changed by more than ``pixel_delta``.
A score >= ``threshold`` is motion; it is reported at most once per ``min_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
from aiortc.mediastreams import MediaStreamError
from av.video.frame import VideoFrame

from .driver import Camera, CameraError, gray_thumbnail

log = logging.getLogger(__name__)

RETRY_MIN, RETRY_MAX = 2.0, 60.0  # seconds between attempts to reopen a failed capture


@dataclass(frozen=True)
class MotionSettings:
    enabled: bool = False
    threshold: float = 0.02  # fraction of the picture that changed, 0 < threshold <= 1
    pixel_delta: int = 25  # brightness change (0-255) for a pixel to count as changed
    min_interval: float = 30.0  # seconds between two reports
    sample_fps: float = 2.0  # frames looked at per second


def change_score(previous: np.ndarray, current: np.ndarray, pixel_delta: int) -> float:
    """The fraction of pixels whose value differs by more than ``pixel_delta``."""
    diff = np.abs(current.astype(np.int16) - previous.astype(np.int16))
    return float(np.count_nonzero(diff > pixel_delta)) / diff.size


class MotionDetector:
    """Pure: feed it gray frames with their time; it says when to report motion."""

    def __init__(self, settings: MotionSettings) -> None:
        self.settings = settings
        self._previous: np.ndarray | None = None
        self._last_report: float | None = None

    def feed(self, gray: np.ndarray, now: float) -> float | None:
        """The score when this frame is motion to report, else None."""
        previous, self._previous = self._previous, gray
        if previous is None or previous.shape != gray.shape:
            return None
        score = change_score(previous, gray, self.settings.pixel_delta)
        if score < self.settings.threshold:
            return None
        if self._last_report is not None and now - self._last_report < self.settings.min_interval:
            return None
        self._last_report = now
        return score


OnMotion = Callable[[float, VideoFrame], Awaitable[None]]


class MotionWatcher:
    """Runs a MotionDetector over a camera until stopped; ``on_motion(score, frame)``."""

    def __init__(self, camera: Camera, settings: MotionSettings, on_motion: OnMotion) -> None:
        self.camera, self.settings, self.on_motion = camera, settings, on_motion
        self.detector = MotionDetector(settings)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="motion")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = RETRY_MIN
        while True:
            try:
                view = self.camera.open_view()
            except CameraError as exc:
                log.warning("motion detection waits for the camera: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            try:
                while True:
                    await asyncio.sleep(1.0 / self.settings.sample_fps)
                    frame = await view.recv()
                    assert isinstance(frame, VideoFrame)
                    delay = RETRY_MIN
                    score = self.detector.feed(gray_thumbnail(frame), loop.time())
                    if score is not None:
                        try:
                            await self.on_motion(score, frame)
                        except Exception:
                            log.exception("reporting motion failed")
            except MediaStreamError:
                log.warning("motion detection: the capture ended; reopening")
            finally:
                self.camera.release(view)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
