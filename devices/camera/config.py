"""The ``camera:`` section of devices.yaml, checked once before anything starts.

```yaml
camera:
  appservice: {...}                  # the kit's part
  cameras:
    - name: front                    # -> @camera_front:SERVER in #camera_front:SERVER
      source: {kind: test_pattern, width: 320, height: 240, fps: 15, pattern: bars}
      # source: {kind: v4l2, path: /dev/video0, width: 640, height: 480, fps: 15,
      #          input_format: mjpeg}
      # source: {kind: file, path: clips/door.mp4, loop: true}
      ice_hosts: [127.0.0.1]         # addresses or interface names offered for ICE; [] = all
      ice_servers: []                # STUN/TURN URLs; none by default (LAN)
      max_viewers: 4                 # calls at once; more are answered "user_busy"
      connect_timeout: 30            # seconds from the answer until media must flow
      motion: {enabled: false, threshold: 0.02, pixel_delta: 25, min_interval: 30,
               sample_fps: 2, image: false}
```
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from devices.common.config import Section

from .call import CallSettings
from .driver import PATTERNS, SOURCE_KINDS, SourceConfig
from .motion import MotionSettings

CAMERA_KEYS = ("name", "source", "ice_hosts", "ice_servers", "max_viewers", "connect_timeout",
               "motion")
SOURCE_KEYS = {
    "test_pattern": ("kind", "width", "height", "fps", "pattern"),
    "v4l2": ("kind", "path", "width", "height", "fps", "input_format"),
    "file": ("kind", "path", "width", "height", "fps", "loop"),
}
MOTION_KEYS = ("enabled", "threshold", "pixel_delta", "min_interval", "sample_fps", "image")
INTERFACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,14}$")
ICE_URL_RE = re.compile(r"^(stun|stuns|turn|turns):[^\s]+$")
INPUT_FORMAT_RE = re.compile(r"^[a-z0-9_]{1,32}$")


@dataclass(frozen=True)
class MotionConfig:
    settings: MotionSettings = field(default_factory=MotionSettings)
    image: bool = False  # also post the snapshot as an m.image that every client shows


@dataclass(frozen=True)
class CameraConfig:
    name: str
    source: SourceConfig = field(default_factory=SourceConfig)
    call: CallSettings = field(default_factory=CallSettings)
    motion: MotionConfig = field(default_factory=MotionConfig)


def parse_cameras(section: Section) -> list[CameraConfig]:
    """Every camera of the service's section; DeviceConfigError naming the bad key."""
    section.check_keys(["cameras"])
    cameras = [parse_camera(item) for item in section.sections("cameras")]
    if not cameras:
        raise section.error("cameras", "must list at least one camera")
    seen: set[str] = set()
    for i, camera in enumerate(cameras):
        if camera.name in seen:
            raise section.error(f"cameras[{i}].name", f"duplicate camera name {camera.name!r}")
        seen.add(camera.name)
    return cameras


def parse_camera(item: Section) -> CameraConfig:
    item.check_keys(CAMERA_KEYS)
    name = item.device_name("camera")
    source = parse_source(item.section("source", default_empty=True))
    hosts = item.str_list("ice_hosts", [])
    for i, host in enumerate(hosts):
        check_ice_host(item, f"ice_hosts[{i}]", host)
    servers = item.str_list("ice_servers", [])
    for i, url in enumerate(servers):
        if not ICE_URL_RE.match(url):
            raise item.error(f"ice_servers[{i}]", f"must be a stun: or turn: URL like "
                                                  f"stun:stun.example.org:3478, not {url!r}")
    call = CallSettings(
        ice_hosts=tuple(hosts), ice_servers=tuple(servers),
        max_viewers=item.int("max_viewers", CallSettings.max_viewers, min=1, max=32),
        connect_timeout=item.float("connect_timeout", CallSettings.connect_timeout, min=1,
                                   max=600))
    return CameraConfig(name, source, call, parse_motion(item.section("motion",
                                                                      default_empty=True)))


def check_ice_host(item: Section, key: str, host: str) -> None:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        if not INTERFACE_RE.match(host):
            raise item.error(key, f"must be an IP address or a network interface name, "
                                  f"not {host!r}") from None
        return
    if addr.is_unspecified or addr.is_multicast:
        raise item.error(key, f"must be an address of this machine, not {host!r}")


def parse_source(source: Section) -> SourceConfig:
    kind = source.choice("kind", SOURCE_KINDS, "test_pattern")
    source.check_keys(SOURCE_KEYS[kind])
    defaults = SourceConfig()
    width = source.int("width", defaults.width, min=16, max=4096)
    height = source.int("height", defaults.height, min=16, max=4096)
    if width % 2 or height % 2:
        bad = "width" if width % 2 else "height"
        raise source.error(bad, "must be even (video encoders use 4:2:0 chroma)")
    fps = source.int("fps", defaults.fps, min=1, max=60)
    if kind == "test_pattern":
        return SourceConfig(kind, None, width, height, fps,
                            pattern=source.choice("pattern", PATTERNS, "bars"))
    path = source.path("path", "/dev/video0") if kind == "v4l2" else source.path("path")
    if kind == "v4l2":
        input_format = source.str("input_format", "", allow_empty=True) or None
        if input_format is not None and not INPUT_FORMAT_RE.match(input_format):
            raise source.error("input_format", f"must be an FFmpeg pixel or codec name like "
                                               f"mjpeg or yuyv422, not {input_format!r}")
        return SourceConfig(kind, path, width, height, fps, input_format=input_format)
    return SourceConfig(kind, path, width, height, fps, loop=source.bool("loop", True))


def parse_motion(motion: Section) -> MotionConfig:
    motion.check_keys(MOTION_KEYS)
    defaults = MotionSettings()
    settings = MotionSettings(
        enabled=motion.bool("enabled", False),
        threshold=motion.float("threshold", defaults.threshold, min=0.0001, max=1),
        pixel_delta=motion.int("pixel_delta", defaults.pixel_delta, min=1, max=254),
        min_interval=motion.float("min_interval", defaults.min_interval, min=0, max=86400),
        sample_fps=motion.float("sample_fps", defaults.sample_fps, min=0.1, max=30))
    return MotionConfig(settings, image=motion.bool("image", False))
