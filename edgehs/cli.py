"""The ``edgehs`` command: generate-config, run, register-user, rotate-key, appservice new,
device add, demo."""

import argparse
import logging
import os
import re
import socket
import stat
import sys
from pathlib import Path

from edgehs import __version__
from edgehs.config import ConfigError, load_config, parse_listen, render_config
from edgehs.errors import MatrixError

log = logging.getLogger("edgehs")


def cmd_generate_config(args: argparse.Namespace) -> int:
    from edgehs.homeserver import load_or_create_signing_key

    data_dir = Path(args.data_dir)
    path = data_dir / "edgehs.yaml"
    if path.exists():
        print(f"{path} already exists; not overwriting it", file=sys.stderr)
        return 1
    try:
        parse_listen(args.listen, "--listen")
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    data_dir.mkdir(parents=True, exist_ok=True)
    values = {
        "server_name": args.server_name,
        "data_dir": ".",
        "listen": args.listen,
        "enable_registration": args.enable_registration,
    }
    path.write_text(render_config(values))
    config = load_config(path)
    load_or_create_signing_key(config.signing_key_path)
    print(f"Wrote {path} and the signing key {config.signing_key_path}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from edgehs import sdnotify
    from edgehs.app import init_app
    from edgehs.service.appservice.registration import load_registrations
    from edgehs.store.writer_lock import DataDirLock, DataDirLocked

    config = load_config(Path(args.config))
    # A bad registration file stops us here, before binding (ConfigError: exit code 2).
    appservices = load_registrations(config.app_service_config_files, config.server_name)
    try:  # one writer per data dir, held until the process ends (the kernel drops it then)
        lock = DataDirLock.acquire(config.data_dir)
    except DataDirLocked as exc:
        print(f"edgehs: cannot start: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"edgehs: cannot start: cannot lock {config.data_dir}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    logging.basicConfig(level=config.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("edgehs %s starting: server_name=%s listen=%s:%d database=%s", __version__,
             config.server_name, config.listen_host, config.listen_port, config.database_path)
    log.info("%d application service registration file(s) loaded", len(appservices))
    app = init_app(config, lock)

    def announce(_banner: str) -> None:
        # run_app calls this once the socket is bound.
        base = f"http://{config.listen_host}:{config.listen_port}"
        log.info("listening on %s — connect a Matrix client to it; create a user with: "
                 "edgehs register-user -c %s NAME --password PASSWORD", base, args.config)
        # Type=notify units: started means listening (a no-op without $NOTIFY_SOCKET).
        sdnotify.notify(f"READY=1\nSTATUS=listening on {base}")

    try:
        web.run_app(app, host=config.listen_host, port=config.listen_port, print=announce,
                    access_log=None, shutdown_timeout=10)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", config.listen_host, config.listen_port,
                  exc.strerror)
        return 1
    finally:
        lock.release()
    log.info("edgehs stopped cleanly")
    return 0


def cmd_register_user(args: argparse.Namespace) -> int:
    """Register through the running server (admin API) when edgehs runs, else directly."""
    from edgehs import admin_client
    from edgehs.homeserver import HomeServer
    from edgehs.store.writer_lock import DataDirLocked

    config = load_config(Path(args.config))

    async def direct(server: HomeServer) -> str:
        return await server.users.register(args.user, args.password, admin=args.admin)

    def live(holder: DataDirLocked) -> str:
        credential = admin_client.admin_credential(config, args.admin_token, holder,
                                                   "register-user")
        answer = admin_client.admin_post(
            config, "/users", {"username": args.user, "password": args.password,
                               "admin": args.admin}, credential, holder)
        if not isinstance(answer.get("user_id"), str):
            raise admin_client.AdminApiError("unexpected answer from the running edgehs: "
                                             "no user_id")
        return str(answer["user_id"])

    try:
        user_id, running = admin_client.write(config, direct, live)
    except MatrixError as exc:
        print(f"cannot register {args.user}: {exc.msg}", file=sys.stderr)
        return 1
    except admin_client.AdminApiError as exc:
        print(f"cannot register {args.user}: {exc}", file=sys.stderr)
        return 1
    print(f"Registered {user_id}" + (" (by the running edgehs)" if running else ""))
    return 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    """Rotate through the running server (admin API) when edgehs runs, else directly."""
    from edgehs import admin_client
    from edgehs.homeserver import HomeServer
    from edgehs.store.writer_lock import DataDirLocked

    config = load_config(Path(args.config))

    async def direct(server: HomeServer) -> str:
        return await server.server_keys.rotate()

    def live(holder: DataDirLocked) -> str:
        credential = admin_client.admin_credential(config, args.admin_token, holder,
                                                   "rotate-key")
        answer = admin_client.admin_post(config, "/rotate_key", {}, credential, holder)
        if not isinstance(answer.get("key_id"), str):
            raise admin_client.AdminApiError("unexpected answer from the running edgehs: "
                                             "no key_id")
        return str(answer["key_id"])

    try:
        new_id, running = admin_client.write(config, direct, live)
    except (MatrixError, admin_client.AdminApiError, OSError, ValueError) as exc:
        reason = exc.msg if isinstance(exc, MatrixError) else str(exc)
        print(f"cannot rotate the signing key: {reason}", file=sys.stderr)
        return 1
    print(f"New signing key {new_id}" + (" (in use by the running edgehs)" if running else ""))
    return 0


def _local_host(host: str) -> str:
    """An address this machine reaches its own listener on (wildcards become loopback)."""
    from edgehs.admin_client import local_host

    return local_host(host)


def _listening(host: str, port: int) -> bool:
    """Whether something (a running edgehs) accepts connections on the listen address."""
    try:
        with socket.create_connection((_local_host(host), port), timeout=0.5):
            return True
    except OSError:
        return False


def cmd_device_add(args: argparse.Namespace) -> int:
    """Provision through the running server (admin API) when edgehs runs, else directly."""
    from edgehs import admin_client
    from edgehs.homeserver import HomeServer
    from edgehs.service import devices
    from edgehs.store.writer_lock import DataDirLocked

    config = load_config(Path(args.config))

    async def direct(server: HomeServer) -> devices.ProvisionedDevice:
        return await devices.provision_device(
            server.users, server.rooms, args.name, room=args.room, owner=args.owner,
            any_room=args.any_room)

    def live(holder: DataDirLocked) -> devices.ProvisionedDevice:
        credential = admin_client.admin_credential(config, args.admin_token, holder,
                                                   "device add")
        body = {"name": args.name, "room_alias": args.room, "owner": args.owner,
                "any_room": args.any_room}
        answer = admin_client.admin_post(config, "/devices",
                                         {k: v for k, v in body.items() if v is not None},
                                         credential, holder)
        try:
            return devices.ProvisionedDevice.from_json(answer)
        except ValueError as exc:
            raise admin_client.AdminApiError(
                f"unexpected answer from the running edgehs: {exc}") from exc

    try:
        device, running = admin_client.write(config, direct, live)
    except MatrixError as exc:
        print(f"cannot add device {args.name}: {exc.msg}", file=sys.stderr)
        return 1
    except admin_client.AdminApiError as exc:
        print(f"cannot add device {args.name}: {exc}", file=sys.stderr)
        return 1
    host = config.listen_host
    if config.public_baseurl:
        base = config.public_baseurl
    else:  # a wildcard listen address is no address a device can post to
        host = config.server_name if host in admin_client.WILDCARD_HOSTS else host
        base = f"http://[{host}]:{config.listen_port}" if ":" in host else \
            f"http://{host}:{config.listen_port}"
    scope = "any room" if not device.room_limited else f"only {device.room_id}"
    print(f"Device user {device.user_id}, room {device.room_alias} ({device.room_id}), "
          f"token for {scope}" + (f"; invited {device.invited_owner}"
                                  if device.invited_owner else ""))
    if running:
        print("Provisioned by the running edgehs: the device's previous token, if any, no "
              "longer works.")
    print("Post a message, and a sensor reading (numbers as strings: no floats in events):")
    for line in devices.curl_lines(base, device.room_id, device.access_token):
        print(line)
    return 0


def cmd_appservice_new(args: argparse.Namespace) -> int:
    """Write a registration file; with -c, list it in the config (by editing its text)."""
    from edgehs.service.appservice import registration as reg
    from edgehs.service.appservice import registration_files as reg_files

    if not re.fullmatch(r"[A-Za-z0-9._-]+", args.id):
        print(f"ID must be letters, digits, '.', '_' or '-', not {args.id!r}", file=sys.stderr)
        return 2
    config_path = Path(args.config) if args.config else None
    config = load_config(config_path) if config_path else None
    out = Path(args.out) if args.out else (
        config.data_dir / "appservices" if config else Path.cwd()) / f"{args.id}.yaml"
    raw = reg_files.new_registration(
        args.id, args.url, args.users, args.aliases, args.rooms,
        args.sender_localpart or args.id.lower(), args.exclusive, args.receive_ephemeral,
    )
    service = reg.parse_registration(raw, str(out), config.server_name if config else "localhost")
    if out.exists():
        print(f"{out} already exists; not overwriting it", file=sys.stderr)
        return 1
    new_config = entry = None
    if config and config_path:
        reg.check_unique([*reg.load_registrations(config.app_service_config_files,
                                                  config.server_name), service])
        absolute = out.resolve()
        data_dir = config.data_dir.resolve()
        entry = str(absolute.relative_to(data_dir) if absolute.is_relative_to(data_dir)
                    else absolute)
        new_config = reg_files.add_config_file_entry(config_path.read_text(), entry,
                                                     str(config_path))
    out.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fd:
        os.fchmod(fd.fileno(), 0o600)
        fd.write(reg_files.render_registration(raw))
    print(f"Wrote {out} (mode 0600: as_token and hs_token are secrets; give the application "
          f"service the same values)")
    if new_config is not None and config_path is not None:
        tmp = config_path.with_name(config_path.name + ".tmp")
        tmp.write_text(new_config)
        tmp.chmod(stat.S_IMODE(config_path.stat().st_mode))
        os.replace(tmp, config_path)
        print(f"Added {entry} to app_service_config_files in {config_path}")
    else:
        print("List it under app_service_config_files in edgehs.yaml (or run this with -c).")
    print("Restart edgehs to load it.")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from edgehs.demo import run_demo

    services = tuple(s.strip() for s in args.services.split(",") if s.strip())
    return run_demo(Path(args.data_dir), args.listen, args.server_name, services,
                    args.port_base, args.verbose)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgehs", description="A small Matrix homeserver")
    parser.add_argument("--version", action="version", version=f"edgehs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate-config", help="write DIR/edgehs.yaml and a signing key")
    gen.add_argument("--server-name", required=True)
    gen.add_argument("--data-dir", required=True)
    gen.add_argument("--listen", default="127.0.0.1:8008")
    gen.add_argument("--enable-registration", action="store_true")
    gen.set_defaults(func=cmd_generate_config)

    run = sub.add_parser("run", help="serve")
    run.add_argument("-c", "--config", required=True)
    run.set_defaults(func=cmd_run)

    reg = sub.add_parser(
        "register-user", help="create a user (works with registration off)",
        description="Create a local user. While edgehs runs, the running server does it "
        "(POST /_edgehs/admin/v1/users on its listen address, authenticated by "
        "DATA_DIR/admin.secret: run this as the user edgehs runs as, or pass --admin-token); "
        "while edgehs is stopped, the database is written directly.")
    reg.add_argument("-c", "--config", required=True)
    reg.add_argument("user", help="the localpart, e.g. alice")
    reg.add_argument("--password", required=True)
    reg.add_argument("--admin", action="store_true", help="make the user a server admin")
    reg.add_argument("--admin-token", metavar="TOKEN",
                     help="while edgehs runs: a server admin's access token instead of "
                          "DATA_DIR/admin.secret")
    reg.set_defaults(func=cmd_register_user)

    rot = sub.add_parser(
        "rotate-key", help="make a new signing key current; publish the old one as expired",
        description="Generate a new signing key and make it current (the key file is "
        "replaced, mode 0600); the previous key is published in old_verify_keys of "
        "/_matrix/key/v2/server with expired_ts = now. While edgehs runs, the running server "
        "does it (POST /_edgehs/admin/v1/rotate_key, authenticated by DATA_DIR/admin.secret "
        "or --admin-token) and signs with the new key at once. Prints the new key id.")
    rot.add_argument("-c", "--config", required=True)
    rot.add_argument("--admin-token", metavar="TOKEN",
                     help="while edgehs runs: a server admin's access token instead of "
                          "DATA_DIR/admin.secret")
    rot.set_defaults(func=cmd_rotate_key)

    appservice = sub.add_parser("appservice", help="application service registrations")
    as_sub = appservice.add_subparsers(dest="appservice_command", required=True)
    new = as_sub.add_parser("new", help="write a registration file (Synapse format)")
    new.add_argument("id", metavar="ID", help="the application service's id, e.g. telegram")
    new.add_argument("--url", required=True, help="where edgehs pushes transactions")
    new.add_argument("--users", nargs="+", required=True, metavar="REGEX",
                     help="user id namespace(s), e.g. '@telegram_.+:example.org'")
    new.add_argument("--aliases", nargs="+", default=[], metavar="REGEX")
    new.add_argument("--rooms", nargs="+", default=[], metavar="REGEX")
    new.add_argument("--sender-localpart", help="the AS's own user (default: ID in lower case)")
    new.add_argument("--exclusive", action=argparse.BooleanOptionalAction, default=True,
                     help="claim the namespaces exclusively (default: yes)")
    new.add_argument("--receive-ephemeral", action="store_true",
                     help="also push typing, receipts and presence")
    new.add_argument("-c", "--config", help="edgehs.yaml to list the new file in")
    new.add_argument("--out", help="the file to write (default: DATA_DIR/appservices/ID.yaml "
                                   "with -c, else ./ID.yaml)")
    new.set_defaults(func=cmd_appservice_new)

    device = sub.add_parser("device", help="plain-HTTP devices (microcontrollers with curl)")
    dev_sub = device.add_subparsers(dest="device_command", required=True)
    add = dev_sub.add_parser(
        "add", help="a user, a room and a long-lived token for a device; prints curl lines",
        description="Create (or reuse) @device_NAME and its room, issue a new access token "
        "(revoking the previous one) and print the curl lines the device posts with. Readings "
        "go as integers or strings (e.g. {\"value\":\"21.5\",\"unit\":\"C\"}): event "
        "content is canonical JSON, which refuses floats. While edgehs runs, the running "
        "server does the work (POST /_edgehs/admin/v1/devices on its listen address), "
        "authenticated by the secret it writes to DATA_DIR/admin.secret (mode 0600) at "
        "start: run this as the user edgehs runs as, or pass --admin-token. The old token "
        "then stops working at once. While edgehs is stopped, the database is written "
        "directly.")
    add.add_argument("name", metavar="NAME", help="the device, e.g. greenhouse")
    add.add_argument("--room", metavar="ALIAS",
                     help="a local alias or its localpart (default: #NAME:SERVER); created if "
                          "missing, joined if it exists")
    add.add_argument("--owner", metavar="USER",
                     help="an existing local user to invite with power 50 to read the room")
    add.add_argument("--any-room", action="store_true",
                     help="do not limit the token to the device's room")
    add.add_argument("--admin-token", metavar="TOKEN",
                     help="while edgehs runs: a server admin's access token instead of "
                          "DATA_DIR/admin.secret (note: visible to other local users in the "
                          "process list)")
    add.add_argument("-c", "--config", required=True)
    add.set_defaults(func=cmd_device_add)

    demo = sub.add_parser(
        "demo", help="edgehs plus the MIDI, GPIO and camera services on simulated hardware",
        description="Set up DIR on first run (config with open registration, devices.yaml, "
        "user demo), start edgehs and the device services, join demo to every device room, "
        "play a MIDI phrase, write DIR/demo.json. Ctrl-C stops everything.")
    demo.add_argument("--data-dir", required=True, metavar="DIR")
    demo.add_argument("--listen", metavar="HOST:PORT",
                      help="first run: where edgehs listens (default 127.0.0.1:8008)")
    demo.add_argument("--server-name", metavar="NAME", help="first run (default localhost)")
    demo.add_argument("--services", default="midi,gpio,camera",
                      help="device services to start (default midi,gpio,camera)")
    demo.add_argument("--port-base", type=int, metavar="N",
                      help="first run: the services listen on N, N+1, N+2 (default: 9101 "
                           "if free, else free ports)")
    demo.add_argument("-v", "--verbose", action="store_true",
                      help="show every log line of the children, not only warnings")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
