"""Configuration: one YAML file, validated once at start-up; every option has a default.

``OPTIONS`` is the single source of truth: it gives each option's default and the comment
written beside it by ``edgehs generate-config``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SERVER_NAME_RE = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMG]?)i?B?\s*$", re.IGNORECASE)


class ConfigError(Exception):
    """A configuration file is unusable; the message names the file and the key."""


@dataclass(frozen=True)
class RateLimit:
    per_second: float
    burst_count: int


# key -> (default, comment). Paths are relative to the config file's data_dir.
OPTIONS: dict[str, tuple[Any, str]] = {
    "server_name": (None, "The domain part of user ids (@alice:SERVER_NAME). Cannot change later."),
    "data_dir": (".", "Folder for the database, signing key and media."),
    "listen": ("127.0.0.1:8008", "HOST:PORT the HTTP listener binds."),
    "public_baseurl": (None, "Base URL clients use to reach this server (well-known)."),
    "database_path": ("edgehs.db", "SQLite database file, relative to data_dir."),
    "signing_key_path": ("signing.key", "ed25519 signing key file, relative to data_dir."),
    "key_validity_period_ms": (
        86_400_000,
        "How long other servers may cache this server's signing keys: GET /_matrix/key/v2/server "
        "answers valid_until_ts = now + this many milliseconds (default 1 day).",
    ),
    "media_store_path": ("media", "Media folder, relative to data_dir."),
    "enable_registration": (False, "Allow anyone who can reach the server to register."),
    "allow_guest_access": (
        False,
        "Allow guest accounts (POST /register?kind=guest): anyone who can reach the server may "
        "get one, without a password, and read world_readable rooms and join rooms whose "
        "m.room.guest_access is can_join. Off by default, as in Synapse.",
    ),
    "max_upload_size": ("50M", "Largest media upload accepted."),
    "max_request_body_size": ("1M", "Largest non-media request body; larger ones get M_TOO_LARGE."),
    "default_room_version": ("12", "Room version of new rooms (a stable version, 1 to 12)."),
    "max_sync_timeout_ms": (30000, "Longest /sync long-poll the server holds open."),
    "rate_limits": (
        {
            "enabled": True,
            "message": {"per_second": 10, "burst_count": 50},
            "login": {"per_second": 0.5, "burst_count": 5},
            "registration": {"per_second": 0.2, "burst_count": 5},
        },
        "Token buckets per user (per IP for login and registration).",
    ),
    "log_level": ("INFO", "DEBUG, INFO, WARNING or ERROR."),
    "presence_enabled": (
        True,
        "Track and share presence (online/idle/offline). Kept in memory; only explicit status "
        "changes are written to disk. When false, PUT presence is accepted and ignored and GET "
        "answers offline (as Synapse does).",
    ),
    "turn_uris": ([], "TURN URIs handed to VoIP clients, e.g. turn:turn.example.org:3478?"
                      "transport=udp. Empty: GET /voip/turnServer answers {} (see docs/calls.md)."),
    "turn_shared_secret": (None, "coturn's static-auth-secret (use-auth-secret): "
                                 "time-limited TURN credentials are derived from it."),
    "turn_username": (None, "Static TURN username, used when no turn_shared_secret is set."),
    "turn_password": (None, "Static TURN password, used when no turn_shared_secret is set."),
    "turn_user_lifetime": ("1d", "How long TURN credentials stay valid (e.g. 1h, 1d, or ms)."),
    "app_service_config_files": (
        [],
        "Application service registration files (Synapse format), read at start-up. Relative "
        "paths are resolved against data_dir, not the working directory as in Synapse; "
        "absolute paths mean the same in both. `edgehs appservice new ID -c` adds one.",
    ),
}


@dataclass(frozen=True)
class Config:
    server_name: str
    data_dir: Path
    listen_host: str
    listen_port: int
    public_baseurl: str | None
    database_path: Path
    signing_key_path: Path
    media_store_path: Path
    enable_registration: bool
    max_upload_size: int
    max_request_body_size: int
    default_room_version: str
    max_sync_timeout_ms: int
    rate_limits_enabled: bool
    rc_message: RateLimit
    rc_login: RateLimit
    rc_registration: RateLimit
    log_level: str
    app_service_config_files: list[Path] = field(default_factory=list)
    presence_enabled: bool = True
    turn_uris: tuple[str, ...] = ()
    turn_shared_secret: str | None = None
    turn_username: str | None = None
    turn_password: str | None = None
    turn_user_lifetime_ms: int = 86_400_000
    allow_guest_access: bool = False
    key_validity_period_ms: int = 86_400_000

    @property
    def base_url(self) -> str:
        return self.public_baseurl or f"http://{self.listen_host}:{self.listen_port}/"


def parse_size(value: Any, key: str, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = SIZE_RE.match(str(value))
    if not m or isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be a size such as 50M or 1048576, not {value!r}")
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2).upper()]


def _typed(raw: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = raw.get(key, OPTIONS[key][0])
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise ConfigError(f"{where}: {key} must be {_names(kind)}, not {value!r}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _names(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kind))


DURATION_RE = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w|y)?\s*$")
DURATION_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
               "w": 604_800_000, "y": 31_536_000_000}


def parse_duration(value: Any, key: str, where: str) -> int:
    """Milliseconds from an int (ms) or a string such as 30s, 1h, 1d (Synapse's format)."""
    m = DURATION_RE.match(str(value)) if not isinstance(value, bool) else None
    if m is None or int(m.group(1)) <= 0:
        raise ConfigError(f"{where}: {key} must be a duration such as 1h or 1d, not {value!r}")
    return int(m.group(1)) * DURATION_MS[m.group(2) or "ms"]


def _turn_uris(raw: dict[str, Any], where: str) -> tuple[str, ...]:
    uris = _typed(raw, "turn_uris", list, where)
    if not all(isinstance(u, str) and u.startswith(("turn:", "turns:")) for u in uris):
        raise ConfigError(f"{where}: turn_uris must be a list of turn: or turns: URIs")
    return tuple(uris)


def _rate(section: dict[str, Any], name: str, where: str) -> RateLimit:
    default = OPTIONS["rate_limits"][0][name]
    value = {**default, **(section.get(name) or {})}
    try:
        per_second, burst = float(value["per_second"]), int(value["burst_count"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: rate_limits.{name} needs numbers: {exc}") from exc
    if per_second <= 0 or burst <= 0:
        raise ConfigError(f"{where}: rate_limits.{name} values must be positive")
    return RateLimit(per_second, burst)


def parse_listen(value: str, where: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ConfigError(f"{where}: listen must be HOST:PORT, not {value!r}")
    return host.strip("[]"), int(port)


def load_config(path: Path) -> Config:
    """Read and validate ``path``; raise ConfigError naming the file and key on any problem."""
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: the file must be a YAML mapping")
    unknown = sorted(set(raw) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"{where}: unknown option(s): {', '.join(unknown)}")
    server_name = raw.get("server_name")
    if not isinstance(server_name, str) or not SERVER_NAME_RE.match(server_name):
        raise ConfigError(f"{where}: server_name must be a hostname such as example.org")
    data_dir = Path(_typed(raw, "data_dir", str, where))
    if not data_dir.is_absolute():
        data_dir = (path.parent / data_dir).resolve()
    host, port = parse_listen(_typed(raw, "listen", str, where), where)
    rate = _typed(raw, "rate_limits", dict, where)
    room_version = str(raw.get("default_room_version", OPTIONS["default_room_version"][0]))
    # The stable room versions of protocol/room_versions.py (config imports no layer).
    if room_version not in {str(n) for n in range(1, 13)}:
        raise ConfigError(f"{where}: default_room_version must be a room version from 1 to 12")
    level = _typed(raw, "log_level", str, where).upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(f"{where}: log_level must be DEBUG, INFO, WARNING or ERROR")
    timeout = _typed(raw, "max_sync_timeout_ms", int, where)
    as_files = _typed(raw, "app_service_config_files", list, where)
    key_validity = _typed(raw, "key_validity_period_ms", int, where)
    if key_validity <= 0:
        raise ConfigError(f"{where}: key_validity_period_ms must be a positive number of ms")
    return Config(
        server_name=server_name,
        data_dir=data_dir,
        listen_host=host,
        listen_port=port,
        public_baseurl=_typed(raw, "public_baseurl", (str, type(None)), where),
        database_path=data_dir / _typed(raw, "database_path", str, where),
        signing_key_path=data_dir / _typed(raw, "signing_key_path", str, where),
        media_store_path=data_dir / _typed(raw, "media_store_path", str, where),
        enable_registration=_typed(raw, "enable_registration", bool, where),
        allow_guest_access=_typed(raw, "allow_guest_access", bool, where),
        max_upload_size=parse_size(raw.get("max_upload_size", "50M"), "max_upload_size", where),
        max_request_body_size=parse_size(
            raw.get("max_request_body_size", "1M"), "max_request_body_size", where
        ),
        default_room_version=room_version,
        max_sync_timeout_ms=timeout,
        rate_limits_enabled=bool(rate.get("enabled", True)),
        rc_message=_rate(rate, "message", where),
        rc_login=_rate(rate, "login", where),
        rc_registration=_rate(rate, "registration", where),
        log_level=level,
        app_service_config_files=[data_dir / str(p) for p in as_files],
        presence_enabled=_typed(raw, "presence_enabled", bool, where),
        turn_uris=_turn_uris(raw, where),
        turn_shared_secret=_typed(raw, "turn_shared_secret", (str, type(None)), where),
        turn_username=_typed(raw, "turn_username", (str, type(None)), where),
        turn_password=_typed(raw, "turn_password", (str, type(None)), where),
        turn_user_lifetime_ms=parse_duration(
            raw.get("turn_user_lifetime", OPTIONS["turn_user_lifetime"][0]),
            "turn_user_lifetime", where),
        key_validity_period_ms=key_validity,
    )


def render_config(values: dict[str, Any]) -> str:
    """YAML text with every option, each preceded by its comment and default."""
    lines = ["# edgehs configuration. Every option is listed with its default.", ""]
    for key, (default, comment) in OPTIONS.items():
        lines.append(f"# {comment}")
        lines.append(f"# Default: {json.dumps(default)}")
        value = values.get(key, default)
        lines.append(yaml.safe_dump({key: value}, sort_keys=False).strip())
        lines.append("")
    return "\n".join(lines)
