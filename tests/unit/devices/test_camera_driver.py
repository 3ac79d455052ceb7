"""devices/camera/driver.py: the test pattern, the shared capture, JPEG and thumbnails."""

import asyncio
import io
import time
from pathlib import Path

import numpy as np
import pytest
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.video.frame import VideoFrame
from PIL import Image

from devices.camera.driver import (
    Camera,
    CameraError,
    PatternTrack,
    SourceConfig,
    describe,
    encode_jpeg,
    gray_thumbnail,
    open_source,
)


def test_pattern_frames_have_the_configured_size_and_scroll() -> None:
    track = PatternTrack(320, 240, 15, "bars")
    now = time.time()
    first, second = track.render(0, now), track.render(1, now)
    assert first.shape == (240, 320, 3) and first.dtype == np.uint8
    assert not np.array_equal(first, second)  # the bars move
    still = PatternTrack(320, 240, 15, "still")
    assert np.array_equal(still.render(0, now), still.render(7, now))
    corner = first[-20:, :80]  # the time is printed bottom left
    assert corner.max() == 255 and corner.min() == 0


async def test_pattern_track_paces_frames_and_ends_when_stopped() -> None:
    track = PatternTrack(160, 120, 10)
    frames = [await track.recv() for _ in range(3)]
    assert [f.pts for f in frames] == [0, 9000, 18000]  # 90 kHz clock at 10 fps
    assert (frames[0].width, frames[0].height) == (160, 120)
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_views_share_one_capture_that_closes_with_the_last_view() -> None:
    opened: list[MediaStreamTrack] = []

    def opener(source: SourceConfig) -> MediaStreamTrack:
        opened.append(open_source(source))
        return opened[-1]

    camera = Camera(SourceConfig(width=160, height=120, fps=15), opener)
    one, two = camera.open_view(), camera.open_view()
    first, second = await one.recv(), await two.recv()
    assert isinstance(first, VideoFrame) and isinstance(second, VideoFrame)
    assert (first.width, second.height) == (160, 120)
    assert len(opened) == 1 and camera.viewers == 2 and camera.capturing
    camera.release(one)
    assert camera.capturing
    camera.release(two)
    camera.release(two)  # twice is harmless
    assert not camera.capturing and camera.viewers == 0
    assert opened[0].readyState == "ended"
    frame = await camera.grab()  # opens a new capture for one frame
    assert len(opened) == 2 and frame.width == 160 and not camera.capturing
    await asyncio.sleep(0)  # the relay's reader task sees the end
    camera.close()


async def test_missing_device_is_a_camera_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "video9"
    with pytest.raises(CameraError, match="video9"):
        open_source(SourceConfig(kind="v4l2", path=missing))
    camera = Camera(SourceConfig(kind="file", path=tmp_path / "nope.mp4"))
    with pytest.raises(CameraError, match=r"nope\.mp4"):
        await camera.grab()
    assert camera.viewers == 0


async def test_file_source_plays_a_video_file(tmp_path: Path) -> None:
    import av

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        pattern = PatternTrack(64, 48, 10)
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(pattern.render(i, time.time()), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    camera = Camera(SourceConfig(kind="file", path=path, width=64, height=48, fps=10))
    frame = await camera.grab()
    assert (frame.width, frame.height) == (64, 48)
    assert describe(camera.source).startswith("file ")


def test_jpeg_and_thumbnail() -> None:
    import av

    pattern = PatternTrack(320, 240, 15)
    frame = av.VideoFrame.from_ndarray(pattern.render(0, time.time()), format="rgb24")
    jpeg = encode_jpeg(frame)
    assert (jpeg.width, jpeg.height) == (320, 240)
    image = Image.open(io.BytesIO(jpeg.data))
    assert image.format == "JPEG" and image.size == (320, 240)
    gray = gray_thumbnail(frame)
    assert gray.shape == (60, 80) and gray.dtype == np.uint8
