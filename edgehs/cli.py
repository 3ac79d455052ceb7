"""The ``edgehs`` command: generate-config, run, register-user."""

import argparse
import asyncio
import logging
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

    from edgehs.app import init_app

    config = load_config(Path(args.config))
    logging.basicConfig(level=config.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("edgehs %s starting: server_name=%s listen=%s:%d database=%s", __version__,
             config.server_name, config.listen_host, config.listen_port, config.database_path)
    app = init_app(config)

    def announce(_banner: str) -> None:
        # run_app calls this once the socket is bound.
        base = f"http://{config.listen_host}:{config.listen_port}"
        log.info("listening on %s — connect a Matrix client to it; create a user with: "
                 "edgehs register-user -c %s NAME --password PASSWORD", base, args.config)

    try:
        web.run_app(app, host=config.listen_host, port=config.listen_port, print=announce,
                    access_log=None, shutdown_timeout=10)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", config.listen_host, config.listen_port,
                  exc.strerror)
        return 1
    log.info("edgehs stopped cleanly")
    return 0


def cmd_register_user(args: argparse.Namespace) -> int:
    from edgehs.homeserver import HomeServer

    config = load_config(Path(args.config))

    async def run() -> str:
        server = HomeServer(config)
        await server.start()
        try:
            return await server.users.register(args.user, args.password, admin=args.admin)
        finally:
            await server.stop()

    try:
        user_id = asyncio.run(run())
    except MatrixError as exc:
        print(f"cannot register {args.user}: {exc.msg}", file=sys.stderr)
        return 1
    print(f"Registered {user_id}")
    return 0


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

    reg = sub.add_parser("register-user", help="create a user (works with registration off)")
    reg.add_argument("-c", "--config", required=True)
    reg.add_argument("user", help="the localpart, e.g. alice")
    reg.add_argument("--password", required=True)
    reg.add_argument("--admin", action="store_true")
    reg.set_defaults(func=cmd_register_user)
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
