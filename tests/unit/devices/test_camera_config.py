"""devices/camera/config.py + CameraService.validate: every bad key is named."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from devices.camera.config import parse_cameras
from devices.camera.defaults import simulated_section
from devices.camera.device import CameraService
from devices.common.config import DeviceConfigError, ServiceConfig, load_service_config


def load(tmp_path: Path, section: dict[str, Any]) -> ServiceConfig:
    raw = {
        "homeserver": {"url": "http://127.0.0.1:8008", "server_name": "test.local"},
        "owners": ["@owner:test.local"],
        "camera": {"appservice": {"id": "edgehs_camera", "listen": "127.0.0.1:9103",
                                  "as_token": "a" * 20, "hs_token": "h" * 20}, **section},
    }
    path = tmp_path / "devices.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_service_config(path, "camera")


def camera(**fields: Any) -> dict[str, Any]:
    return {"cameras": [{"name": "front", **fields}]}


def test_defaults_validate_and_parse(tmp_path: Path) -> None:
    config = load(tmp_path, simulated_section(tmp_path))
    CameraService.validate(config)
    (front,) = parse_cameras(config.section)
    assert front.name == "front" and front.source.kind == "test_pattern"
    assert (front.source.width, front.source.height, front.source.fps) == (320, 240, 15)
    assert front.call.ice_hosts == ("127.0.0.1",) and front.call.ice_servers == ()
    assert not front.motion.settings.enabled


def test_full_camera(tmp_path: Path) -> None:
    config = load(tmp_path, {"cameras": [
        {"name": "door", "source": {"kind": "v4l2", "width": 640, "height": 480, "fps": 10,
                                    "input_format": "mjpeg"},
         "ice_hosts": ["192.168.1.20", "eth0", "fe80::1"], "ice_servers": ["stun:s.lan:3478"],
         "max_viewers": 2, "connect_timeout": 10,
         "motion": {"enabled": True, "threshold": 0.1, "min_interval": 5, "image": True}},
        {"name": "clip", "source": {"kind": "file", "path": "clips/a.mp4", "loop": False}},
    ]})
    door, clip = parse_cameras(config.section)
    assert door.source.path == Path("/dev/video0") and door.source.input_format == "mjpeg"
    assert door.call.max_viewers == 2 and door.call.connect_timeout == 10.0
    assert door.motion.settings.threshold == 0.1 and door.motion.image
    assert clip.source.path == tmp_path / "clips/a.mp4" and not clip.source.loop


@pytest.mark.parametrize(("section", "key", "words"), [
    ({}, "camera.cameras", "is required"),
    ({"cameras": []}, "camera.cameras", "at least one"),
    ({"cameras": [], "lens": 1}, "camera.lens", "unknown key"),
    ({"cameras": ["front"]}, "camera.cameras[0]", "must be a mapping"),
    (camera(name="Front!"), "camera.cameras[0].name", "lower-case"),
    ({"cameras": [{"name": "a"}, {"name": "a"}]}, "camera.cameras[1].name", "duplicate"),
    (camera(zoom=2), "camera.cameras[0].zoom", "unknown key"),
    (camera(source={"kind": "usb"}), "camera.cameras[0].source.kind", "must be one of"),
    (camera(source={"kind": "file"}), "camera.cameras[0].source.path", "is required"),
    (camera(source={"kind": "test_pattern", "path": "x"}), "camera.cameras[0].source.path",
     "unknown key"),
    (camera(source={"width": 321}), "camera.cameras[0].source.width", "even"),
    (camera(source={"fps": 0}), "camera.cameras[0].source.fps", "at least 1"),
    (camera(source={"height": "tall"}), "camera.cameras[0].source.height", "integer"),
    (camera(source={"pattern": "zebra"}), "camera.cameras[0].source.pattern", "one of"),
    (camera(source={"kind": "v4l2", "input_format": "MJPEG!"}),
     "camera.cameras[0].source.input_format", "FFmpeg"),
    (camera(ice_hosts="127.0.0.1"), "camera.cameras[0].ice_hosts", "must be a list"),
    (camera(ice_hosts=["0.0.0.0"]), "camera.cameras[0].ice_hosts[0]", "address of this"),
    (camera(ice_hosts=["10.0.0.1", "not a host"]), "camera.cameras[0].ice_hosts[1]",
     "interface name"),
    (camera(ice_servers=["stun.l.google.com"]), "camera.cameras[0].ice_servers[0]", "stun:"),
    (camera(max_viewers=0), "camera.cameras[0].max_viewers", "at least 1"),
    (camera(motion={"enabled": "yes"}), "camera.cameras[0].motion.enabled", "true or false"),
    (camera(motion={"threshold": 2}), "camera.cameras[0].motion.threshold", "at most 1"),
    (camera(motion={"sensitivity": 2}), "camera.cameras[0].motion.sensitivity", "unknown key"),
])
def test_bad_config_names_the_key(tmp_path: Path, section: dict[str, Any], key: str,
                                  words: str) -> None:
    config = load(tmp_path, section)
    with pytest.raises(DeviceConfigError) as caught:
        CameraService.validate(config)
    assert caught.value.key == key, str(caught.value)
    assert words in caught.value.reason
    assert str(caught.value).startswith(f"devices.yaml: {key}: ")
