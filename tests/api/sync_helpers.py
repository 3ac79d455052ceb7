"""Small /sync helpers shared by the tests/api/test_sync_*.py files."""

import json
from typing import Any

from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, User


async def sync(client: TestClient, user: User, spec: MatrixSpec | None = None,
               since: str | None = None, flt: Any = None, **params: str) -> dict[str, Any]:
    """GET /sync (timeout 0), asserting a 200 and, with ``spec``, the response schema."""
    query = {"timeout": "0", **params}
    if since is not None:
        query["since"] = since
    if flt is not None:
        query["filter"] = flt if isinstance(flt, str) else json.dumps(flt)
    resp = await client.get(f"{V3}/sync", params=query, headers=user.auth)
    body = await resp.json()
    assert resp.status == 200, body
    if spec is not None:
        spec.check_response("sync", "GET", "/sync", 200, body)
    return dict(body)


async def send(client: TestClient, user: User, room_id: str, body: str = "hi",
               event_type: str = "m.room.message") -> str:
    resp = await client.post(f"{V3}/rooms/{room_id}/send/{event_type}",
                             json={"msgtype": "m.text", "body": body}, headers=user.auth)
    data = await resp.json()
    assert resp.status == 200, data
    return str(data["event_id"])


async def put_state(client: TestClient, user: User, room_id: str, event_type: str,
                    content: dict[str, Any], state_key: str = "") -> str:
    resp = await client.put(f"{V3}/rooms/{room_id}/state/{event_type}/{state_key}",
                            json=content, headers=user.auth)
    data = await resp.json()
    assert resp.status == 200, data
    return str(data["event_id"])


async def join(client: TestClient, user: User, room_id: str) -> None:
    resp = await client.post(f"{V3}/join/{room_id}", json={}, headers=user.auth)
    assert resp.status == 200, await resp.text()


async def leave(client: TestClient, user: User, room_id: str) -> None:
    resp = await client.post(f"{V3}/rooms/{room_id}/leave", json={}, headers=user.auth)
    assert resp.status == 200, await resp.text()


async def invite(client: TestClient, user: User, room_id: str, who: User) -> None:
    resp = await client.post(f"{V3}/rooms/{room_id}/invite", json={"user_id": who.user_id},
                             headers=user.auth)
    assert resp.status == 200, await resp.text()


def members(room: dict[str, Any]) -> dict[str, str]:
    """state_key -> membership of the m.room.member events in a room's state section."""
    return {e["state_key"]: e["content"]["membership"]
            for e in room.get("state", {}).get("events", []) if e["type"] == "m.room.member"}
