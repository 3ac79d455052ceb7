"""Search, user directory, mutual rooms and reporting against edgehs as a process.

matrix-nio has no calls for these endpoints, so nio clients make the users, rooms, messages and
profiles and the requests themselves go over plain HTTP with the nio clients' access tokens.
The index is checked to survive a restart (its rows are committed with the events).
"""

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import nio
import pytest

pytestmark = pytest.mark.integration

V3 = "/_matrix/client/v3"


async def call(http: aiohttp.ClientSession, client: nio.AsyncClient, method: str, path: str,
               **kwargs: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {client.access_token}"}
    async with http.request(method, path, headers=headers, **kwargs) as resp:
        return resp.status, await resp.json()


async def text(client: nio.AsyncClient, room_id: str, body: str) -> str:
    resp = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body})
    assert isinstance(resp, nio.RoomSendResponse), resp
    return str(resp.event_id)


async def search(http: aiohttp.ClientSession, client: nio.AsyncClient, term: str,
                 **criteria: Any) -> dict[str, Any]:
    status, body = await call(http, client, "POST", f"{V3}/search", json={
        "search_categories": {"room_events": {"search_term": term, **criteria}}})
    assert status == 200, body
    return dict(body["search_categories"]["room_events"])


async def test_search_directory_mutual_rooms_and_reports(
        server: Any, http: aiohttp.ClientSession,
        nio_user: Callable[[str], Awaitable[nio.AsyncClient]]) -> None:
    alice, bob, carol = await nio_user("alice"), await nio_user("bob"), await nio_user("carol")
    assert isinstance(await bob.set_displayname("Bobby Tables"), nio.ProfileSetDisplayNameResponse)
    created = await alice.room_create(name="Kitchen", topic="what to cook",
                                      invite=[bob.user_id])
    assert isinstance(created, nio.RoomCreateResponse), created
    room_id = created.room_id
    assert isinstance(await bob.join(room_id), nio.JoinResponse)
    soup = await text(alice, room_id, "Tomato soup tonight?")
    reply = await text(bob, room_id, "Soup sounds great")
    await text(alice, room_id, "ok")

    # /search: bob finds both soups, newest first, with context and profiles
    found = await search(http, bob, "soup", order_by="recent",
                         event_context={"before_limit": 1, "after_limit": 1,
                                        "include_profile": True})
    assert [r["result"]["event_id"] for r in found["results"]] == [reply, soup]
    assert found["count"] == 2 and "soup" in found["highlights"]
    assert found["results"][0]["context"]["profile_info"][bob.user_id]["displayname"] == \
        "Bobby Tables"
    assert [r["result"]["event_id"] for r in (await search(http, bob, "cook"))["results"]]
    # carol, never in the room, finds nothing; odd FTS syntax is just text
    assert (await search(http, carol, "soup"))["results"] == []
    for term in ('"', "NOT", "soup OR", "(*)", "col:soup"):
        await search(http, bob, term)

    # the index is durable: it survives a restart
    await server.restart()
    found = await search(http, bob, "tomato")
    assert [r["result"]["event_id"] for r in found["results"]] == [soup]

    # user directory: alice finds bob by display name; carol shares no room with him
    status, body = await call(http, alice, "POST", f"{V3}/user_directory/search",
                              json={"search_term": "bobby"})
    assert status == 200 and [r["user_id"] for r in body["results"]] == [bob.user_id]
    assert body["results"][0]["display_name"] == "Bobby Tables" and body["limited"] is False
    status, body = await call(http, carol, "POST", f"{V3}/user_directory/search",
                              json={"search_term": "bob"})
    assert status == 200 and body["results"] == []

    # mutual rooms, stable and unstable paths
    for path in ("/_matrix/client/v1/mutual_rooms",
                 "/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms"):
        status, body = await call(http, alice, "GET", path, params={"user_id": bob.user_id})
        assert (status, body) == (200, {"joined": [room_id], "count": 1})

    # reporting: bob reports alice's message, carol (not joined) cannot
    status, body = await call(http, bob, "POST", f"{V3}/rooms/{room_id}/report/{soup}",
                              json={"reason": "too spicy"})
    assert (status, body) == (200, {})
    status, body = await call(http, carol, "POST", f"{V3}/rooms/{room_id}/report/{soup}",
                              json={"reason": "x"})
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await call(http, carol, "POST", f"{V3}/users/{alice.user_id}/report",
                              json={"reason": "spam"})
    assert (status, body) == (200, {})
