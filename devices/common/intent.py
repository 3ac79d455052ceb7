"""The Client-Server API as an application service: ``HomeserverClient`` (one HTTP session with
the as_token) and ``Intent`` (acting as one virtual user through ``?user_id=``), mautrix's shape
in a few hundred lines.

https://spec.matrix.org/v1.19/application-service-api/#identity-assertion

Connection errors, 5xx and 429 are retried with backoff (0.5 s doubling to 10 s), forever by
default: when edgehs restarts, a device's events wait and are sent afterwards, none is lost.
Every ``send_event`` keeps its transaction id across retries, so edgehs stores a retried
event once. 4xx answers raise ``HomeserverError`` at once.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

log = logging.getLogger(__name__)

CLIENT_V3 = "/_matrix/client/v3"
BACKOFF_START = 0.5
BACKOFF_MAX = 10.0
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=10)


def q(segment: str) -> str:
    """One URL path segment, percent-encoded (room ids, aliases, user ids, event types)."""
    return quote(segment, safe="")


class HomeserverError(Exception):
    """An error answer from edgehs (a 4xx; or, with ``retry=False``, a 5xx/429, or status 0
    for a connection failure)."""

    def __init__(self, status: int, errcode: str, error: str, body: object = None) -> None:
        super().__init__(f"{status} {errcode}: {error}")
        self.status = status
        self.errcode = errcode
        self.error = error
        self.body = body


class HomeserverClient:
    """HTTP to edgehs with the as_token; ``intent(user_id)`` acts as a virtual user."""

    def __init__(self, base_url: str, as_token: str, server_name: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.as_token = as_token
        self.server_name = server_name
        self._session: aiohttp.ClientSession | None = None
        self._intents: dict[str, Intent] = {}
        self._closed = False
        self._room_version: str | None = None

    async def close(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=REQUEST_TIMEOUT)
        return self._session

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    def intent(self, user_id: str) -> Intent:
        """The (cached) Intent for ``user_id`` (a full id, or a localpart)."""
        if not user_id.startswith("@"):
            user_id = self.user_id(user_id)
        if user_id not in self._intents:
            self._intents[user_id] = Intent(self, user_id)
        return self._intents[user_id]

    async def request(self, method: str, path: str, *, user_id: str | None = None,
                      json: object = None, params: Mapping[str, str] | None = None,
                      data: bytes | None = None, content_type: str | None = None,
                      retry: bool = True) -> dict[str, Any]:
        """One call; ``path`` like ``/_matrix/client/v3/...``; the JSON answer."""
        query = dict(params or {})
        if user_id is not None:
            query["user_id"] = user_id
        headers = {"Authorization": f"Bearer {self.as_token}"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        delay = BACKOFF_START
        attempt = 0
        while True:
            if self._closed:
                raise HomeserverError(0, "M_CLOSED", "the client is closed")
            attempt += 1
            try:
                async with self._http().request(
                    method, self.base_url + path, params=query, headers=headers,
                    json=json if data is None else None, data=data,
                ) as resp:
                    text = await resp.text()
                    status = resp.status
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                failure = HomeserverError(0, "M_CONNECTION_FAILED",
                                          f"cannot reach {self.base_url}: {exc!r}")
                wait = delay
            else:
                body = _parse(text)
                if 200 <= status < 300:
                    if attempt > 1:
                        log.info("%s %s: succeeded after %d attempts", method, path, attempt)
                    return body if isinstance(body, dict) else {"value": body}
                errcode = str(body.get("errcode", "M_UNKNOWN")) if isinstance(body, dict) \
                    else "M_UNKNOWN"
                error = str(body.get("error", text[:200])) if isinstance(body, dict) \
                    else text[:200]
                failure = HomeserverError(status, errcode, error, body)
                if status < 500 and status != 429:
                    raise failure
                wait = delay
                if status == 429 and isinstance(body, dict):
                    retry_ms = body.get("retry_after_ms")
                    if isinstance(retry_ms, int) and retry_ms > 0:
                        wait = min(retry_ms / 1000, 60.0)
            if not retry:
                raise failure
            log.warning("%s %s failed (%s); retrying in %.1f s", method, path, failure, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, BACKOFF_MAX)

    async def default_room_version(self) -> str:
        """The server's default room version (GET /capabilities, asked once).

        https://spec.matrix.org/v1.19/client-server-api/#mroom_versions-capability
        """
        if self._room_version is None:
            body = await self.request("GET", f"{CLIENT_V3}/capabilities")
            versions = body.get("capabilities", {}).get("m.room_versions", {})
            self._room_version = str(versions.get("default") or "10")
        return self._room_version

    async def wait_until_up(self) -> None:
        """GET /_matrix/client/versions until edgehs answers it."""
        await self.request("GET", "/_matrix/client/versions")

    async def ping(self, appservice_id: str) -> None:
        """POST /_matrix/client/v1/appservice/{appserviceId}/ping: edgehs calls our /ping.

        https://spec.matrix.org/v1.19/application-service-api/#post_matrixclientv1appserviceappserviceidping
        """
        await self.request("POST", f"/_matrix/client/v1/appservice/{q(appservice_id)}/ping",
                           json={"transaction_id": new_txn_id()}, retry=False)


def _parse(text: str) -> object:
    try:
        return jsonlib.loads(text) if text else {}
    except ValueError:
        return text


def creators_have_infinite_power(room_version: str) -> bool:
    """Room version 12 and later (and MSC4289's hydra test version): room creators have
    infinite power and are not listed in ``users``.

    https://spec.matrix.org/v1.19/rooms/v12/
    """
    if room_version.isdigit():
        return int(room_version) >= 12
    return "hydra" in room_version


def new_txn_id() -> str:
    return f"{time.time_ns()}.{secrets.token_hex(6)}"


class Intent:
    """Acts as ``user_id`` (a virtual user in the service's namespace, or its sender)."""

    def __init__(self, client: HomeserverClient, user_id: str) -> None:
        self.client = client
        self.user_id = user_id
        self._registered = False

    def __repr__(self) -> str:
        return f"Intent({self.user_id!r})"

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":", 1)[0]

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return await self.client.request(method, CLIENT_V3 + path, user_id=self.user_id,
                                         **kwargs)

    async def ensure_registered(self, displayname: str | None = None) -> None:
        """POST /register as m.login.application_service (M_USER_IN_USE is fine), then set the
        display name if it differs.

        https://spec.matrix.org/v1.19/application-service-api/#server-admin-style-permissions
        """
        if not self._registered:
            try:
                await self.client.request("POST", f"{CLIENT_V3}/register", json={
                    "type": "m.login.application_service", "username": self.localpart,
                    "inhibit_login": True,
                })
            except HomeserverError as exc:
                if exc.errcode != "M_USER_IN_USE":
                    raise
            self._registered = True
        if displayname is not None:
            path = f"/profile/{q(self.user_id)}/displayname"
            try:
                current = (await self._call("GET", path)).get("displayname")
            except HomeserverError as exc:
                if exc.status != 404:
                    raise
                current = None
            if current != displayname:
                await self._call("PUT", path, json={"displayname": displayname})

    async def resolve_alias(self, alias: str) -> str | None:
        """The room id of ``alias``, or None."""
        try:
            body = await self._call("GET", f"/directory/room/{q(alias)}")
        except HomeserverError as exc:
            if exc.errcode == "M_NOT_FOUND" or exc.status == 404:
                return None
            raise
        return str(body["room_id"])

    async def ensure_room(self, alias_localpart: str, *, name: str, topic: str = "",
                          invite: Sequence[str] = (),
                          power_users: Mapping[str, int] | None = None,
                          initial_state: Sequence[dict[str, Any]] = ()) -> str:
        """The room of ``#alias_localpart``: created (private, this user at 100,
        ``power_users`` at theirs, ``invite`` invited) if missing; otherwise joined, missing
        invitees invited, and ``power_users`` raised to their level if lower. Its room id."""
        alias = f"#{alias_localpart}:{self.client.server_name}"
        users = {self.user_id: 100, **(power_users or {})}
        room_id = await self.resolve_alias(alias)
        if room_id is None:
            version = await self.client.default_room_version()
            if creators_have_infinite_power(version):
                del users[self.user_id]  # v12: a creator must not be listed in users
            body: dict[str, Any] = {
                "room_alias_name": alias_localpart, "name": name, "preset": "private_chat",
                "room_version": version,
                "invite": [u for u in invite if u != self.user_id],
                "power_level_content_override": {"users": users},
                "initial_state": list(initial_state),
            }
            if topic:
                body["topic"] = topic
            try:
                created = await self._call("POST", "/createRoom", json=body)
                return str(created["room_id"])
            except HomeserverError as exc:
                if exc.errcode != "M_ROOM_IN_USE":
                    raise
                room_id = await self.resolve_alias(alias)  # lost a race: it exists now
                if room_id is None:
                    raise
        await self.join(room_id)
        await self._ensure_members(room_id, invite)
        await self._ensure_power(room_id, users)
        return room_id

    async def _ensure_members(self, room_id: str, invite: Sequence[str]) -> None:
        if not invite:
            return
        members = await self._call("GET", f"/rooms/{q(room_id)}/members")
        present = {e.get("state_key"): e.get("content", {}).get("membership")
                   for e in members.get("chunk", [])}
        for user in invite:
            if user != self.user_id and present.get(user) not in ("join", "invite", "ban"):
                await self._call("POST", f"/rooms/{q(room_id)}/invite", json={"user_id": user})

    async def _ensure_power(self, room_id: str, users: Mapping[str, int]) -> None:
        content = await self.get_state(room_id, "m.room.power_levels")
        if content is None:
            return
        current = dict(content.get("users") or {})
        default = content.get("users_default", 0)
        wanted = {u: p for u, p in users.items() if u != self.user_id
                  and int(current.get(u, default)) < p}
        if wanted:
            await self.send_state(room_id, "m.room.power_levels", "",
                                  {**content, "users": {**current, **wanted}})

    async def join(self, room_id_or_alias: str) -> str:
        """POST /join/{roomIdOrAlias} -> the room id (joining twice is harmless)."""
        body = await self._call("POST", f"/join/{q(room_id_or_alias)}", json={})
        return str(body["room_id"])

    async def leave(self, room_id: str) -> None:
        await self._call("POST", f"/rooms/{q(room_id)}/leave", json={})

    async def invite(self, room_id: str, user_id: str) -> None:
        await self._call("POST", f"/rooms/{q(room_id)}/invite", json={"user_id": user_id})

    async def send_event(self, room_id: str, event_type: str, content: Mapping[str, Any]) -> str:
        """PUT /rooms/{roomId}/send/{eventType}/{txnId}: a fresh txnId, kept across retries;
        the event id."""
        path = f"/rooms/{q(room_id)}/send/{q(event_type)}/{q(new_txn_id())}"
        body = await self._call("PUT", path, json=dict(content))
        return str(body["event_id"])

    async def send_state(self, room_id: str, event_type: str, state_key: str,
                         content: Mapping[str, Any]) -> str:
        path = f"/rooms/{q(room_id)}/state/{q(event_type)}/{q(state_key)}"
        body = await self._call("PUT", path, json=dict(content))
        return str(body["event_id"])

    async def send_notice(self, room_id: str, text: str) -> str:
        return await self.send_event(room_id, "m.room.message",
                                     {"msgtype": "m.notice", "body": text})

    async def send_text(self, room_id: str, text: str) -> str:
        return await self.send_event(room_id, "m.room.message",
                                     {"msgtype": "m.text", "body": text})

    async def upload(self, data: bytes, content_type: str, filename: str) -> str:
        """POST /_matrix/media/v3/upload -> the mxc:// URI."""
        body = await self.client.request(
            "POST", "/_matrix/media/v3/upload", user_id=self.user_id, data=data,
            content_type=content_type, params={"filename": filename})
        return str(body["content_uri"])

    async def get_state(self, room_id: str, event_type: str,
                        state_key: str = "") -> dict[str, Any] | None:
        """The content of one state event, or None if the room has none."""
        try:
            return await self._call(
                "GET", f"/rooms/{q(room_id)}/state/{q(event_type)}/{q(state_key)}")
        except HomeserverError as exc:
            if exc.errcode == "M_NOT_FOUND":
                return None
            raise

    async def messages(self, room_id: str, *, from_token: str | None = None,
                       direction: str = "f", limit: int = 100,
                       filter: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """GET /rooms/{roomId}/messages (raw answer: chunk, start, end)."""
        params = {"dir": direction, "limit": str(limit)}
        if from_token is not None:
            params["from"] = from_token
        if filter is not None:
            params["filter"] = jsonlib.dumps(filter)
        return await self._call("GET", f"/rooms/{q(room_id)}/messages", params=params)
