"""Helpers for the application service integration tests: registrations, raw HTTP, and a
mautrix-python appservice ("the bridge") that records what edgehs pushes to it.

``from as_support import ...`` (a plain module beside the tests, like tests/support.py).
"""

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nio
import pytest
import yaml
from aiohttp import web
from mautrix.appservice import AppService, IntentAPI
from mautrix.appservice.state_store import ASStateStore
from mautrix.client.state_store import MemoryStateStore
from mautrix.types import Event, RoomAlias, UserID
from server_process import free_port  # noqa: F401 (re-exported: tests import it from here)

SERVER_NAME = "test.local"
BRIDGE_USERS = "@bridge_.*:" + re.escape(SERVER_NAME)  # the bridge's user namespace
GHOST = f"@bridge_ghost:{SERVER_NAME}"                 # a virtual user inside it
# Marks for a module that runs the mautrix bridge (mautrix 0.21 passes loop= to aiohttp).
BRIDGE_MARKS = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:loop argument is deprecated:DeprecationWarning"),
]
NioUser = Callable[[str], Awaitable[nio.AsyncClient]]
WAIT_S = 30.0  # the longest any test waits for pushed events (first retry 1 s, then 2, 4, ...)

QueryAlias = Callable[[RoomAlias], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class Registration:
    """The parts of a registration file an application service needs."""

    path: Path
    id: str
    url: str | None
    as_token: str
    hs_token: str
    sender_localpart: str

    @property
    def sender(self) -> str:
        return f"@{self.sender_localpart}:{SERVER_NAME}"


def edgehs_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``edgehs ARGS`` (the script beside this interpreter), output captured."""
    script = Path(sys.executable).with_name("edgehs")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "edgehs"]
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60,
                          check=False)


def load_registration(path: Path) -> Registration:
    raw = yaml.safe_load(path.read_text())
    return Registration(path, raw["id"], raw.get("url"), raw["as_token"], raw["hs_token"],
                        raw["sender_localpart"])


def appservice_new(config_path: Path, as_id: str, url: str, *options: str) -> Registration:
    """``edgehs appservice new AS_ID --url URL OPTIONS -c CONFIG``, as an admin would run it:
    the file goes to DATA_DIR/appservices/AS_ID.yaml and is listed (relative) in the config."""
    done = edgehs_cli("appservice", "new", as_id, "--url", url, *options, "-c", str(config_path))
    assert done.returncode == 0, f"appservice new failed:\n{done.stdout}\n{done.stderr}"
    path = config_path.parent / "appservices" / f"{as_id}.yaml"
    listed = yaml.safe_load(config_path.read_text())["app_service_config_files"]
    assert f"appservices/{as_id}.yaml" in listed, listed
    return load_registration(path)


def add_registration_file(config_path: Path, path: Path, raw: object) -> None:
    """Write ``raw`` as a YAML registration at ``path`` and list it in the config."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw, sort_keys=False))
    config = yaml.safe_load(config_path.read_text())
    config["app_service_config_files"] = [*(config.get("app_service_config_files") or []),
                                          str(path)]
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))


async def call(http: aiohttp.ClientSession, method: str, path: str, expect: int = 200,
               errcode: str | None = None, **kwargs: Any) -> Any:
    """One raw request; asserts the status (and the errcode of an error body)."""
    async with http.request(method, path, **kwargs) as resp:
        text = await resp.text()
    try:
        body = json.loads(text)
    except ValueError:
        body = text
    assert resp.status == expect, f"{method} {path} -> {resp.status} {body}"
    if errcode is not None:
        assert isinstance(body, dict) and body.get("errcode") == errcode, (
            f"{method} {path}: expected {errcode}, got {body}")
    return body


async def wait_until(check: Callable[[], bool], what: Callable[[], str],
                     timeout: float = WAIT_S) -> None:
    """Poll ``check`` every 20 ms until it holds; fail with ``what()`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s: {what()}")
        await asyncio.sleep(0.02)


class MemoryASStateStore(MemoryStateStore, ASStateStore):
    """mautrix's in-memory state store with the appservice parts (its default writes a file
    into the working directory)."""

    def __init__(self) -> None:
        MemoryStateStore.__init__(self)
        ASStateStore.__init__(self)


@dataclass(frozen=True)
class Received:
    """One event as the bridge's event handler saw it."""

    event_id: str
    room_id: str
    sender: str
    type: str
    body: str | None


