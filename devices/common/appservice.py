"""The HTTP server edgehs pushes to: transactions, queries and ping of the Application Service
API, for one device service.

https://spec.matrix.org/v1.19/application-service-api/#pushing-events

Transactions are handled one at a time, events in order; a transaction is answered once its
events are handled, so an event whose handling was cut short (the process died) is pushed
again. A txnId already handled is answered 200 without handling it again (a bounded memory of
the last ``TXN_MEMORY`` ids). A handler that raises is logged; it never fails a transaction.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

log = logging.getLogger(__name__)

TXN_MEMORY = 1000
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class EventHandler(Protocol):
    async def on_event(self, event: dict[str, Any]) -> None: ...
    async def on_ephemeral(self, edu: dict[str, Any]) -> None: ...
    async def on_to_device(self, message: dict[str, Any]) -> None: ...
    async def query_user(self, user_id: str) -> bool: ...
    async def query_alias(self, alias: str) -> bool: ...


def _error(status: int, errcode: str, error: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": error}, status=status)


class AppServiceServer:
    """aiohttp server on HOST:PORT checking ``hs_token`` and dispatching to ``handler``."""

    def __init__(self, hs_token: str, host: str, port: int, handler: EventHandler) -> None:
        self.hs_token = hs_token
        self.host = host
        self.port = port
        self.handler = handler
        self._done: OrderedDict[str, None] = OrderedDict()
        self._lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self.transactions = 0  # handled (not deduplicated) transactions, for logs and tests

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, self._auth])
        for prefix in ("/_matrix/app/v1", ""):  # "" = the legacy unprefixed paths
            app.router.add_put(prefix + "/transactions/{txnId}", self.put_transaction)
            app.router.add_get(prefix + "/users/{userId}", self.get_user)
            app.router.add_get(prefix + "/rooms/{roomAlias}", self.get_room)
        app.router.add_post("/_matrix/app/v1/ping", self.post_ping)
        return app

    async def start(self) -> None:
        """Bind HOST:PORT (OSError if it is taken)."""
        runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port, shutdown_timeout=2).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("application service API listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every error as Matrix JSON (404 M_UNRECOGNIZED for unknown paths)."""
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return _error(404, "M_UNRECOGNIZED", "Unrecognized request")
        except web.HTTPMethodNotAllowed:
            return _error(405, "M_UNRECOGNIZED", "Unrecognized request")
        except web.HTTPException:
            raise
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return _error(500, "M_UNKNOWN", "Internal error")

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """``Authorization: Bearer hs_token`` (or the legacy ``?access_token=``): missing ->
        401 M_UNAUTHORIZED, wrong -> 403 M_FORBIDDEN.

        https://spec.matrix.org/v1.19/application-service-api/#authorization
        """
        if request.match_info.route.resource is None:  # unknown path: let 404 through
            return await handler(request)
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        if token is None:
            token = request.query.get("access_token")
        if token is None:
            return _error(401, "M_UNAUTHORIZED", "Missing hs_token")
        if not hmac.compare_digest(token.encode(), self.hs_token.encode()):
            return _error(403, "M_FORBIDDEN", "Wrong hs_token")
        return await handler(request)

    async def put_transaction(self, request: web.Request) -> web.Response:
        """PUT /_matrix/app/v1/transactions/{txnId}

        https://spec.matrix.org/v1.19/application-service-api/#put_matrixappv1transactionstxnid
        """
        txn_id = request.match_info["txnId"]
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "M_NOT_JSON", "The body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("events", []), list):
            return _error(400, "M_BAD_JSON", "The body must be an object with an events list")
        async with self._lock:
            if txn_id in self._done:
                log.debug("transaction %s: already handled", txn_id)
                return web.json_response({})
            await self._dispatch(txn_id, body)
            self._done[txn_id] = None
            while len(self._done) > TXN_MEMORY:
                self._done.popitem(last=False)
            self.transactions += 1
        return web.json_response({})

    async def _dispatch(self, txn_id: str, body: dict[str, Any]) -> None:
        batches: list[tuple[str, Callable[[dict[str, Any]], Awaitable[None]]]] = [
            ("events", self.handler.on_event),
            ("ephemeral", self.handler.on_ephemeral),
            ("de.sorunome.msc2409.ephemeral", self.handler.on_ephemeral),
            ("to_device", self.handler.on_to_device),
            ("de.sorunome.msc2409.to_device", self.handler.on_to_device),
        ]
        for key, handle in batches:
            items = body.get(key)
            if not isinstance(items, list):
                continue
            for item in items:
                if not isinstance(item, dict):
                    continue
                try:
                    await handle(item)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("transaction %s: handling %s %s failed", txn_id, key,
                                  item.get("event_id") or item.get("type"))

    async def get_user(self, request: web.Request) -> web.Response:
        """GET /_matrix/app/v1/users/{userId}

        https://spec.matrix.org/v1.19/application-service-api/#get_matrixappv1usersuserid
        """
        if await self.handler.query_user(request.match_info["userId"]):
            return web.json_response({})
        return _error(404, "M_NOT_FOUND", "No such user")

    async def get_room(self, request: web.Request) -> web.Response:
        """GET /_matrix/app/v1/rooms/{roomAlias}

        https://spec.matrix.org/v1.19/application-service-api/#get_matrixappv1roomsroomalias
        """
        if await self.handler.query_alias(request.match_info["roomAlias"]):
            return web.json_response({})
        return _error(404, "M_NOT_FOUND", "No such room alias")

    async def post_ping(self, request: web.Request) -> web.Response:
        """POST /_matrix/app/v1/ping

        https://spec.matrix.org/v1.19/application-service-api/#post_matrixappv1ping
        """
        return web.json_response({})
