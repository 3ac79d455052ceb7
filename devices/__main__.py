"""``python -m devices``: set up the device services.

``init DIR --server-name NAME --homeserver URL [--owner @u:s ...] [--services midi,gpio,camera]
[--port-base N]`` writes DIR/devices.yaml (fresh tokens, simulated hardware) and one
registration per service in DIR/appservices/, then prints the registration paths to list in
edgehs.yaml's ``app_service_config_files``.
``registration -c devices.yaml SERVICE`` (re)writes one service's registration file.
Exit codes: 0 done, 2 bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path
from typing import Any

from devices.common.config import USER_ID_RE, DeviceConfigError, load_service_config
from devices.common.registration import (
    DEFAULT_HOST,
    DEFAULT_PORT_BASE,
    devices_config,
    write_devices_config,
    write_registration,
)

DEFAULT_SERVICES = "midi,gpio,camera"
SERVICE_RE = re.compile(r"^[a-z][a-z0-9]*$")


class UsageError(Exception):
    pass


def simulated_sections(services: list[str], base_dir: Path) -> dict[str, dict[str, Any]]:
    """Each service's ``devices.<svc>.defaults.simulated_section(base_dir)``."""
    sections: dict[str, dict[str, Any]] = {}
    for svc in services:
        module_name = f"devices.{svc}.defaults"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name in (f"devices.{svc}", module_name):
                raise UsageError(f"unknown service {svc!r}: there is no {module_name} module "
                                 f"(this edgehs has devices/{svc}/ missing or incomplete)") from exc
            raise UsageError(f"service {svc!r} cannot be loaded: {exc}") from exc
        make = getattr(module, "simulated_section", None)
        if make is None:
            raise UsageError(f"{module_name} has no simulated_section(base_dir)")
        section = make(base_dir)
        if not isinstance(section, dict) or "appservice" in section:
            raise UsageError(f"{module_name}.simulated_section must return a mapping without "
                             f"appservice")
        sections[svc] = section
    return sections


def cmd_init(args: argparse.Namespace) -> int:
    directory: Path = args.dir.expanduser().absolute()
    services = [s.strip() for s in args.services.split(",") if s.strip()]
    if not services:
        raise UsageError("--services: name at least one service")
    for svc in services:
        if not SERVICE_RE.match(svc):
            raise UsageError(f"--services: {svc!r} is not a service name")
    if len(set(services)) != len(services):
        raise UsageError("--services: a service is named twice")
    for owner in args.owner:
        if not USER_ID_RE.match(owner):
            raise UsageError(f"--owner: {owner!r} is not a user id like @alice:{args.server_name}")
    if not 1 <= args.port_base <= 65535 - 8:
        raise UsageError("--port-base: must be a TCP port number")
    target = directory / "devices.yaml"
    if target.exists():
        raise UsageError(f"{target} exists; refusing to overwrite it")
    sections = simulated_sections(services, directory)
    raw = devices_config(args.server_name, args.homeserver, args.owner, sections,
                         port_base=args.port_base, host=args.host,
                         actuate_power=args.actuate_power)
    directory.mkdir(parents=True, exist_ok=True)
    path = write_devices_config(directory, raw)
    print(f"wrote {path}")
    print("add these to edgehs.yaml's app_service_config_files, then restart edgehs:")
    for svc in services:
        print(f"  - {load_service_config(path, svc).appservice.registration}")
    return 0


def cmd_registration(args: argparse.Namespace) -> int:
    config = load_service_config(args.config, args.service)
    print(write_registration(config))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devices",
                                     description="Set up the edgehs device services.")
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="write devices.yaml and the registrations")
    init.add_argument("dir", type=Path, help="folder for devices.yaml and appservices/")
    init.add_argument("--server-name", required=True, help="edgehs's server_name")
    init.add_argument("--homeserver", required=True, help="edgehs's URL, e.g. "
                                                          "http://127.0.0.1:8008")
    init.add_argument("--owner", action="append", default=[],
                      help="a user invited to every device room with actuate power (repeat)")
    init.add_argument("--services", default=DEFAULT_SERVICES,
                      help=f"comma-separated (default {DEFAULT_SERVICES})")
    init.add_argument("--port-base", type=int, default=DEFAULT_PORT_BASE,
                      help="midi/gpio/camera listen on N, N+1, N+2 (default %(default)s)")
    init.add_argument("--host", default=DEFAULT_HOST, help="listen address of the services")
    init.add_argument("--actuate-power", type=int, default=50,
                      help="power level needed to actuate (default %(default)s)")
    init.set_defaults(func=cmd_init)
    reg = sub.add_parser("registration", help="(re)write one service's registration file")
    reg.add_argument("-c", "--config", required=True, type=Path, help="devices.yaml")
    reg.add_argument("service", help="midi, gpio, camera, ...")
    reg.set_defaults(func=cmd_registration)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (UsageError, DeviceConfigError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
