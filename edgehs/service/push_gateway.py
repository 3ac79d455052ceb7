"""Pushers and HTTP delivery to push gateways.

https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3pushersset
https://spec.matrix.org/v1.19/push-gateway-api/#post_matrixpushv1notify

The write path queues one outbox row (kind "push") per notification and pusher, destination
``push:<pusher id>``, in the event's own transaction. The outbox sender hands each pusher's rows
to :meth:`PushGateway.send` (the ``OutboundSender`` interface), which POSTs them one by one to
the gateway through the server's one shared HTTP client; a failure (network, 5xx, 429) answers
RETRY and the outbox retries the same rows with its backoff. Gateways
dedupe by event_id, so a retried batch may resend its first notifications harmlessly. Pushkeys
the gateway rejects lose their pusher.
"""

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

import aiohttp
import aiosqlite

from edgehs.errors import Codes, MatrixError
from edgehs.service import json_parse
from edgehs.service.outbound import Delivery, DeliveryFailed, EduStream, Transaction
from edgehs.store.db import Database
from edgehs.store.events import EventStore
from edgehs.store.push import Pusher, PushStore, delete_pusher_by_key, upsert_pusher
from edgehs.store.state import StateStore
from edgehs.types import JsonDict

log = logging.getLogger(__name__)

PREFIX = "push:"
NOTIFY_PATH = "/_matrix/push/v1/notify"
MAX_PUSHKEY_BYTES = 512
MAX_APP_ID_CHARS = 64
TIMEOUT_S = 30.0
FORMAT_EVENT_ID_ONLY = "event_id_only"
REQUIRED_FOR_KIND = ("app_display_name", "device_display_name", "lang", "data")


def destination(pusher_id: int) -> str:
    return f"{PREFIX}{pusher_id}"


