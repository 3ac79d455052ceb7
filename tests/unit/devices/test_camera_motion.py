"""devices/camera/motion.py: frame differencing and the report interval."""

import asyncio

import numpy as np
from av.video.frame import VideoFrame

from devices.camera.driver import Camera, SourceConfig
from devices.camera.motion import MotionDetector, MotionSettings, MotionWatcher, change_score


def test_change_score_counts_pixels_beyond_the_delta() -> None:
    a = np.zeros((60, 80), np.uint8)
    b = a.copy()
    b[:6, :] = 200  # a tenth of the picture
    b[10, :] = 10   # below the delta
    assert change_score(a, b, 25) == 0.1
    assert change_score(a, a, 25) == 0.0


def test_detector_reports_motion_once_per_interval() -> None:
    detector = MotionDetector(MotionSettings(enabled=True, threshold=0.05, min_interval=10))
    dark, light = np.zeros((60, 80), np.uint8), np.full((60, 80), 255, np.uint8)
    assert detector.feed(dark, 0.0) is None  # nothing to compare with
    assert detector.feed(dark, 1.0) is None  # still
    assert detector.feed(light, 2.0) == 1.0  # everything changed
    assert detector.feed(dark, 3.0) is None  # within min_interval
    assert detector.feed(light, 12.5) == 1.0
    assert detector.feed(light, 30.0) is None  # still again


async def test_watcher_reports_the_scrolling_pattern_and_not_the_still_one() -> None:
    async def watch(pattern: str) -> list[float]:
        camera = Camera(SourceConfig(width=160, height=120, fps=10, pattern=pattern))
        seen: list[float] = []
        done = asyncio.Event()

        async def on_motion(score: float, frame: VideoFrame) -> None:
            assert frame.width == 160
            seen.append(score)
            done.set()

        watcher = MotionWatcher(camera, MotionSettings(
            enabled=True, threshold=0.05, min_interval=0, sample_fps=10), on_motion)
        watcher.start()
        watcher.start()  # idempotent
        if pattern == "bars":
            await asyncio.wait_for(done.wait(), 10)
        else:
            for _ in range(5):  # five samples, none of them motion
                await camera_frames(camera)
        await watcher.stop()
        assert camera.viewers == 0 and not camera.capturing
        return seen

    assert (await watch("bars"))[0] > 0.05
    assert await watch("still") == []


async def camera_frames(camera: Camera) -> None:
    view = camera.open_view()
    try:
        await view.recv()
    finally:
        camera.release(view)
