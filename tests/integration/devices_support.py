"""Support for the device service integration tests: a devices.yaml made by
``python -m devices init`` beside a real edgehs, an owner user, device processes and small
Client-Server helpers (``MatrixUser``, in devices_matrix.py, re-exported here). A plain
module beside the tests (like as_support.py).

Use it from a test module in tests/integration::

    from devices_support import *  # noqa: F403  (fixtures: devices, owner, make_user, ...)

    @pytest.fixture
    def device_services() -> list[str]:
        return ["midi"]                      # sections from devices.<svc>.defaults

    async def test_x(devices: DevicesSetup, owner: MatrixUser, device_process) -> None:
        proc = await device_process("midi")  # python -m devices.midi -c DIR/devices.yaml
        room_id = await owner.join_when_invited(devices.alias("midi", "sim"))
        event = await owner.wait_for(room_id, type="m.room.message", sender=..., after=...)

The star import brings the fixtures ``device_services``, ``device_sections``, ``devices_plan``,
``server_prepare`` (overriding conftest's: it writes devices.yaml and lists the registrations in
edgehs.yaml before edgehs starts), ``devices``, ``owner``, ``make_user``, ``device_process``.
Override ``device_sections`` to add sections the kit writes as given (e.g. the kit's "echo").
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from as_support import SERVER_NAME, add_registration_file, free_port
from devices_matrix import V3, WAIT_S, MatrixUser, q, register_user

from devices.common.config import load_service_config
from devices.common.registration import devices_config, write_devices_config, write_registration

__all__ = [
    "OWNER",
    "SERVER_NAME",
    "V3",
    "WAIT_S",
    "DeviceProcess",
    "DevicesSetup",
    "MatrixUser",
    "device_process",
    "device_sections",
    "device_services",
    "devices",
    "devices_plan",
    "free_port",
    "free_port_base",
    "make_user",
    "owner",
    "q",
    "register_user",
    "run_module",
    "server_prepare",
]

OWNER = f"@owner:{SERVER_NAME}"
DEVICE_START_S = 30.0
DEVICE_STOP_S = 20.0
READY_LINE = "service ready (application service"  # logged by devices.common.runner


def free_port_base(count: int = 3) -> int:
    """A port N with N .. N+count-1 all free on 127.0.0.1 (for ``init --port-base``)."""
    for _ in range(200):
        base = free_port()
        if base + count > 65535:
            continue
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports")


def run_module(module: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE ARGS`` to completion, output captured."""
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


# --- devices.yaml beside edgehs ---------------------------------------------------------------

