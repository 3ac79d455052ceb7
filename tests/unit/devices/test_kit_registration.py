"""Registrations and ``python -m devices init``/``registration`` (devices/common/registration.py,
devices/__main__.py): the files load with edgehs's own registration loader, and the names a
DeviceService uses are exactly the ones its registration claims."""

import stat
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from devices.__main__ import main
from devices.common.config import load_service_config
from devices.common.device import DeviceService
from devices.common.intent import HomeserverClient, creators_have_infinite_power
from devices.common.registration import (
    devices_config,
    registration_dict,
    write_devices_config,
    write_registration,
)
from edgehs.config import ConfigError
from edgehs.service.appservice.registration import load_registrations, read_registration_file

SERVER = "edgehs.local"


@pytest.fixture
def fake_services(monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """devices.<svc>.defaults modules for midi, gpio, camera and "extra" (the real ones may not
    exist yet); records the base_dir each was given."""
    given: dict[str, Path] = {}
    for svc in ("midi", "gpio", "camera", "extra"):
        defaults = types.ModuleType(f"devices.{svc}.defaults")

        def simulated_section(base_dir: Path, svc: str = svc) -> dict[str, Any]:
            given[svc] = base_dir
            return {"things": [f"{svc}-sim"]}
        defaults.simulated_section = simulated_section  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, f"devices.{svc}", types.ModuleType(f"devices.{svc}"))
        monkeypatch.setitem(sys.modules, f"devices.{svc}.defaults", defaults)
    return given


def init(tmp_path: Path, *args: str) -> int:
    return main(["init", str(tmp_path / "dev"), "--server-name", SERVER, "--homeserver",
                 "http://127.0.0.1:8008", *args])


