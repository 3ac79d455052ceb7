"""The application service scenario: events from a normal user's send to an appservice.

After the restart measurement, the server is stopped, an application service registration
(Synapse's YAML format, which both servers read from ``app_service_config_files``) is added to
its config, a receiver starts in this process on a free loopback port, and the server starts
again (untimed). Setup (untimed): a normal user registers and creates a public room; the
appservice registers its virtual user ``@asbench_ghost`` (``m.login.application_service``) and
joins it to the room (``?user_id=``), which makes every event of the room interesting to it.

Timed, each message carrying a unique body the receiver recognises:
- latency: ``as_messages`` sends one after another; per event, the time from the start of
  ``PUT /send`` to its arrival in a ``PUT /_matrix/app/v1/transactions/{txnId}`` at the
  receiver (one clock: both ends are in this process). p50 and p99.
- throughput: ``as_messages`` more sends, ``as_concurrency`` in flight at once; events/s from
  the first send's start to the last event's arrival.

Spec: https://spec.matrix.org/v1.19/application-service-api/#pushing-events
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import yaml
from aiohttp import web

from bench.client import Client
from bench.model import Params, ServerResult
from bench.procs import ServerProcess, free_port
from bench.stats import ms, percentile

AS_ID = "bench-appservice"
NAMESPACE_PREFIX = "asbench_"
GHOST_LOCALPART = NAMESPACE_PREFIX + "ghost"
WARMUP_MESSAGES = 5
ARRIVAL_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Registration:
    as_token: str
    hs_token: str
    url: str


def install(config_path: Path, port: int) -> Registration:
    """Write ``appservice.yaml`` beside the server's config and list it (absolute path) in
    ``app_service_config_files``; returns what the receiver and the AS client need."""
    config = yaml.safe_load(config_path.read_text()) or {}
    server_name = str(config["server_name"])
    reg = Registration(secrets.token_urlsafe(24), secrets.token_urlsafe(24),
                       f"http://127.0.0.1:{port}")  # fmt: skip
    regex = "@" + NAMESPACE_PREFIX + ".*:" + server_name.replace(".", r"\.")
    raw = {
        "id": AS_ID,
        "url": reg.url,
        "as_token": reg.as_token,
        "hs_token": reg.hs_token,
        "sender_localpart": "asbench",
        "rate_limited": False,
        "namespaces": {"users": [{"regex": regex, "exclusive": True}], "aliases": [], "rooms": []},
    }
    path = config_path.parent / "appservice.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    config["app_service_config_files"] = [str(path.resolve())]
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return reg


@dataclass
class Receiver:
    """The appservice's HTTP side: records when each recognised body arrives."""

    hs_token: str
    arrivals: dict[str, float] = field(default_factory=dict)
    transactions: int = 0
    duplicates: int = 0
    _seen_txns: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None

    async def start(self, port: int) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_put("/_matrix/app/v1/transactions/{txn}", self._transaction)
        app.router.add_put("/transactions/{txn}", self._transaction)  # legacy path
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _transaction(self, request: web.Request) -> web.Response:
        """PUT /_matrix/app/v1/transactions/{txnId} — https://spec.matrix.org/v1.19/application-service-api/#put_matrixappv1transactionstxnid"""
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.hs_token not in (token, request.query.get("access_token")):
            error = {"errcode": "M_FORBIDDEN", "error": "bad hs_token"}
            return web.json_response(error, status=403)
        body: dict[str, Any] = await request.json()
        now = time.perf_counter()
        txn = request.match_info["txn"]
        if txn in self._seen_txns:
            return web.json_response({})  # a retry of what we already have
        self._seen_txns.add(txn)
        self.transactions += 1
        for event in body.get("events", []):
            text = (event.get("content") or {}).get("body")
            if isinstance(text, str):
                if text in self.arrivals:
                    self.duplicates += 1
                else:
                    self.arrivals[text] = now
        return web.json_response({})

    async def wait_for(self, bodies: list[str], timeout_s: float = ARRIVAL_TIMEOUT_S) -> None:
        deadline = time.perf_counter() + timeout_s
        while any(b not in self.arrivals for b in bodies):
            if time.perf_counter() > deadline:
                missing = sum(1 for b in bodies if b not in self.arrivals)
                raise RuntimeError(
                    f"{missing}/{len(bodies)} events never reached the appservice within "
                    f"{timeout_s:.0f}s ({self.transactions} transactions received)"
                )
            await asyncio.sleep(0.002)


