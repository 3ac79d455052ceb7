"""A minimal Matrix Client-Server client over aiohttp: just the calls the bench times.

Plain HTTP JSON, no SDK, so both servers see byte-for-byte the same requests.
Spec: https://spec.matrix.org/v1.19/client-server-api/
"""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any
from urllib.parse import quote

import aiohttp

JsonDict = dict[str, Any]

DEFAULT_TIMEOUT_S = 60.0
_API = "/_matrix/client/v3"


class MatrixHTTPError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path} -> HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body


def _seg(value: str) -> str:
    """One URL path segment (room ids contain '!' and ':')."""
    return quote(value, safe="")


class Client:
    """One logged-in (or not yet) user on one server; shares the caller's ClientSession."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.access_token: str | None = None
        self.user_id: str | None = None
        self._txn = itertools.count()
        self._txn_prefix = uuid.uuid4().hex[:8]

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: JsonDict | None = None,
        params: dict[str, str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        expect: tuple[int, ...] = (200,),
    ) -> tuple[int, JsonDict]:
        """Send one request; raises MatrixHTTPError unless the status is in ``expect``."""
        headers = {}
        if self.access_token is not None:
            headers["Authorization"] = f"Bearer {self.access_token}"
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with self.session.request(
            method,
            self.base_url + path,
            json=body,
            params=params,
            headers=headers,
            timeout=timeout,
        ) as resp:
            text = await resp.text()
            if resp.status not in expect:
                raise MatrixHTTPError(method, path, resp.status, text)
            parsed = json.loads(text) if text else {}
            if not isinstance(parsed, dict):
                raise MatrixHTTPError(method, path, resp.status, "body is not a JSON object")
            return resp.status, parsed

    async def register(self, username: str, password: str) -> JsonDict:
        """POST /register with the User-Interactive Auth dance (m.login.dummy).

        https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3register
        https://spec.matrix.org/v1.19/client-server-api/#user-interactive-authentication-api
        """
        path = f"{_API}/register"
        body: JsonDict = {
            "username": username,
            "password": password,
            "initial_device_display_name": "edgehs bench",
        }
        status, resp = await self.request("POST", path, body=body, expect=(200, 401))
        if status == 401:
            flows = resp.get("flows", [])
            if flows and not any(f.get("stages") == ["m.login.dummy"] for f in flows):
                raise RuntimeError(f"no m.login.dummy-only registration flow offered: {flows}")
            auth: JsonDict = {"type": "m.login.dummy"}
            if "session" in resp:
                auth["session"] = resp["session"]
            _, resp = await self.request("POST", path, body={**body, "auth": auth})
        self.user_id = resp.get("user_id", self.user_id)
        return resp

    async def login(self, username: str, password: str) -> None:
        """POST /login with m.login.password; keeps the access token.

        https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3login
        """
        _, resp = await self.request(
            "POST",
            f"{_API}/login",
            body={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": username},
                "password": password,
                "initial_device_display_name": "edgehs bench",
            },
        )
        self.access_token = str(resp["access_token"])
        self.user_id = str(resp["user_id"])

    async def create_room(self, name: str, preset: str = "private_chat") -> str:
        """POST /createRoom; returns the room id.

        https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3createroom
        """
        _, resp = await self.request(
            "POST", f"{_API}/createRoom", body={"name": name, "preset": preset}
        )
        return str(resp["room_id"])

    async def join(self, room_id: str) -> None:
        """POST /join/{roomIdOrAlias}.

        https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3joinroomidoralias
        """
        await self.request("POST", f"{_API}/join/{_seg(room_id)}", body={})

    async def send_text(self, room_id: str, text: str) -> str:
        """PUT /rooms/{roomId}/send/m.room.message/{txnId}; returns the event id.

        https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3roomsroomidsendeventtypetxnid
        """
        txn = f"{self._txn_prefix}-{next(self._txn)}"
        _, resp = await self.request(
            "PUT",
            f"{_API}/rooms/{_seg(room_id)}/send/m.room.message/{txn}",
            body={"msgtype": "m.text", "body": text},
        )
        return str(resp["event_id"])

    async def sync(
        self,
        *,
        since: str | None = None,
        timeout_ms: int = 0,
        sync_filter: JsonDict | None = None,
    ) -> JsonDict:
        """GET /sync, with an inline JSON filter if given.

        https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3sync
        """
        params = {"timeout": str(timeout_ms)}
        if since is not None:
            params["since"] = since
        if sync_filter is not None:
            params["filter"] = json.dumps(sync_filter, separators=(",", ":"))
        _, resp = await self.request(
            "GET", f"{_API}/sync", params=params, timeout_s=timeout_ms / 1000.0 + 30.0
        )
        return resp

    async def messages(
        self, room_id: str, from_token: str | None, *, limit: int, direction: str = "b"
    ) -> JsonDict:
        """GET /rooms/{roomId}/messages.

        https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidmessages
        """
        params = {"dir": direction, "limit": str(limit)}
        if from_token is not None:
            params["from"] = from_token
        _, resp = await self.request("GET", f"{_API}/rooms/{_seg(room_id)}/messages", params=params)
        return resp