class DevicesSetup:
    """DIR/devices.yaml for ``services`` (from ``python -m devices init``) plus ``sections``
    written as given; ``prepare(server)`` runs before edgehs starts."""

    def __init__(self, tmp_path: Path, services: list[str],
                 sections: Mapping[str, Mapping[str, Any]], owners: list[str]) -> None:
        self.tmp_path = tmp_path
        self.dir = tmp_path / "devices"
        self.config_path = self.dir / "devices.yaml"
        self.services = list(services)
        self.sections = dict(sections)
        self.owners = owners
        self.port_base = free_port_base(3)
        self.homeserver_url = ""

    def prepare(self, server: Any) -> None:
        """Write devices.yaml + registrations for edgehs at ``server.base_url`` and list them
        in its edgehs.yaml (``server`` is conftest's ServerProcess, not started yet)."""
        self.homeserver_url = server.base_url
        owner_args = [a for o in self.owners for a in ("--owner", o)]
        if self.services:
            done = run_module("devices", "init", str(self.dir), "--server-name", SERVER_NAME,
                              "--homeserver", server.base_url, "--services",
                              ",".join(self.services), "--port-base", str(self.port_base),
                              *owner_args)
            assert done.returncode == 0, f"devices init failed:\n{done.stdout}\n{done.stderr}"
        if self.sections:
            self._add_sections(server.base_url)
        for svc in self.all_services:
            path = self.registration(svc)
            add_registration_file(server.config_path, path, path.read_text())

    def _add_sections(self, base_url: str) -> None:
        """The custom sections (with free ports), written through the kit's own writer."""
        ports = {svc: free_port() for svc in self.sections}
        raw = devices_config(SERVER_NAME, base_url, self.owners, self.sections)
        for svc in self.sections:
            raw[svc]["appservice"]["listen"] = f"127.0.0.1:{ports[svc]}"
        if not self.config_path.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            write_devices_config(self.dir, raw)
            return
        current = self.raw()
        for svc in self.sections:
            current[svc] = raw[svc]
        self.write(current)
        for svc in self.sections:
            write_registration(load_service_config(self.config_path, svc))

    @property
    def all_services(self) -> list[str]:
        return [*self.services, *self.sections]

    def raw(self) -> dict[str, Any]:
        return dict(yaml.safe_load(self.config_path.read_text()))

    def write(self, raw: Mapping[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(dict(raw), sort_keys=False))

    def update(self, service: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Edit ``service``'s section in place (before starting its process)."""
        raw = self.raw()
        change(raw[service])
        self.write(raw)

    def appservice(self, service: str) -> dict[str, Any]:
        return dict(self.raw()[service]["appservice"])

    def as_url(self, service: str) -> str:
        return f"http://{self.appservice(service)['listen']}"

    def registration(self, service: str) -> Path:
        rel = self.appservice(service).get("registration", f"appservices/edgehs_{service}.yaml")
        return self.dir / str(rel)

    @staticmethod
    def user_id(service: str, name: str) -> str:
        return f"@{service}_{name}:{SERVER_NAME}"

    @staticmethod
    def alias(service: str, name: str) -> str:
        return f"#{service}_{name}:{SERVER_NAME}"

    def as_client(self, service: str) -> MatrixUser:
        """A MatrixUser with the service's as_token (acting as its sender unless ?user_id=)."""
        return MatrixUser(self.homeserver_url, f"@{service}:{SERVER_NAME}",
                          self.appservice(service)["as_token"])


# --- device processes ----------------------------------------------------------------------

class DeviceProcess:
    """``python -m MODULE -c devices.yaml`` as a subprocess, output in LOG."""

    def __init__(self, module: str, config_path: Path, log_path: Path,
                 args: tuple[str, ...] = (), env: Mapping[str, str] | None = None) -> None:
        self.module = module
        self.config_path = config_path
        self.log_path = log_path
        self.args = args
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.returncode: int | None = None
        self._log_offset = 0

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", self.module, "-c", str(self.config_path), *self.args]

    def spawn(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.module} is running"
        self.runs += 1
        env = None
        if self.env is not None:
            env = {**os.environ, **self.env}
        with self.log_path.open("ab") as log:
            log.write(f"===== {self.module} run {self.runs} =====\n".encode())
            log.flush()
            self._log_offset = log.tell()
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env)

    async def start(self, *, alias: str | None = None, user: MatrixUser | None = None,
                    log_line: str | None = READY_LINE, timeout: float = DEVICE_START_S) -> None:
        self.spawn()
        await self.wait_ready(alias=alias, user=user, log_line=log_line, timeout=timeout)

    def _run_log(self) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    async def wait_ready(self, *, alias: str | None = None, user: MatrixUser | None = None,
                         log_line: str | None = READY_LINE,
                         timeout: float = DEVICE_START_S) -> None:
        """Until ``log_line`` is in this run's log and ``alias`` resolves (as ``user``)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                raise AssertionError(f"{self.module} exited with {code} while starting; log:\n"
                                     f"{self.log_tail()}")
            ready = log_line is None or log_line in self._run_log()
            if ready and alias is not None:
                assert user is not None, "wait_ready(alias=...) needs user="
                ready = await user.resolve_alias(alias) is not None
            if ready:
                return
            if time.monotonic() > deadline:
                self.kill_now()
                raise AssertionError(f"{self.module} not ready within {timeout:.0f}s "
                                     f"(log line {log_line!r}, alias {alias}); log:\n"
                                     f"{self.log_tail()}")
            await asyncio.sleep(0.05)

    async def wait_exit(self, timeout: float = DEVICE_STOP_S) -> int | None:
        assert self.proc is not None
        try:
            code = await asyncio.to_thread(self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            return None
        self.returncode = code
        return code

    async def stop(self) -> None:
        """SIGTERM; the process must exit 0 in time."""
        assert self.proc is not None and self.proc.poll() is None, f"{self.module} not running"
        self.proc.send_signal(signal.SIGTERM)
        code = await self.wait_exit()
        if code is None:
            self.kill_now()
            raise AssertionError(f"{self.module} did not exit within {DEVICE_STOP_S}s of "
                                 f"SIGTERM; log:\n{self.log_tail()}")
        self.proc = None
        assert code == 0, f"{self.module} exited with {code} after SIGTERM; log:\n" \
                          f"{self.log_tail()}"

    async def kill(self) -> None:
        """SIGKILL (a crash or power cut)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        code = await self.wait_exit()
        assert code == -signal.SIGKILL, f"expected death by SIGKILL, got {code}"
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill_now(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
            self.proc = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_text().splitlines()
        return "\n".join(text[-lines:]) if text else "(no log written)"


# --- fixtures (bring them in with ``from devices_support import *``) -------------------------

@pytest.fixture
def device_services() -> list[str]:
    """Services whose sections come from ``python -m devices init`` (override per module)."""
    return []


@pytest.fixture
def device_sections() -> dict[str, dict[str, Any]]:
    """Extra service sections written as given, each with a fresh ``appservice`` part."""
    return {}


@pytest.fixture
def devices_plan(tmp_path: Path, device_services: list[str],
                 device_sections: dict[str, dict[str, Any]]) -> DevicesSetup:
    return DevicesSetup(tmp_path, device_services, device_sections, [OWNER])


@pytest.fixture
def server_prepare(devices_plan: DevicesSetup) -> Callable[[Any], None]:
    """Overrides conftest's hook: devices.yaml + registrations, listed in edgehs.yaml."""
    return devices_plan.prepare


@pytest.fixture
def devices(server: Any, devices_plan: DevicesSetup) -> DevicesSetup:
    """The devices.yaml of a running edgehs (``server``) that knows its registrations."""
    return devices_plan


@pytest.fixture
async def make_user(server: Any) -> AsyncIterator[Callable[[str], Awaitable[MatrixUser]]]:
    """``await make_user("bob")``: a registered normal (non-owner) user."""
    made: list[MatrixUser] = []

    async def _make(name: str) -> MatrixUser:
        user = await register_user(server.base_url, name)
        made.append(user)
        return user
    yield _make
    for user in made:
        await user.close()


@pytest.fixture
async def owner(make_user: Callable[[str], Awaitable[MatrixUser]]) -> MatrixUser:
    """@owner:test.local, listed in devices.yaml's owners. Request it BEFORE starting a
    device so the invite goes to an existing user."""
    user = await make_user("owner")
    assert user.user_id == OWNER
    return user


@pytest.fixture
async def device_process(devices: DevicesSetup
                         ) -> AsyncIterator[Callable[..., Awaitable[DeviceProcess]]]:
    """``await device_process("midi")``: ``python -m devices.midi -c DIR/devices.yaml``
    started and ready (``module=`` for another module, ``start=False`` to only create it).
    Teardown: SIGTERM (exit 0 expected) and no traceback in its log."""
    made: list[DeviceProcess] = []

    async def _start(service: str, *, module: str | None = None, start: bool = True,
                     args: tuple[str, ...] = (), env: Mapping[str, str] | None = None,
                     **wait: Any) -> DeviceProcess:
        name = module or f"devices.{service}"
        log_path = devices.tmp_path / f"{service}-{len(made)}.log"
        proc = DeviceProcess(name, devices.config_path, log_path, args, env)
        made.append(proc)
        if start:
            await proc.start(**wait)
        return proc

    failures: list[str] = []
    try:
        yield _start
    finally:
        for proc in made:
            if proc.running:
                try:
                    await proc.stop()
                except AssertionError as exc:
                    failures.append(str(exc))
                finally:
                    proc.kill_now()
            if "Traceback (most recent call last)" in proc.log_text():
                failures.append(f"{proc.module} logged a traceback:\n{proc.log_tail(120)}")
            print(f"---- {proc.module} log ({proc.log_path}) ----\n{proc.log_tail()}")
    if failures:
        pytest.fail("\n\n".join(failures))
