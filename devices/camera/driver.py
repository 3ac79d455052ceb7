"""Video capture: the only module of the camera service that touches capture libraries.

A camera is one *capture* (a V4L2 device or a video file through aiortc's ``MediaPlayer``, or a
generated test pattern) shared by every viewer through one ``MediaRelay``: each call, each
snapshot and the motion detector gets its own relay proxy, the capture runs once. The capture is
opened by the first view and closed when the last view is released, so an idle camera costs no
CPU (and frees /dev/video0).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaPlayer, MediaRelay
from aiortc.mediastreams import MediaStreamError
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter
from PIL import Image, ImageFont

log = logging.getLogger(__name__)

SOURCE_KINDS = ("test_pattern", "v4l2", "file")
PATTERNS = ("bars", "still")
VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
# SMPTE-like colour bars (RGB), left to right.
BARS: tuple[tuple[int, int, int], ...] = (
    (192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0),
    (192, 0, 192), (192, 0, 0), (0, 0, 192), (16, 16, 16),
)


class CameraError(Exception):
    """The capture could not be opened or delivered no frame (a sentence for the room)."""


@dataclass(frozen=True)
class SourceConfig:
    """Where frames come from: ``camera.cameras[i].source`` in devices.yaml."""

    kind: str = "test_pattern"  # one of SOURCE_KINDS
    path: Path | None = None  # the V4L2 device or the video file
    width: int = 320
    height: int = 240
    fps: int = 15
    pattern: str = "bars"  # test_pattern: "bars" scroll (always motion), "still" does not
    input_format: str | None = None  # v4l2: e.g. "mjpeg" or "yuyv422"
    loop: bool = True  # file: start again at the end


class PatternTrack(MediaStreamTrack):
    """Colour bars (scrolling for ``pattern="bars"``) with the wall-clock time, at ``fps``."""

    kind = "video"

    def __init__(self, width: int, height: int, fps: int, pattern: str = "bars") -> None:
        super().__init__()
        self.width, self.height, self.fps, self.pattern = width, height, fps, pattern
        bar_width = max(1, width // len(BARS))
        period = np.repeat(np.array(BARS, dtype=np.uint8), bar_width, axis=0)  # (period, 3)
        self._period = period.shape[0]
        row = np.resize(period, (width + self._period, 3))  # one period more, to scroll over
        self._strip = np.ascontiguousarray(np.broadcast_to(row, (height, *row.shape)))
        self._speed = max(1, width // (2 * fps))  # pixels per frame: half the width a second
        self._font = ImageFont.load_default(size=max(8, height // 16))
        self._text_cache: tuple[str, np.ndarray] | None = None
        self._index = 0
        self._start: float | None = None

    def render(self, index: int, now: float) -> np.ndarray:
        """Frame ``index`` as an RGB array (height, width, 3); ``now`` is the printed time."""
        offset = (index * self._speed) % self._period if self.pattern == "bars" else 0
        image = self._strip[:, offset:offset + self.width].copy()
        mask = self._text_mask(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)))
        text_h, text_w = min(mask.shape[0], self.height), min(mask.shape[1], self.width)
        top = self.height - text_h
        region = image[top:, :text_w]
        region[:] = 0
        region[mask[:text_h, :text_w]] = 255
        return image

    def _text_mask(self, text: str) -> np.ndarray:
        """The text as a boolean mask with a 2-pixel margin (rendered once per second)."""
        if self._text_cache is None or self._text_cache[0] != text:
            from PIL import ImageDraw  # Pillow renders the glyphs; numpy blits them

            _, _, right, bottom = self._font.getbbox(text)
            canvas = Image.new("L", (int(right) + 4, int(bottom) + 4), 0)
            ImageDraw.Draw(canvas).text((2, 2), text, fill=255, font=self._font)
            self._text_cache = (text, np.asarray(canvas) > 127)
        return self._text_cache[1]

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        due = self._start + self._index / self.fps
        delay = due - loop.time()
        if delay < -1.0:  # the loop stalled: restart the clock rather than burst frames
            self._start, self._index, delay = loop.time(), 0, 0.0
        if delay > 0:
            await asyncio.sleep(delay)
        if self.readyState != "live":
            raise MediaStreamError
        frame = VideoFrame.from_ndarray(self.render(self._index, time.time()), format="rgb24")
        frame.pts = int(self._index * VIDEO_CLOCK_RATE / self.fps)
        frame.time_base = VIDEO_TIME_BASE
        self._index += 1
        return frame


def open_source(source: SourceConfig) -> MediaStreamTrack:
    """A live video track for ``source``; raises CameraError naming the device or file."""
    if source.kind == "test_pattern":
        return PatternTrack(source.width, source.height, source.fps, source.pattern)
    assert source.path is not None, "v4l2 and file sources have a path"
    try:
        if source.kind == "v4l2":
            options = {"video_size": f"{source.width}x{source.height}",
                       "framerate": str(source.fps)}
            if source.input_format:
                options["input_format"] = source.input_format
            player = MediaPlayer(str(source.path), format="v4l2", options=options)
        else:
            player = MediaPlayer(str(source.path), loop=source.loop)
    except (av.FFmpegError, OSError, AssertionError) as exc:
        raise CameraError(f"cannot open {source.path}: {exc}") from exc
    if player.video is None:
        raise CameraError(f"{source.path} has no video stream")
    return player.video


class CaptureTrack(MediaStreamTrack):
    """Wraps the opened source so that ``stop()`` also ends a ``recv()`` in progress.

    MediaRelay reads its source in a task of its own; a stopped MediaPlayer track would leave
    that task waiting forever, so stop() cancels the inner read and recv() ends with
    MediaStreamError, which makes the relay end every proxy and forget the source.

    Frames leave as yuv420p, converted here once: every viewer's encoder gets the SAME frame
    object in its own worker thread, and an encoder that had to convert it would use the
    frame's one cached swscale context from several threads at once (a crash with two calls).
    """

    kind = "video"

    def __init__(self, inner: MediaStreamTrack) -> None:
        super().__init__()
        self._inner = inner
        self._pending: asyncio.Future[Any] | None = None
        self._converter = VideoReformatter()

    async def recv(self) -> Any:  # a Frame (or a Packet for a non-decoding source)
        if self.readyState != "live":
            raise MediaStreamError
        self._pending = asyncio.ensure_future(self._inner.recv())
        try:
            frame = await self._pending
        except asyncio.CancelledError:
            if self.readyState == "live":
                raise  # our own task is being cancelled
            raise MediaStreamError from None  # stop() cancelled the read
        except MediaStreamError:
            self.stop()  # the source itself ended (file end, camera unplugged)
            raise
        finally:
            self._pending = None
        if isinstance(frame, VideoFrame) and frame.format.name != "yuv420p":
            frame = self._converter.reformat(frame, format="yuv420p")
        return frame

    def stop(self) -> None:
        super().stop()
        if self._pending is not None:
            self._pending.cancel()
        self._inner.stop()


class Camera:
    """One capture shared by any number of views (calls, snapshots, motion detection)."""

    def __init__(self, source: SourceConfig,
                 opener: Callable[[SourceConfig], MediaStreamTrack] = open_source) -> None:
        self.source = source
        self._opener = opener
        self._relay = MediaRelay()
        self._capture: CaptureTrack | None = None
        self._views: set[MediaStreamTrack] = set()

    @property
    def viewers(self) -> int:
        return len(self._views)

    @property
    def capturing(self) -> bool:
        return self._capture is not None and self._capture.readyState == "live"

    def open_view(self) -> MediaStreamTrack:
        """A new relay proxy of the capture (opened if needed); release it with release()."""
        if not self.capturing:
            self._capture = CaptureTrack(self._opener(self.source))
            log.info("capture opened: %s", describe(self.source))
        assert self._capture is not None
        view = self._relay.subscribe(self._capture, buffered=False)
        self._views.add(view)
        return view

    def release(self, view: MediaStreamTrack) -> None:
        """Stop ``view``; the capture closes with the last view."""
        if view not in self._views:
            return
        self._views.discard(view)
        view.stop()
        if not self._views and self._capture is not None:
            self._capture.stop()
            self._capture = None
            log.info("capture closed: no viewer left")

    async def grab(self, timeout: float = 10.0) -> VideoFrame:
        """One current frame (for a snapshot); raises CameraError when none comes."""
        view = self.open_view()
        try:
            frame = await asyncio.wait_for(view.recv(), timeout)
        except (TimeoutError, MediaStreamError) as exc:
            raise CameraError(f"no frame from {describe(self.source)}") from exc
        finally:
            self.release(view)
        assert isinstance(frame, VideoFrame)
        return frame

    def close(self) -> None:
        for view in list(self._views):
            self.release(view)
        if self._capture is not None:
            with contextlib.suppress(Exception):
                self._capture.stop()
            self._capture = None


def describe(source: SourceConfig) -> str:
    """``test_pattern 320x240@15`` or ``v4l2 /dev/video0 640x480@15``."""
    where = f" {source.path}" if source.path is not None else ""
    return f"{source.kind}{where} {source.width}x{source.height}@{source.fps}"


@dataclass(frozen=True)
class Jpeg:
    data: bytes
    width: int
    height: int


def encode_jpeg(frame: VideoFrame, quality: int = 85) -> Jpeg:
    """The frame as a baseline JPEG (Pillow). Runs in a worker thread: it converts with a
    swscale context of its own, never the shared frame's cached one."""
    rgb = VideoReformatter().reformat(frame, format="rgb24")
    image: Image.Image = rgb.to_image()  # type: ignore[no-untyped-call]
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return Jpeg(buf.getvalue(), image.width, image.height)


def gray_thumbnail(frame: VideoFrame, width: int = 80, height: int = 60) -> np.ndarray:
    """The frame scaled down to ``width`` x ``height`` grayscale (uint8), for motion detection."""
    small = VideoReformatter().reformat(frame, width=width, height=height, format="gray")
    return np.asarray(small.to_ndarray(), dtype=np.uint8)
