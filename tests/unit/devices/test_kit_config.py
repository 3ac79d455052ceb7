"""devices.yaml loading (devices/common/config.py): every bad value is refused with the file and
the full dotted key; and the PowerGate's use of ``actuate_power``."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from devices.common.config import (
    DeviceConfigError,
    Section,
    load_service_config,
    parse_listen,
)
from devices.common.device import PowerGate


def good() -> dict[str, Any]:
    return {
        "homeserver": {"url": "http://127.0.0.1:8008/", "server_name": "edgehs.local"},
        "owners": ["@demo:edgehs.local"],
        "midi": {
            "appservice": {"listen": "127.0.0.1:9101", "as_token": "a" * 20,
                           "hs_token": "h" * 20},
            "ports": [{"name": "keys", "input": {"kind": "sim"}}],
        },
        "gpio": {"appservice": {"listen": "0.0.0.0:9102", "as_token": "b", "hs_token": "c"}},
    }


def write(tmp_path: Path, raw: object, name: str = "devices.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_good_file_and_its_defaults(tmp_path: Path) -> None:
    config = load_service_config(write(tmp_path, good()), "midi")
    assert config.service == "midi"
    assert config.path == tmp_path / "devices.yaml" and config.base_dir == tmp_path
    assert config.homeserver.url == "http://127.0.0.1:8008"  # trailing / dropped
    assert config.server_name == "edgehs.local"
    assert config.owners == ("@demo:edgehs.local",)
    assert config.actuate_power == 50
    svc = config.appservice
    assert (svc.id, svc.host, svc.port, svc.url) == ("edgehs_midi", "127.0.0.1", 9101,
                                                     "http://127.0.0.1:9101")
    assert svc.registration == tmp_path / "appservices" / "edgehs_midi.yaml"
    assert config.section.prefix == "midi"
    assert config.section.sections("ports")[0].section("input").choice("kind", ["sim"]) == "sim"
    # a wildcard listen address is pushed to on loopback
    gpio = load_service_config(tmp_path / "devices.yaml", "gpio").appservice
    assert (gpio.host, gpio.url, gpio.listen) == ("0.0.0.0", "http://127.0.0.1:9102",
                                                  "0.0.0.0:9102")


def test_ipv6_listen_and_explicit_values(tmp_path: Path) -> None:
    raw = good()
    raw["midi"]["appservice"].update(listen="[::1]:9200", id="my_midi",
                                     registration="/etc/x.yaml", url="http://box:1/")
    raw.update(actuate_power=75, owners=None)
    config = load_service_config(write(tmp_path, raw), "midi")
    assert (config.appservice.host, config.appservice.port) == ("::1", 9200)
    assert config.appservice.listen == "[::1]:9200"
    assert config.appservice.url == "http://box:1"
    assert config.appservice.registration == Path("/etc/x.yaml")
    assert (config.actuate_power, config.owners) == (75, ())
    assert parse_listen("[::]:80") == ("::", 80)
    for bad in ("9101", "host:", "host:0", "host:70000", ":::1:80", "a b:1"):
        assert parse_listen(bad) is None, bad


Change = Callable[[dict[str, Any]], object]
BAD: dict[str, tuple[Change, str]] = {
    "homeserver": (lambda r: r.pop("homeserver"), "is required"),
    "homeserver.url": (lambda r: r["homeserver"].update(url="ftp://x"), "http(s) URL"),
    "homeserver.server_name": (lambda r: r["homeserver"].update(server_name=""),
                               "must not be empty"),
    "homeserver.token": (lambda r: r["homeserver"].update(token="x"), "unknown key"),
    "owners": (lambda r: r.update(owners="@demo:edgehs.local"), "must be a list"),
    "owners[1]": (lambda r: r.update(owners=["@a:b", "demo"]), "must be a user id"),
    "actuate_power": (lambda r: r.update(actuate_power=True), "must be an integer"),
    "midi": (lambda r: r.pop("midi"), "missing"),
    "midi.appservice": (lambda r: r["midi"].pop("appservice"), "is required"),
    "midi.appservice.listen": (lambda r: r["midi"]["appservice"].update(listen="9101"),
                               "HOST:PORT"),
    "midi.appservice.as_token": (lambda r: r["midi"]["appservice"].update(as_token="a b"),
                                 "must not contain spaces"),
    "midi.appservice.hs_token": (lambda r: r["midi"]["appservice"].update(hs_token="a" * 20),
                                 "must differ from as_token"),
    "midi.appservice.url": (lambda r: r["midi"]["appservice"].update(url="tcp://x"),
                            "http(s) URL"),
    "midi.appservice.port": (lambda r: r["midi"]["appservice"].update(port=1), "unknown key"),
    "midi.appservice.registration": (
        lambda r: r["midi"]["appservice"].update(registration=3), "must be a path"),
    "extra": (lambda r: r.update(extra=[1]), "unknown key"),
}


@pytest.mark.parametrize("key", list(BAD))
def test_bad_values_name_the_key(tmp_path: Path, key: str) -> None:
    raw = good()
    change, reason = BAD[key]
    change(raw)
    with pytest.raises(DeviceConfigError) as caught:
        load_service_config(write(tmp_path, raw), "midi")
    assert str(caught.value).startswith(f"devices.yaml: {key}: "), str(caught.value)
    assert reason in caught.value.reason
    assert caught.value.key == key


def test_another_service_section_is_not_checked_but_must_look_like_one(tmp_path: Path) -> None:
    raw = good()
    raw["gpio"]["appservice"]["listen"] = "nonsense"  # gpio's problem, not midi's
    load_service_config(write(tmp_path, raw), "midi")
    raw["camera"] = {"cameras": []}  # no appservice: not a service section
    with pytest.raises(DeviceConfigError, match=r"^devices.yaml: camera: unknown key"):
        load_service_config(write(tmp_path, raw), "midi")


@pytest.mark.parametrize("text, reason", [
    ("[1, 2]", "must be a YAML mapping, not list"),
    ("a: [", "not valid YAML"),
    ("", "must be a YAML mapping, not null"),
])
def test_unreadable_files(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "my-devices.yaml"
    path.write_text(text)
    with pytest.raises(DeviceConfigError) as caught:
        load_service_config(path, "midi")
    assert str(caught.value).startswith("my-devices.yaml: "), str(caught.value)
    assert reason in str(caught.value)
    with pytest.raises(DeviceConfigError, match="cannot read"):
        load_service_config(tmp_path / "missing.yaml", "midi")


def section(raw: dict[str, Any], base: Path = Path("/base")) -> Section:
    return Section(raw, "midi", base)


def error_of(call: Callable[[], object]) -> str:
    with pytest.raises(DeviceConfigError) as caught:
        call()
    return str(caught.value)


def test_section_accessors() -> None:
    s = section({"n": 3, "f": 2, "b": False, "s": "x", "p": "rel/f", "q": "/abs", "e": None,
                 "l": ["a", "b"], "kind": "sim", "ports": [{"name": "x", "input": {}}]})
    assert (s.int("n"), s.float("f"), s.bool("b"), s.str("s")) == (3, 2.0, False, "x")
    assert s.path("p") == Path("/base/rel/f") and s.path("q") == Path("/abs")
    assert s.path("missing", "d.sock") == Path("/base/d.sock")
    assert s.int("e", 7) == 7 and not s.has("e") and s.has("n")  # null counts as missing
    assert s.str_list("l") == ["a", "b"] and s.list("none", []) == []
    assert s.choice("kind", ["fifo", "sim"]) == "sim"
    assert s.section("none", default_empty=True).raw == {}
    assert s.sections("none", default_empty=True) == []
    port = s.sections("ports")[0]
    assert port.prefix == "midi.ports[0]" and port.key("name") == "midi.ports[0].name"
    assert port.section("input").prefix == "midi.ports[0].input"


def test_section_errors_name_the_full_key() -> None:
    s = section({"ports": [{"input": {"kind": "usb"}}, "x"], "n": "3", "f": float("nan"),
                 "b": "yes", "s": 5, "lo": -1, "l": ["a", ""]})
    inp = section({"ports": [{"input": {"kind": "usb"}}]}).sections("ports")[0].section("input")
    assert error_of(lambda: inp.choice("kind", ["fifo", "rawmidi", "serial", "alsa", "sim"])) \
        == ("devices.yaml: midi.ports[0].input.kind: must be one of fifo, rawmidi, serial, "
            "alsa, sim, not 'usb'")
    assert error_of(lambda: s.sections("ports")).startswith(
        "devices.yaml: midi.ports[1]: must be a mapping")
    assert error_of(lambda: s.int("n")).startswith("devices.yaml: midi.n: must be an integer")
    assert "finite" in error_of(lambda: s.float("f"))
    assert error_of(lambda: s.bool("b")).startswith("devices.yaml: midi.b: must be true or")
    assert error_of(lambda: s.str("s")).startswith("devices.yaml: midi.s: must be a string")
    assert error_of(lambda: s.int("lo", min=0)) == ("devices.yaml: midi.lo: must be at least 0,"
                                                    " not -1")
    assert error_of(lambda: s.float("lo", max=-2)).startswith("devices.yaml: midi.lo: must be "
                                                              "at most")
    assert error_of(lambda: s.str_list("l")).startswith("devices.yaml: midi.l[1]: must be a "
                                                        "non-empty")
    assert error_of(lambda: s.str("nothing")) == "devices.yaml: midi.nothing: is required"
    assert error_of(lambda: s.section("s")).startswith("devices.yaml: midi.s: must be a mapping")
    assert error_of(lambda: s.check_keys(["ports"])).startswith(
        "devices.yaml: midi.n: unknown key (expected one of ports)")
    assert str(s.error("", "broken")) == "devices.yaml: midi: broken"


def test_service_section_allows_appservice_implicitly(tmp_path: Path) -> None:
    config = load_service_config(write(tmp_path, good()), "midi")
    config.section.check_keys(["ports"])
    with pytest.raises(DeviceConfigError, match=r"^devices.yaml: midi.ports: unknown key"):
        config.section.check_keys([])


class FakeIntent:
    """Answers get_state for m.room.power_levels from a dict; counts the calls."""

    def __init__(self, levels: dict[str, Any]) -> None:
        self.levels = levels
        self.calls = 0

    async def get_state(self, room_id: str, event_type: str,
                        state_key: str = "") -> dict[str, Any] | None:
        self.calls += 1
        return self.levels.get(room_id)


async def test_power_gate_threshold_and_refresh() -> None:
    fake = FakeIntent({"!r": {"users": {"@o:s": 50, "@low:s": 49}, "users_default": 0},
                       "!open": {"users_default": 60}})
    gate = PowerGate(fake, 50)  # type: ignore[arg-type]
    assert await gate.allowed("!r", "@o:s")
    assert not await gate.allowed("!r", "@low:s")
    assert not await gate.allowed("!r", "@nobody:s")
    assert await gate.level("!r", "@nobody:s") == 0
    assert fake.calls == 1  # cached per room
    assert await gate.allowed("!open", "@anyone:s")
    assert await gate.allowed("!none", "@x:s") is False  # no power levels: default 0
    gate.on_event({"type": "m.room.power_levels", "state_key": "", "room_id": "!r",
                   "content": {"users": {"@low:s": 51}}})
    assert await gate.allowed("!r", "@low:s") and not await gate.allowed("!r", "@o:s")
    other = FakeIntent({"!r": {"users": {"@o:s": 100}}})
    gate.use_intent("!r", other)  # type: ignore[arg-type]
    gate.forget("!r")
    assert await gate.level("!r", "@o:s") == 100 and other.calls == 1
