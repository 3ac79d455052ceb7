"""A Matrix user over raw Client-Server calls, for the device service integration tests:
join (waiting for the invite), send, read state, poll /messages for an event. A plain module
beside the tests; devices_support.py re-exports it (``from devices_support import *``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
from as_support import call

__all__ = ["V3", "WAIT_S", "MatrixUser", "q", "register_user"]

V3 = "/_matrix/client/v3"
WAIT_S = 30.0  # the longest a helper waits for something to appear


def q(segment: str) -> str:
    return quote(segment, safe="")


def _brief(event: Mapping[str, Any]) -> str:
    content = event.get("content") or {}
    body = content.get("body") if isinstance(content, dict) else None
    extra = f" {body!r}" if body is not None else (
        f" {event.get('state_key')!r}" if "state_key" in event else "")
    return f"{event.get('type')} from {event.get('sender')}{extra}"


class MatrixUser:
    """A user with an access token and a small set of raw Client-Server calls."""

    def __init__(self, base_url: str, user_id: str, token: str) -> None:
        self.base_url = base_url
        self.user_id = user_id
        self.token = token
        self._http: aiohttp.ClientSession | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def request(self, method: str, path: str, expect: int = 200,
                      errcode: str | None = None, **kwargs: Any) -> Any:
        """One call with this user's token; asserts the status (and errcode)."""
        if self._http is None:
            self._http = aiohttp.ClientSession(base_url=self.base_url)
        headers = {**self.auth, **kwargs.pop("headers", {})}
        return await call(self._http, method, path, expect, errcode, headers=headers, **kwargs)

    async def raw(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """One call; (status, JSON body or text), no assertion."""
        if self._http is None:
            self._http = aiohttp.ClientSession(base_url=self.base_url)
        headers = {**self.auth, **kwargs.pop("headers", {})}
        async with self._http.request(method, path, headers=headers, **kwargs) as resp:
            text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text

    async def resolve_alias(self, alias: str) -> str | None:
        status, body = await self.raw("GET", f"{V3}/directory/room/{q(alias)}")
        if status == 404:
            return None
        assert status == 200, f"resolve {alias} -> {status} {body}"
        return str(body["room_id"])

    async def wait_for_alias(self, alias: str, timeout: float = WAIT_S) -> str:
        deadline = time.monotonic() + timeout
        while (room_id := await self.resolve_alias(alias)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{alias} did not resolve within {timeout:.0f}s")
            await asyncio.sleep(0.05)
        return room_id

    async def join(self, room: str) -> str:
        body = await self.request("POST", f"{V3}/join/{q(room)}", json={})
        return str(body["room_id"])

    async def join_when_invited(self, room: str, timeout: float = WAIT_S) -> str:
        """Wait for the alias (if ``room`` is one) and the invite, then join; the room id."""
        deadline = time.monotonic() + timeout
        room_id = await self.wait_for_alias(room, timeout) if room.startswith("#") else room
        while True:
            status, body = await self.raw("POST", f"{V3}/join/{q(room_id)}", json={})
            if status == 200:
                return str(body["room_id"])
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.user_id} could not join {room} within "
                                     f"{timeout:.0f}s: {status} {body}")
            await asyncio.sleep(0.05)

    async def send(self, room_id: str, content: Mapping[str, Any],
                   event_type: str = "m.room.message", txn_id: str | None = None) -> str:
        txn = txn_id or f"t{time.time_ns()}"
        body = await self.request(
            "PUT", f"{V3}/rooms/{q(room_id)}/send/{q(event_type)}/{q(txn)}", json=dict(content))
        return str(body["event_id"])

    async def send_text(self, room_id: str, text: str) -> str:
        return await self.send(room_id, {"msgtype": "m.text", "body": text})

    async def state(self, room_id: str) -> list[dict[str, Any]]:
        return list(await self.request("GET", f"{V3}/rooms/{q(room_id)}/state"))

    async def state_event(self, room_id: str, event_type: str,
                          state_key: str = "") -> dict[str, Any] | None:
        status, body = await self.raw(
            "GET", f"{V3}/rooms/{q(room_id)}/state/{q(event_type)}/{q(state_key)}")
        if status == 404:
            return None
        assert status == 200, f"state {event_type}/{state_key} -> {status} {body}"
        return dict(body)

    async def messages(self, room_id: str) -> list[dict[str, Any]]:
        """The whole timeline the user may see, oldest first (GET /messages dir=f)."""
        events: list[dict[str, Any]] = []
        params: dict[str, str] = {"dir": "f", "limit": "100"}
        while True:
            page = await self.request("GET", f"{V3}/rooms/{q(room_id)}/messages", params=params)
            events += page.get("chunk", [])
            if not page.get("chunk") or not page.get("end"):
                return events
            params["from"] = page["end"]

    async def wait_for(self, room_id: str, predicate: Callable[[dict[str, Any]], bool] |
                       None = None, *, type: str | None = None, sender: str | None = None,
                       body: str | None = None, after: str | None = None,
                       what: str = "", timeout: float = WAIT_S) -> dict[str, Any]:
        """The first event in the room (after event ``after``, if given) matching ``type``,
        ``sender``, ``content.body`` and ``predicate``; polls /messages until ``timeout``."""
        def matches(event: dict[str, Any]) -> bool:
            content = event.get("content") or {}
            return ((type is None or event.get("type") == type)
                    and (sender is None or event.get("sender") == sender)
                    and (body is None or content.get("body") == body)
                    and (predicate is None or predicate(event)))
        deadline = time.monotonic() + timeout
        while True:
            events = await self.messages(room_id)
            if after is not None:
                ids = [e.get("event_id") for e in events]
                events = events[ids.index(after) + 1:] if after in ids else []
            found = next((e for e in events if matches(e)), None)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                wanted = what or ", ".join(f"{k}={v!r}" for k, v in (
                    ("type", type), ("sender", sender), ("body", body)) if v is not None)
                seen = "\n  ".join(_brief(e) for e in events[-20:]) or "(nothing)"
                raise AssertionError(f"no event [{wanted}] in {room_id} within {timeout:.0f}s "
                                     f"(as {self.user_id}); last events:\n  {seen}")
            await asyncio.sleep(0.1)

    async def wait_for_state(self, room_id: str, event_type: str, state_key: str = "",
                             predicate: Callable[[dict[str, Any]], bool] | None = None,
                             timeout: float = WAIT_S) -> dict[str, Any]:
        """The content of a state event once it exists (and ``predicate(content)`` holds)."""
        deadline = time.monotonic() + timeout
        while True:
            content = await self.state_event(room_id, event_type, state_key)
            if content is not None and (predicate is None or predicate(content)):
                return content
            if time.monotonic() > deadline:
                raise AssertionError(f"state {event_type}/{state_key!r} in {room_id}: not as "
                                     f"wanted within {timeout:.0f}s: {content}")
            await asyncio.sleep(0.1)


async def register_user(base_url: str, name: str) -> MatrixUser:
    """A normal user (UIA dummy stage; registration is open in the test config)."""
    async with aiohttp.ClientSession(base_url=base_url) as http:
        done = await call(http, "POST", f"{V3}/register", json={
            "username": name, "password": "pw", "auth": {"type": "m.login.dummy"}})
    return MatrixUser(base_url, done["user_id"], done["access_token"])
