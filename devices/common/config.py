"""devices.yaml: one file for every device service; each service reads ``homeserver``, the
common keys and its own section.

Every error is a ``DeviceConfigError`` whose text names the file and the full dotted key, e.g.
``devices.yaml: midi.ports[0].input.kind: must be one of fifo, rawmidi, serial, alsa, sim``.
Relative paths are relative to the folder of devices.yaml.
"""

from __future__ import annotations

import builtins
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

DEFAULT_ACTUATE_POWER = 50
COMMON_KEYS = ("homeserver", "owners", "actuate_power")
HOMESERVER_KEYS = ("url", "server_name")
APPSERVICE_KEYS = ("id", "listen", "url", "as_token", "hs_token", "registration")
SERVICE_NAME_RE = re.compile(r"^[a-z][a-z0-9]*$")
# A device name is part of its virtual user and room alias: @<service>_<name>, #<service>_<name>.
DEVICE_NAME_CHARS = "[a-z0-9][a-z0-9_.=-]"
USER_ID_RE = re.compile(r"^@[^:\s]+:[^\s]+$")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


class _Missing:
    def __repr__(self) -> builtins.str:
        return "MISSING"


MISSING: Any = _Missing()


class DeviceConfigError(Exception):
    """A bad devices.yaml; ``key`` is the dotted key (``midi.ports[0].name``), or ''."""

    def __init__(self, key: builtins.str, reason: builtins.str,
                 file: builtins.str = "devices.yaml") -> None:
        super().__init__(f"{file}: {key}: {reason}" if key else f"{file}: {reason}")
        self.key = key
        self.reason = reason
        self.file = file


def _kind(value: object) -> builtins.str:
    return "null" if value is None else type(value).__name__


