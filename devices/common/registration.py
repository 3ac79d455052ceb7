"""Application service registrations (Synapse's YAML format) for the device services, and the
devices.yaml that ``python -m devices init`` writes.

https://spec.matrix.org/v1.19/application-service-api/#registration

A service ``svc`` owns, exclusively, the users ``@{svc}_.*`` (one virtual user per device) and
its sender ``@{svc}``, and the aliases ``#{svc}_.*`` (one room per device) on its server.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from devices.common.config import ServiceConfig, load_service_config, read_devices_yaml

# Fixed port offsets, so a service keeps its default port whichever services are chosen.
PORT_OFFSETS = {"midi": 0, "gpio": 1, "camera": 2}
DEFAULT_PORT_BASE = 9101
DEFAULT_HOST = "127.0.0.1"

REGISTRATION_HEAD = (
    "# Application service registration (Synapse's format) for the edgehs {svc} device service,\n"
    "# written by `python -m devices`. Keep it secret: as_token and hs_token are passwords.\n"
    "# List this file in edgehs.yaml's app_service_config_files; edgehs reads it at start-up.\n"
)
CONFIG_HEAD = (
    "# edgehs device services (python -m devices.<service> -c {name}), written by\n"
    "# `python -m devices init`. Keep it secret: the tokens are passwords.\n"
    "# Relative paths are relative to this file's folder.\n"
)


def registration_dict(config: ServiceConfig) -> dict[str, Any]:
    """The registration of ``config.service`` as edgehs (or Synapse) reads it."""
    svc = config.service
    server = re.escape(config.homeserver.server_name)
    return {
        "id": config.appservice.id,
        "url": config.appservice.url,
        "as_token": config.appservice.as_token,
        "hs_token": config.appservice.hs_token,
        "sender_localpart": svc,
        "rate_limited": False,
        "receive_ephemeral": False,
        "namespaces": {
            "users": [{"regex": f"@{svc}_.*:{server}$", "exclusive": True},
                      {"regex": f"@{svc}:{server}$", "exclusive": True}],
            "aliases": [{"regex": f"#{svc}_.*:{server}$", "exclusive": True}],
            "rooms": [],
        },
    }


def render_registration(config: ServiceConfig) -> str:
    return (REGISTRATION_HEAD.format(svc=config.service)
            + yaml.safe_dump(registration_dict(config), sort_keys=False, allow_unicode=True))


def _write_secret(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only (it holds tokens), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def write_registration(config: ServiceConfig, path: Path | None = None) -> Path:
    """(Re)write the registration file (default: ``appservice.registration``); its path."""
    target = path or config.appservice.registration
    _write_secret(target, render_registration(config))
    return target


def appservice_section(service: str, listen: str) -> dict[str, Any]:
    """A fresh ``appservice:`` section: id, listen, new random tokens, registration path."""
    as_id = f"edgehs_{service}"
    return {
        "id": as_id,
        "listen": listen,
        "as_token": secrets.token_urlsafe(32),
        "hs_token": secrets.token_urlsafe(32),
        "registration": f"appservices/{as_id}.yaml",
    }


def default_listen(service: str, index: int, port_base: int = DEFAULT_PORT_BASE,
                   host: str = DEFAULT_HOST) -> str:
    """midi/gpio/camera get port_base+0/1/2; any other service port_base+3+index."""
    offset = PORT_OFFSETS.get(service, len(PORT_OFFSETS) + index)
    return f"{host}:{port_base + offset}"


def devices_config(server_name: str, homeserver_url: str, owners: Sequence[str],
                   sections: Mapping[str, Mapping[str, Any]], *, port_base: int =
                   DEFAULT_PORT_BASE, host: str = DEFAULT_HOST,
                   actuate_power: int = 50) -> dict[str, Any]:
    """The devices.yaml mapping: ``sections`` are the services' own sections (without
    ``appservice``, e.g. ``simulated_section(base_dir)``); the kit adds ``appservice``."""
    raw: dict[str, Any] = {
        "homeserver": {"url": homeserver_url.rstrip("/"), "server_name": server_name},
        "owners": list(owners),
        "actuate_power": actuate_power,
    }
    for index, (service, section) in enumerate(sections.items()):
        listen = default_listen(service, index, port_base, host)
        raw[service] = {"appservice": appservice_section(service, listen), **section}
    return raw


def write_devices_config(directory: Path, raw: Mapping[str, Any],
                         name: str = "devices.yaml") -> Path:
    """Write DIR/devices.yaml (refusing to overwrite one) and every service's registration.
    Returns the path of devices.yaml; FileExistsError if it exists."""
    path = directory / name
    if path.exists():
        raise FileExistsError(f"{path} exists; refusing to overwrite it (its tokens are in "
                              f"edgehs's registrations)")
    _write_secret(path, CONFIG_HEAD.format(name=name)
                  + yaml.safe_dump(dict(raw), sort_keys=False, allow_unicode=True))
    try:
        for service in raw:
            if isinstance(raw[service], Mapping) and "appservice" in raw[service]:
                write_registration(load_service_config(path, service))
    except BaseException:
        path.unlink()  # all or nothing: a later `init` may try again
        raise
    return path


def registration_paths(path: Path) -> list[Path]:
    """The registration file of every service section in devices.yaml at ``path``."""
    raw = read_devices_yaml(path)
    return [load_service_config(path, svc).appservice.registration for svc, value in raw.items()
            if isinstance(value, dict) and isinstance(value.get("appservice"), dict)]
