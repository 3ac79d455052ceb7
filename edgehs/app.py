"""The aiohttp application: ``init_app()`` builds it, ``cleanup_ctx`` owns the lifetime."""

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from edgehs.api.admin import admin_secret_ctx
from edgehs.api.keys import CONFIG_KEY, HS_KEY
from edgehs.api.middleware import cors_middleware, error_middleware, json_without_charset
from edgehs.api.routes import add_routes
from edgehs.config import Config
from edgehs.homeserver import HomeServer
from edgehs.sdnotify import notify, watchdog_running
from edgehs.store.writer_lock import DataDirLock

log = logging.getLogger(__name__)

# aiohttp's HTTP parser answers a request line or header line over its limits (8190 bytes by
# default) itself, with a plain-text 400, before any middleware can render a Matrix error. The
# limits are raised so that every request a client can mean (a room id, event id and user id of
# 255 bytes each, percent-encoded, or a /sync filter given inline as JSON) reaches the router,
# which answers with the spec's JSON errors. Twisted (Synapse) caps lines at 16 KiB; a line is
# held in memory while it is parsed, so the header limit (x 128 headers) stays smaller.
MAX_REQUEST_LINE = 64 * 1024
MAX_HEADER_LINE = 16 * 1024


LOCK_KEY = web.AppKey("writer_lock", DataDirLock)


async def _homeserver_ctx(app: web.Application) -> AsyncIterator[None]:
    # The data dir's writer lock: taken by ``edgehs run`` before anything else, else here.
    hs = HomeServer(app[CONFIG_KEY], app.get(LOCK_KEY))
    await hs.start()
    app[HS_KEY] = hs
    yield
    await hs.stop()


async def _watchdog_ctx(app: web.Application) -> AsyncIterator[None]:
    """Under systemd with WatchdogSec=, ping WATCHDOG=1 at half the interval (READY=1 is sent
    by ``edgehs run`` once the socket is bound)."""
    async with watchdog_running() as interval:
        if interval:
            log.info("systemd watchdog: pinging every %.1f s", interval)
        yield
    notify("STOPPING=1")


async def _release_long_polls(app: web.Application) -> None:
    """On shutdown, answer held /sync long-polls now so in-flight requests finish quickly."""
    if HS_KEY in app:
        app[HS_KEY].notifier.shutdown()


def init_app(config: Config, lock: DataDirLock | None = None) -> web.Application:
    """The application; ``lock``, when given, is the data dir's writer lock already held
    (the server keeps it, and releases it when it stops)."""
    # Bodies are size-checked by api.params before being read; media streams separately.
    app = web.Application(
        middlewares=[cors_middleware, error_middleware],
        client_max_size=max(config.max_upload_size, config.max_request_body_size) + 1,
        handler_args={"max_line_size": MAX_REQUEST_LINE, "max_field_size": MAX_HEADER_LINE},
    )
    app[CONFIG_KEY] = config
    if lock is not None:
        app[LOCK_KEY] = lock
    app.cleanup_ctx.append(_homeserver_ctx)
    app.cleanup_ctx.append(admin_secret_ctx)  # DATA_DIR/admin.secret while serving
    app.cleanup_ctx.append(_watchdog_ctx)
    app.on_shutdown.append(_release_long_polls)
    app.on_response_prepare.append(json_without_charset)
    add_routes(app)
    return app