@dataclass
class Delivery:
    """One raw request to the bridge's HTTP server (duplicates included)."""

    method: str
    path: str
    txn_id: str | None
    event_ids: list[str] = field(default_factory=list)
    body: Any = None


class Bridge:
    """A mautrix-python ``AppService`` on 127.0.0.1:PORT for one registration.

    ``stop()`` then ``start()`` is a restart of the bridge process: a new AppService object (so
    mautrix's in-memory transaction dedupe starts empty), on the same port. What its event
    handler saw (``received``, deduplicated by mautrix, in handling order) and every raw request
    (``deliveries``) are kept across restarts.
    """

    def __init__(self, base_url: str, registration: Registration, port: int,
                 query_alias: QueryAlias | None = None) -> None:
        self.base_url = base_url
        self.registration = registration
        self.port = port
        self.query_alias = query_alias
        self.received: list[Received] = []
        self.deliveries: list[Delivery] = []
        self.lose_answers = 0  # answer the next N transactions 502 after handling them
        self.appservice: AppService | None = None

    @property
    def running(self) -> bool:
        return self.appservice is not None

    @property
    def bot(self) -> IntentAPI:
        assert self.appservice is not None, "the bridge is not running"
        return self.appservice.intent

    def intent(self, user_id: str) -> IntentAPI:
        return self.bot.user(UserID(user_id))

    async def start(self) -> None:
        assert self.appservice is None, "the bridge is already running"
        reg = self.registration
        appservice = AppService(
            server=self.base_url, domain=SERVER_NAME, as_token=reg.as_token,
            hs_token=reg.hs_token, bot_localpart=reg.sender_localpart, id=reg.id,
            loop=asyncio.get_running_loop(), state_store=MemoryASStateStore(),
            # mautrix calls it with the alias (its QueryFunc hint says web.Request).
            query_alias=self.query_alias,  # type: ignore[arg-type]
        )
        appservice.synchronous_handlers = True  # handle events in transaction order
        appservice.matrix_event_handler(self._on_event)
        appservice.app.middlewares.append(self._record)
        await appservice.start(host="127.0.0.1", port=self.port)
        self.appservice = appservice

    async def stop(self) -> None:
        if self.appservice is not None:
            appservice, self.appservice = self.appservice, None
            await appservice.stop()

    async def _on_event(self, event: Event) -> None:
        content = getattr(event, "content", None)
        body = content.get("body") if isinstance(content, dict) else getattr(content, "body",
                                                                             None)
        self.received.append(Received(str(event.event_id), str(event.room_id),
                                      str(event.sender), str(event.type), body))

    @web.middleware
    async def _record(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            with contextlib.suppress(ValueError):
                body = await request.json()  # cached: mautrix reads it again
        txn_id = request.match_info.get("transaction_id")
        events = body.get("events") if isinstance(body, dict) else None
        event_ids = [str(e.get("event_id")) for e in events or [] if isinstance(e, dict)]
        self.deliveries.append(Delivery(request.method, request.path, txn_id, event_ids, body))
        response = await handler(request)
        if txn_id is not None and self.lose_answers > 0:
            self.lose_answers -= 1  # handled, but edgehs never hears the 200: it must resend
            return web.json_response({"errcode": "M_UNKNOWN", "error": "answer lost"},
                                     status=502)
        return response

    def messages(self, room_id: str) -> list[Received]:
        return [r for r in self.received if r.room_id == room_id and r.type == "m.room.message"]

    def bodies(self, room_id: str) -> list[str | None]:
        return [r.body for r in self.messages(room_id)]

    async def wait_for_bodies(self, room_id: str, count: int,
                              timeout: float = WAIT_S) -> list[str | None]:
        """The bodies of the first ``count`` messages handled for the room, once there."""
        await wait_until(lambda: len(self.messages(room_id)) >= count,
                         lambda: f"the bridge handled {len(self.messages(room_id))}/{count} "
                                 f"messages in {room_id}: {self.bodies(room_id)}", timeout)
        return self.bodies(room_id)[:count]