def check_pusher_body(body: JsonDict) -> None:
    """POST /pushers/set: the spec's required fields, types and the http pusher's data."""
    missing = ["kind"] if "kind" not in body else []
    missing += [k for k in ("app_id", "pushkey") if body.get(k) is None]
    if body.get("kind") is not None:
        missing += [k for k in REQUIRED_FOR_KIND if body.get(k) is None]
    if missing:
        raise MatrixError(400, Codes.MISSING_PARAM, f"Missing parameters: {', '.join(missing)}")
    for key in ("app_id", "pushkey", "app_display_name", "device_display_name", "lang",
                "profile_tag"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise MatrixError(400, Codes.BAD_JSON, f"{key} must be a string")
    if body["kind"] is not None and not isinstance(body["kind"], str):
        raise MatrixError(400, Codes.BAD_JSON, "kind must be a string or null")
    if "append" in body and not isinstance(body["append"], bool):
        raise MatrixError(400, Codes.BAD_JSON, "append must be a boolean")
    if len(body["pushkey"].encode()) > MAX_PUSHKEY_BYTES:
        raise MatrixError(400, Codes.INVALID_PARAM, "pushkey is at most 512 bytes")
    if len(body["app_id"]) > MAX_APP_ID_CHARS:
        raise MatrixError(400, Codes.INVALID_PARAM, "app_id is at most 64 characters")
    if body["kind"] is None:
        return
    if body["kind"] != "http":
        raise MatrixError(400, Codes.INVALID_PARAM, f"Unsupported pusher kind {body['kind']!r}")
    data = body["data"]
    if not isinstance(data, dict):
        raise MatrixError(400, Codes.BAD_JSON, "data must be an object")
    url = data.get("url")
    if url is None:
        raise MatrixError(400, Codes.MISSING_PARAM, "An http pusher needs data.url")
    if not isinstance(url, str):
        raise MatrixError(400, Codes.BAD_JSON, "data.url must be a string")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path != NOTIFY_PATH:
        raise MatrixError(400, Codes.INVALID_PARAM,
                          f"data.url must be an http(s) URL with the path {NOTIFY_PATH}")
    fmt = data.get("format")
    if fmt is not None and fmt != FORMAT_EVENT_ID_ONLY:
        raise MatrixError(400, Codes.INVALID_PARAM,
                          f"data.format must be {FORMAT_EVENT_ID_ONLY!r} or absent")


class PusherService:
    """The pushers API, and which pushers each user has (cached for the write path)."""

    def __init__(self, db: Database, store: PushStore,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.store = store
        self.clock = clock
        self._ids: dict[str, tuple[int, ...]] = {}

    async def pusher_ids(self, user_id: str) -> tuple[int, ...]:
        cached = self._ids.get(user_id)
        if cached is None:
            cached = tuple(p.id for p in await self.store.get_pushers(user_id))
            self._ids[user_id] = cached
        return cached

    async def badge_destinations(self, user_id: str, room_id: str) -> list[str]:
        """The outbox destinations of ``user_id``'s pushers that need a badge update when the
        user reads ``room_id``: all of them while the room has unread notifications (reading
        lowers the count), none otherwise."""
        ids = await self.pusher_ids(user_id)
        if not ids or not (await self.store.get_counts(user_id, [room_id])).get(room_id):
            return []
        return [destination(i) for i in ids]

    async def get_pushers(self, user_id: str) -> list[JsonDict]:
        return [p.to_json() for p in await self.store.get_pushers(user_id)]

    async def set_pusher(self, user_id: str, device_id: str | None, body: JsonDict) -> None:
        """POST /pushers/set: create/update (kind "http") or delete (kind null)."""
        check_pusher_body(body)
        ts = int(self.clock() * 1000)

        async def run(conn: aiosqlite.Connection) -> None:
            if body["kind"] is None:
                await delete_pusher_by_key(conn, user_id, body["app_id"], body["pushkey"])
            else:
                await upsert_pusher(conn, user_id, device_id, body, ts,
                                    bool(body.get("append", False)))

        await self.db.write(run)
        self._ids.clear()  # without append, other users' pushers may have gone too

    async def remove(self, pusher: Pusher) -> None:
        """The gateway rejected the pushkey."""
        await self.store.delete_pusher(pusher.id)
        self._ids.pop(pusher.user_id, None)


class PushGateway:
    """The outbox deliverer for ``push:<id>`` destinations."""

    def __init__(self, http: aiohttp.ClientSession, pushers: PusherService, store: PushStore,
                 events: EventStore, state: StateStore, unread: Callable[[str], Awaitable[int]],
                 timeout_s: float = TIMEOUT_S) -> None:
        self.http = http  # the server's one outbound client, shared (closed by HomeServer)
        self.pushers = pushers
        self.store = store
        self.events = events
        self.state = state
        self.unread = unread
        self.timeout_s = timeout_s

    def edu_streams(self) -> Sequence[EduStream]:
        return ()  # push notifications are all rows, written with what they notify of

    async def send(self, destination_id: str, txn: Transaction) -> Delivery:
        """POST the transaction's notifications (the ``OutboundSender`` interface)."""
        try:
            await self._deliver(destination_id, txn)
        except DeliveryFailed as exc:
            log.info("push to %s: %s", destination_id, exc)
            return Delivery.RETRY
        return Delivery.SENT

    async def _deliver(self, destination_id: str, txn: Transaction) -> None:
        rows = txn.rows
        pusher = await self.store.get_pusher(int(destination_id.removeprefix(PREFIX)))
        if pusher is None:
            log.info("dropping %d push(es) for %s: the pusher is gone", len(rows), destination_id)
            return
        for row in rows:
            if row.payload is None or row.payload.get("user_id") != pusher.user_id:
                continue
            body = await self._notification(pusher, row.payload)
            if body is None:
                continue
            if await self._post(pusher, body):
                await self.pushers.remove(pusher)
                log.info("push gateway rejected the pushkey of pusher %d: removed", pusher.id)
                return

    async def _notification(self, pusher: Pusher, payload: JsonDict) -> JsonDict | None:
        """The /notify body for one notification, in the pusher's format."""
        if payload.get("badge"):
            return await self._badge(pusher)
        stored = await self.events.get_event(str(payload["event_id"]))
        if stored is None:
            return None
        tweaks: JsonDict = {}
        for action in payload.get("actions", []):
            if isinstance(action, dict) and isinstance(action.get("set_tweak"), str):
                tweaks[action["set_tweak"]] = action.get("value", True)
        device: JsonDict = {
            "app_id": pusher.app_id, "pushkey": pusher.pushkey,
            "pushkey_ts": pusher.pushkey_ts // 1000,
            "data": {k: v for k, v in pusher.data.items() if k != "url"}, "tweaks": tweaks,
        }
        pdu = stored.pdu
        unread = await self.unread(pusher.user_id)
        high = pdu["type"] == "m.room.encrypted" or bool(tweaks.get("highlight")) or bool(
            tweaks.get("sound"))
        note: JsonDict = {
            # "id" repeats event_id under its name from before the spec (r0 gateways, and
            # what Synapse still sends beside it); gateways that follow the spec ignore it.
            "id": stored.event_id, "event_id": stored.event_id, "room_id": stored.room_id,
            "prio": "high" if high else "low", "devices": [device],
            # "counts whose value is zero should be omitted": the object itself stays
            "counts": {"unread": unread} if unread else {},
        }
        if pusher.data.get("format") == FORMAT_EVENT_ID_ONLY:
            return {"notification": note}
        note.update({"type": pdu["type"], "sender": pdu["sender"]})
        if isinstance(pdu.get("content"), dict) and stored.redacted_by is None:
            note["content"] = pdu["content"]
        if pdu["type"] == "m.room.member":
            note["user_is_target"] = pdu.get("state_key") == pusher.user_id
        names = await self._room_names(stored.room_id, pdu["sender"])
        note.update(names)
        return {"notification": note}

    async def _badge(self, pusher: Pusher) -> JsonDict:
        """A notification with only the badge count, after the user read something: "event_id
        may be omitted for notifications that only contain updated badge counts". The count is
        sent even when it is zero, since clearing the badge is what it is for."""
        device: JsonDict = {
            "app_id": pusher.app_id, "pushkey": pusher.pushkey,
            "pushkey_ts": pusher.pushkey_ts // 1000,
            "data": {k: v for k, v in pusher.data.items() if k != "url"},
        }
        unread = await self.unread(pusher.user_id)
        return {"notification": {"id": "", "prio": "low", "counts": {"unread": unread},
                                 "devices": [device]}}

    async def _room_names(self, room_id: str, sender: str) -> JsonDict:
        """sender_display_name, room_name and room_alias from the current state."""
        out: JsonDict = {}
        wanted = {("m.room.member", sender): ("sender_display_name", "displayname"),
                  ("m.room.name", ""): ("room_name", "name"),
                  ("m.room.canonical_alias", ""): ("room_alias", "alias")}
        for key, (field, content_key) in wanted.items():
            event_id = await self.state.get_current_state_event_id(room_id, key)
            if event_id is None:
                continue
            pdus = await self.events.get_pdus([event_id])
            content = pdus.get(event_id, {}).get("content")
            value = content.get(content_key) if isinstance(content, dict) else None
            if isinstance(value, str) and value:
                out[field] = value
        return out

    async def _post(self, pusher: Pusher, body: JsonDict) -> bool:
        """POST one notification; True when the gateway rejected this pusher's pushkey.
        Raises DeliveryFailed for what is worth retrying (network errors, 5xx, 408, 429)."""
        url = str(pusher.data.get("url"))
        try:
            async with self.http.post(
                    url, json=body, timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as resp:
                status = resp.status
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError) as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
        if status == 200:
            try:
                answer = json_parse.loads(text)
            except ValueError:
                return False  # accepted, even if the answer is not the spec's JSON
            rejected = answer.get("rejected") if isinstance(answer, dict) else None
            return isinstance(rejected, list) and pusher.pushkey in rejected
        text = text[:200]
        if status >= 500 or status in (408, 429):
            raise DeliveryFailed(f"HTTP {status} from the push gateway: {text}")
        # Another 4xx will not get better by retrying: drop this notification.
        log.warning("push gateway %s refused a notification with HTTP %d: %s", url, status,
                    text)
        return False