def test_init_writes_config_and_loadable_registrations(
        tmp_path: Path, fake_services: dict[str, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    assert init(tmp_path, "--owner", "@demo:edgehs.local", "--port-base", "20000") == 0
    out = capsys.readouterr().out
    folder = tmp_path / "dev"
    raw = yaml.safe_load((folder / "devices.yaml").read_text())
    assert raw["homeserver"] == {"url": "http://127.0.0.1:8008", "server_name": SERVER}
    assert raw["owners"] == ["@demo:edgehs.local"] and raw["actuate_power"] == 50
    assert fake_services == {"midi": folder, "gpio": folder, "camera": folder}
    listens = {svc: raw[svc]["appservice"]["listen"] for svc in ("midi", "gpio", "camera")}
    assert listens == {"midi": "127.0.0.1:20000", "gpio": "127.0.0.1:20001",
                       "camera": "127.0.0.1:20002"}
    assert raw["midi"]["things"] == ["midi-sim"]
    paths = [folder / "appservices" / f"edgehs_{svc}.yaml" for svc in ("midi", "gpio", "camera")]
    for path in [folder / "devices.yaml", *paths]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path  # tokens inside
        assert str(path) in out or path.name == "devices.yaml"
    services = load_registrations(paths, SERVER)  # edgehs's loader: valid and unique
    midi = services[0]
    assert (midi.id, midi.url, midi.sender_localpart) == ("edgehs_midi", "http://127.0.0.1:20000",
                                                          "midi")
    assert midi.as_token == raw["midi"]["appservice"]["as_token"]
    assert midi.hs_token == raw["midi"]["appservice"]["hs_token"]
    assert not midi.rate_limited and not midi.receive_ephemeral
    assert len({s.as_token for s in services} | {s.hs_token for s in services}) == 6


def test_default_ports_do_not_depend_on_the_chosen_services(
        tmp_path: Path, fake_services: dict[str, Path]) -> None:
    assert init(tmp_path, "--services", "camera,extra") == 0
    raw = yaml.safe_load((tmp_path / "dev" / "devices.yaml").read_text())
    assert raw["camera"]["appservice"]["listen"] == "127.0.0.1:9103"
    assert raw["extra"]["appservice"]["listen"] == "127.0.0.1:9105"
    assert "midi" not in raw and list(fake_services) == ["camera", "extra"]


def test_registration_namespaces_match_the_device_names(tmp_path: Path) -> None:
    raw = devices_config(SERVER, "http://127.0.0.1:8008", [], {"midi": {}, "gpio": {}})
    path = write_devices_config(tmp_path, raw)
    config = load_service_config(path, "midi")
    service = read_registration_file(config.appservice.registration, SERVER)

    class Midi(DeviceService):
        service = "midi"

    device = Midi(config, HomeserverClient("http://127.0.0.1:8008", "t", SERVER))
    user, alias = device.user_id_for("keys"), device.alias_for("keys")
    assert (user, alias) == ("@midi_keys:edgehs.local", "#midi_keys:edgehs.local")
    assert device.alias_localpart("keys") == "midi_keys"
    assert service.exclusive_user(user) and service.exclusive_alias(alias)
    assert service.exclusive_user("@midi:edgehs.local")  # the sender
    assert device.is_own_user("@midi:edgehs.local") and device.is_own_user(user)
    for other in ("@gpio_x:edgehs.local", "@midi_x:other.local", "@midifan:edgehs.local",
                  "@midi_x:edgehs.local.evil",
                  "@midi:edgehs.localx"):
        assert not service.owns_user(other), other
        assert not device.is_own_user(other), other
    assert not service.owns_alias("#gpio_x:edgehs.local")
    assert not service.owns_alias("#midi_x:edgehsXlocal")  # the dot is escaped


def test_registration_subcommand_rewrites_one_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = devices_config(SERVER, "http://127.0.0.1:8008", [], {"gpio": {}},
                         host="0.0.0.0", port_base=9300)
    path = write_devices_config(tmp_path, raw)
    reg = tmp_path / "appservices" / "edgehs_gpio.yaml"
    assert read_registration_file(reg, SERVER).url == "http://127.0.0.1:9301"  # not 0.0.0.0
    raw["gpio"]["appservice"]["hs_token"] = "new-hs-token"
    path.write_text(yaml.safe_dump(raw))
    assert main(["registration", "-c", str(path), "gpio"]) == 0
    assert capsys.readouterr().out.strip() == str(reg)
    assert read_registration_file(reg, SERVER).hs_token == "new-hs-token"
    assert main(["registration", "-c", str(path), "midi"]) == 2
    assert "devices.yaml: midi: missing" in capsys.readouterr().err


def test_write_registration_to_another_path(tmp_path: Path) -> None:
    raw = devices_config(SERVER, "http://127.0.0.1:8008", [], {"midi": {}})
    config = load_service_config(write_devices_config(tmp_path, raw), "midi")
    other = write_registration(config, tmp_path / "elsewhere" / "r.yaml")
    assert yaml.safe_load(other.read_text()) == registration_dict(config)
    assert other.read_text().startswith("# Application service registration")


@pytest.mark.parametrize("args, message", [
    (["--services", "nosuch"], "unknown service 'nosuch'"),
    (["--services", "midi,midi"], "named twice"),
    (["--services", "Bad-Name"], "is not a service name"),
    (["--services", ","], "at least one service"),
    (["--owner", "demo"], "--owner: 'demo' is not a user id"),
    (["--port-base", "70000"], "--port-base"),
])
def test_init_refuses_bad_arguments(tmp_path: Path, fake_services: dict[str, Path],
                                    capsys: pytest.CaptureFixture[str], args: list[str],
                                    message: str) -> None:
    assert init(tmp_path, *args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "dev" / "devices.yaml").exists()


def test_init_refuses_to_overwrite(tmp_path: Path, fake_services: dict[str, Path],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert init(tmp_path, "--services", "midi") == 0
    before = (tmp_path / "dev" / "devices.yaml").read_text()
    assert init(tmp_path, "--services", "midi") == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (tmp_path / "dev" / "devices.yaml").read_text() == before


def test_a_service_without_defaults_is_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "devices.broken", types.ModuleType("devices.broken"))
    monkeypatch.setitem(sys.modules, "devices.broken.defaults",
                        types.ModuleType("devices.broken.defaults"))
    assert init(tmp_path, "--services", "broken") == 2
    assert "devices.broken.defaults has no simulated_section" in capsys.readouterr().err


def test_edgehs_refuses_a_registration_with_equal_tokens(tmp_path: Path) -> None:
    """The loader the tests rely on is strict (so the success above means something)."""
    raw = devices_config(SERVER, "http://127.0.0.1:8008", [], {"midi": {}})
    config = load_service_config(write_devices_config(tmp_path, raw), "midi")
    bad = {**registration_dict(config), "hs_token": config.appservice.as_token}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="hs_token"):
        read_registration_file(path, SERVER)


@pytest.mark.parametrize("version, infinite", [("10", False), ("11", False), ("12", True),
                                               ("13", True), ("org.matrix.hydra.11", True)])
def test_room_versions_with_infinite_creators(version: str, infinite: bool) -> None:
    assert creators_have_infinite_power(version) is infinite