async def _setup(session: aiohttp.ClientSession, base_url: str, reg: Registration) -> tuple[
    Client, str
]:
    """A normal user's public room with the appservice's virtual user joined in it."""
    tag = uuid.uuid4().hex[:6]
    user = Client(session, base_url)
    await user.register(f"asmain_{tag}", f"as-bench-{tag}")
    await user.login(f"asmain_{tag}", f"as-bench-{tag}")
    room_id = await user.create_room("appservice", preset="public_chat")
    service = Client(session, base_url)
    service.access_token = reg.as_token
    _, resp = await service.request(
        "POST", "/_matrix/client/v3/register",
        body={"type": "m.login.application_service", "username": GHOST_LOCALPART,
              "inhibit_login": True},
    )  # fmt: skip
    ghost = str(resp["user_id"])
    await service.request(
        "POST", f"/_matrix/client/v3/join/{quote(room_id, safe='')}", body={},
        params={"user_id": ghost},
    )  # fmt: skip
    return user, room_id


async def _sequential(user: Client, room_id: str, receiver: Receiver, count: int) -> list[float]:
    """Per-event latencies (s): send start -> arrival, one send at a time."""
    started: dict[str, float] = {}
    for i in range(count):
        body = f"as-seq {i} {uuid.uuid4().hex[:8]}"
        started[body] = time.perf_counter()
        await user.send_text(room_id, body)
    await receiver.wait_for(list(started))
    return [receiver.arrivals[b] - t for b, t in started.items()]


async def _burst(
    user: Client, room_id: str, receiver: Receiver, count: int, concurrency: int
) -> float:
    """Events/s with ``concurrency`` sends in flight: first send start -> last arrival."""
    bodies = [f"as-burst {i} {uuid.uuid4().hex[:8]}" for i in range(count)]
    todo = iter(bodies)

    async def sender() -> None:
        for body in todo:  # the shared iterator hands each body to one sender
            await user.send_text(room_id, body)

    first = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    await receiver.wait_for(bodies)
    return count / (max(receiver.arrivals[b] for b in bodies) - first)


async def measure(server: ServerProcess, params: Params, result: ServerResult) -> None:
    """Restart ``server`` with the appservice registered, then the timed sends."""
    config_path = server.launch.config_path
    if config_path is None:
        raise RuntimeError(f"{server.launch.name}: no config path to register the appservice in")
    server.stop()
    port = free_port()
    reg = install(config_path, port)
    receiver = Receiver(reg.hs_token)
    await receiver.start(port)
    try:
        await server.start(params.startup_timeout_s)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            user, room_id = await _setup(session, server.launch.base_url, reg)
            warmup = [f"as-warmup {i} {uuid.uuid4().hex[:8]}" for i in range(WARMUP_MESSAGES)]
            for body in warmup:
                await user.send_text(room_id, body)
            await receiver.wait_for(warmup)
            latencies = await _sequential(user, room_id, receiver, params.as_messages)
            result.metrics["as_p50"] = ms(percentile(latencies, 50))
            result.metrics["as_p99"] = ms(percentile(latencies, 99))
            result.metrics["as_rate"] = await _burst(
                user, room_id, receiver, params.as_messages, params.as_concurrency
            )
        if receiver.duplicates:
            result.notes.append(
                f"appservice: {receiver.duplicates} events arrived twice under new txn ids"
            )
    finally:
        await receiver.stop()
