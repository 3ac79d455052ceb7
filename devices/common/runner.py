"""``run_service(ServiceClass, argv)``: the whole life of one device service process.

Exit codes: 0 after SIGTERM/SIGINT, 2 for a bad devices.yaml (the message names the key),
1 when starting fails (port taken, edgehs does not know the registration, a driver failed).
systemd: ``Type=notify`` gets READY=1 once the device rooms exist, and WATCHDOG=1 pings every
WATCHDOG_USEC/2 when the unit sets ``WatchdogSec=``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from devices.common.appservice import AppServiceServer
from devices.common.config import DeviceConfigError, ServiceConfig, load_service_config
from devices.common.device import DeviceService, ServiceEvents
from devices.common.intent import HomeserverClient, HomeserverError

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def sd_notify(message: str) -> bool:
    """Send ``message`` (e.g. "READY=1") to $NOTIFY_SOCKET; False when not under systemd.

    https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket name
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("sd_notify(%r) failed: %s", message, exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Half of WATCHDOG_USEC in seconds, if the watchdog is meant for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2e6 if value > 0 else None


async def _watchdog(interval: float) -> None:
    while True:
        sd_notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def parse_args(service: str, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m devices.{service}",
        description=f"The edgehs {service} device service (a Matrix application service).")
    parser.add_argument("-c", "--config", required=True, type=Path,
                        help="devices.yaml (written by `python -m devices init`)")
    parser.add_argument("--log-level", default=os.environ.get("EDGEHS_DEVICES_LOG", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper)
    return parser.parse_args(argv)


def load_checked(cls: type[DeviceService], path: Path) -> ServiceConfig:
    """load_service_config + cls.validate (DeviceConfigError for any bad key)."""
    config = load_service_config(path, cls.service)
    cls.validate(config)
    return config


def run_service(cls: type[DeviceService], argv: list[str] | None = None) -> int:
    """Run ``cls`` until SIGTERM/SIGINT; the process exit code."""
    args = parse_args(cls.service, argv)
    try:
        config = load_checked(cls, args.config)
    except DeviceConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(_run(cls, config))


async def _run(cls: type[DeviceService], config: ServiceConfig) -> int:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    client = HomeserverClient(config.homeserver.url, config.appservice.as_token,
                              config.homeserver.server_name)
    service = cls(config, client)
    events = ServiceEvents(service)
    server = AppServiceServer(config.appservice.hs_token, config.appservice.host,
                              config.appservice.port, events)
    watchdog: asyncio.Task[None] | None = None
    code = EXIT_OK
    try:
        try:
            await server.start()  # bound before contacting edgehs, so it can push at once
        except OSError as exc:
            log.error("cannot listen on %s: %s", config.appservice.listen, exc)
            return EXIT_FAILED
        startup = asyncio.create_task(_start(service, config, events))
        stop_wait = asyncio.create_task(stopping.wait())
        await asyncio.wait({startup, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if not startup.done():  # SIGTERM while waiting for edgehs or starting: a clean exit
            startup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await startup
        else:
            stop_wait.cancel()
            if not startup.result():
                code = EXIT_FAILED
            else:
                events.ready.set()
                sd_notify("READY=1")
                interval = watchdog_interval()
                if interval is not None:
                    watchdog = asyncio.create_task(_watchdog(interval))
                log.info("%s service ready (application service %s)", cls.service,
                         config.appservice.id)
                await stopping.wait()
                log.info("stopping")
    finally:
        sd_notify("STOPPING=1")
        if watchdog is not None:
            watchdog.cancel()
        if events.start_called:  # start() ran, maybe part-way: stop() cleans up
            try:
                await service.stop()
            except Exception:
                log.exception("%s: stop() failed", cls.service)
                code = EXIT_FAILED
        await server.stop()
        await client.close()
    return code


async def _start(service: DeviceService, config: ServiceConfig, events: ServiceEvents) -> bool:
    """Wait for edgehs, check it knows us, register the sender, start the service."""
    client = service.client
    log.info("waiting for edgehs at %s", config.homeserver.url)
    await client.wait_until_up()
    try:
        await client.ping(config.appservice.id)
    except HomeserverError as exc:
        if exc.status in (401, 403) or exc.errcode in ("M_UNKNOWN_TOKEN", "M_FORBIDDEN"):
            log.error("edgehs does not accept this application service (%s): list %s in "
                      "edgehs.yaml's app_service_config_files and restart edgehs", exc,
                      config.appservice.registration)
            return False
        log.warning("ping through edgehs failed (%s); continuing", exc)
    try:
        await service.bot.ensure_registered()
        events.start_called = True
        await service.start()
    except HomeserverError as exc:
        log.error("%s: start-up failed: %s", config.service, exc)
        return False
    except Exception:
        log.exception("%s: start-up failed", config.service)
        return False
    return True