class Section:
    """A mapping from devices.yaml and its dotted prefix, with typed accessors whose errors
    name the full key. A key whose value is null counts as missing."""

    def __init__(self, raw: Mapping[builtins.str, Any], prefix: builtins.str, base_dir: Path,
                 file: builtins.str = "devices.yaml",
                 implicit_keys: Iterable[builtins.str] = ()) -> None:
        self.raw: dict[builtins.str, Any] = dict(raw)
        self.prefix = prefix
        self.base_dir = base_dir
        self.file = file
        self._implicit = frozenset(implicit_keys)

    def __repr__(self) -> builtins.str:
        return f"Section({self.prefix!r}, {self.raw!r})"

    def key(self, key: builtins.str) -> builtins.str:
        """The full dotted name of ``key`` in this section."""
        if key.startswith("["):
            return f"{self.prefix}{key}"
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: builtins.str, reason: builtins.str) -> DeviceConfigError:
        """A DeviceConfigError for ``key`` of this section ('' = the section itself)."""
        return DeviceConfigError(self.key(key) if key else self.prefix, reason, self.file)

    def has(self, key: builtins.str) -> bool:
        return self.raw.get(key) is not None

    def keys(self) -> list[builtins.str]:
        return [builtins.str(k) for k in self.raw]

    def check_keys(self, allowed: Iterable[builtins.str]) -> None:
        """Refuse any key not in ``allowed``, naming it and the allowed ones."""
        known = [*allowed]
        for key in self.raw:
            if key not in known and key not in self._implicit:
                raise self.error(builtins.str(key),
                                 f"unknown key (expected one of {', '.join(known)})")

    def _get(self, key: builtins.str, default: Any) -> Any:
        value = self.raw.get(key)
        if value is None:
            if default is MISSING:
                raise self.error(key, "is required")
            return default
        return value

    def device_name(self, service: builtins.str, max_length: builtins.int = 64,
                    key: builtins.str = "name") -> builtins.str:
        """``key``: a name that becomes part of ``@<service>_<name>`` (lower-case letters,
        digits and ``_.=-``, at most ``max_length`` characters)."""
        name = self.str(key)
        if not re.fullmatch(DEVICE_NAME_CHARS + f"{{0,{max_length - 1}}}", name):
            raise self.error(key, f"must be lower-case letters, digits and _.=- (it becomes "
                                  f"@{service}_{{name}}), at most {max_length} characters, "
                                  f"not {name!r}")
        return name

    def str(self, key: builtins.str, default: Any = MISSING, *,
            allow_empty: bool = False) -> builtins.str:
        value = self._get(key, default)
        if not isinstance(value, builtins.str):
            raise self.error(key, f"must be a string, not {_kind(value)} {value!r}")
        if not value and not allow_empty:
            raise self.error(key, "must not be empty")
        return value

    def int(self, key: builtins.str, default: Any = MISSING, *, min: builtins.int | None = None,
            max: builtins.int | None = None) -> builtins.int:
        value = self._get(key, default)
        if isinstance(value, builtins.bool) or not isinstance(value, builtins.int):
            raise self.error(key, f"must be an integer, not {_kind(value)} {value!r}")
        self._range(key, value, min, max)
        return value

    def float(self, key: builtins.str, default: Any = MISSING, *,
              min: builtins.float | None = None,
              max: builtins.float | None = None) -> builtins.float:
        value = self._get(key, default)
        if isinstance(value, builtins.bool) or not isinstance(value, builtins.int
                                                                | builtins.float):
            raise self.error(key, f"must be a number, not {_kind(value)} {value!r}")
        if not math.isfinite(value):
            raise self.error(key, f"must be a finite number, not {value!r}")
        self._range(key, value, min, max)
        return builtins.float(value)

    def _range(self, key: builtins.str, value: builtins.float, low: builtins.float | None,
               high: builtins.float | None) -> None:
        if low is not None and value < low:
            raise self.error(key, f"must be at least {low}, not {value!r}")
        if high is not None and value > high:
            raise self.error(key, f"must be at most {high}, not {value!r}")

    def bool(self, key: builtins.str, default: Any = MISSING) -> builtins.bool:
        value = self._get(key, default)
        if not isinstance(value, builtins.bool):
            raise self.error(key, f"must be true or false, not {_kind(value)} {value!r}")
        return value

    def choice(self, key: builtins.str, options: Iterable[builtins.str],
               default: Any = MISSING) -> builtins.str:
        allowed = [*options]
        value = self._get(key, default)
        if value not in allowed:
            raise self.error(key, f"must be one of {', '.join(allowed)}, not {value!r}")
        return builtins.str(value)

    def path(self, key: builtins.str, default: Any = MISSING) -> Path:
        """A path; relative ones are resolved against the folder of devices.yaml."""
        value = self._get(key, default)
        if not isinstance(value, builtins.str | Path) or not builtins.str(value):
            raise self.error(key, f"must be a path, not {_kind(value)} {value!r}")
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def list(self, key: builtins.str, default: Any = MISSING) -> builtins.list[Any]:
        value = self._get(key, default)
        if not isinstance(value, builtins.list):
            raise self.error(key, f"must be a list, not {_kind(value)} {value!r}")
        return value

    def str_list(self, key: builtins.str, default: Any = MISSING) -> builtins.list[builtins.str]:
        items = self.list(key, default)
        for i, item in enumerate(items):
            if not isinstance(item, builtins.str) or not item:
                raise self.error(f"{key}[{i}]", f"must be a non-empty string, not {item!r}")
        return items

    def section(self, key: builtins.str, default_empty: builtins.bool = False) -> Section:
        value = self._get(key, {} if default_empty else MISSING)
        if not isinstance(value, dict):
            raise self.error(key, f"must be a mapping, not {_kind(value)} {value!r}")
        return Section(value, self.key(key), self.base_dir, self.file)

    def sections(self, key: builtins.str,
                 default_empty: builtins.bool = False) -> builtins.list[Section]:
        """A list of mappings; item ``i`` is named ``key[i]`` in errors."""
        items = self.list(key, [] if default_empty else MISSING)
        out = []
        for i, item in enumerate(items):
            name = f"{key}[{i}]"
            if not isinstance(item, dict):
                raise self.error(name, f"must be a mapping, not {_kind(item)} {item!r}")
            out.append(Section(item, self.key(name), self.base_dir, self.file))
        return out


@dataclass(frozen=True)
class HomeserverConfig:
    url: str
    server_name: str


@dataclass(frozen=True)
class AppServiceConfig:
    id: str
    host: str
    port: int
    as_token: str
    hs_token: str
    registration: Path
    url: str = ""  # where edgehs pushes; default http://{listen} (a wildcard host -> 127.0.0.1)

    @property
    def listen(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ServiceConfig:
    service: str
    path: Path  # the devices.yaml
    base_dir: Path
    homeserver: HomeserverConfig
    appservice: AppServiceConfig
    owners: tuple[str, ...]
    actuate_power: int
    section: Section  # the service's own raw section (with ``appservice``), typed accessors

    @property
    def server_name(self) -> str:
        return self.homeserver.server_name


def parse_listen(value: str) -> tuple[str, int] | None:
    """``host:port`` or ``[v6]:port`` -> (host, port); None if malformed."""
    match = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d{1,5})|([^:\[\]\s]+):(\d{1,5})", value)
    if match is None:
        return None
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    return (host, port) if 0 < port < 65536 else None


def _token(section: Section, key: str) -> str:
    value = section.str(key)
    if any(c.isspace() for c in value):
        raise section.error(key, "must not contain spaces")
    return value


def _homeserver(root: Section) -> HomeserverConfig:
    hs = root.section("homeserver")
    hs.check_keys(HOMESERVER_KEYS)
    url = hs.str("url").rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise hs.error("url", f"must be an http(s) URL like http://127.0.0.1:8008, not {url!r}")
    server_name = hs.str("server_name")
    if any(c.isspace() or c in "/@#!" for c in server_name):
        raise hs.error("server_name", f"must be a server name like edgehs.local, not "
                                      f"{server_name!r}")
    return HomeserverConfig(url, server_name)


def _appservice(service: Section, name: str) -> AppServiceConfig:
    sect = service.section("appservice")
    sect.check_keys(APPSERVICE_KEYS)
    as_id = sect.str("id", f"edgehs_{name}")
    listen = sect.str("listen")
    parsed = parse_listen(listen)
    if parsed is None:
        raise sect.error("listen", f"must be HOST:PORT like 127.0.0.1:9101, not {listen!r}")
    host, port = parsed
    as_token = _token(sect, "as_token")
    hs_token = _token(sect, "hs_token")
    if as_token == hs_token:
        raise sect.error("hs_token", "must differ from as_token")
    url = sect.str("url", "", allow_empty=True).rstrip("/")
    if url and urlsplit(url).scheme not in ("http", "https"):
        raise sect.error("url", f"must be an http(s) URL, not {url!r}")
    if not url:
        push_host = "127.0.0.1" if host in WILDCARD_HOSTS else host
        url = f"http://[{push_host}]:{port}" if ":" in push_host else f"http://{push_host}:{port}"
    registration = sect.path("registration", f"appservices/{as_id}.yaml")
    return AppServiceConfig(as_id, host, port, as_token, hs_token, registration, url)


def read_devices_yaml(path: Path) -> dict[str, Any]:
    """The parsed file (a mapping), or DeviceConfigError."""
    file = path.name
    try:
        text = path.read_text()
    except OSError as exc:
        raise DeviceConfigError("", f"cannot read {path}: {exc.strerror or exc}", file) from exc
    except UnicodeDecodeError as exc:
        raise DeviceConfigError("", f"{path} is not a text file", file) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DeviceConfigError("", f"not valid YAML: {exc}", file) from exc
    if not isinstance(raw, dict):
        raise DeviceConfigError("", f"must be a YAML mapping, not {_kind(raw)}", file)
    return raw


def load_service_config(path: Path, service: str) -> ServiceConfig:
    """Read devices.yaml and check the common keys and ``service``'s appservice section; the
    service checks the rest of its own section (``DeviceService.validate``)."""
    path = Path(path).expanduser().absolute()
    base_dir = path.parent
    root = Section(read_devices_yaml(path), "", base_dir, path.name)
    for key, value in root.raw.items():
        if key in COMMON_KEYS or key == service:
            continue
        if not (isinstance(value, dict) and isinstance(value.get("appservice"), dict)):
            raise root.error(str(key), f"unknown key (expected {', '.join(COMMON_KEYS)} or a "
                                       f"service section with an appservice: mapping)")
    homeserver = _homeserver(root)
    owners = root.str_list("owners", [])
    for i, owner in enumerate(owners):
        if not USER_ID_RE.match(owner):
            raise root.error(f"owners[{i}]", f"must be a user id like "
                                             f"@alice:{homeserver.server_name}, not {owner!r}")
    actuate_power = root.int("actuate_power", DEFAULT_ACTUATE_POWER, min=-(2**53) + 1,
                             max=2**53 - 1)
    if not root.has(service):
        raise root.error(service, "missing: this service has no section here (write one with "
                                  "`python -m devices init`)")
    section = root.section(service)
    section = Section(section.raw, section.prefix, base_dir, path.name,
                      implicit_keys=("appservice",))
    appservice = _appservice(section, service)
    return ServiceConfig(service, path, base_dir, homeserver, appservice, tuple(owners),
                         actuate_power, section)
