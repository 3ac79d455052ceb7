"""Where events sit: /messages and /context follow the room's topological order (depth, then
stream position); /sync follows the stream and never shows history learned late as new.
Outliers and rejected events reach no timeline, sync response or search result.

Backfilled history is stored here as the persist step stores it: straight into the server's
own database with ``insert_event``, at negative positions from
``StreamIdGenerator.next_backfill``, with depths between those of the live events.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidmessages
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidcontexteventid
"""

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite
from aiohttp.test_utils import TestClient
from support import V3, User, get_sync

from edgehs.api.keys import HS_KEY
from edgehs.app import init_app
from edgehs.config import Config
from edgehs.homeserver import HomeServer
from edgehs.service.search_query import searchable
from edgehs.store.event_writes import insert_event
from edgehs.store.search import index_event

REMOTE = "@carol:elsewhere.example"


def server(client: TestClient) -> HomeServer:
    return client.app[HS_KEY]


async def send(client: TestClient, user: User, room_id: str, body: str) -> str:
    resp = await client.put(f"{V3}/rooms/{room_id}/send/m.room.message/{body}",
                            json={"msgtype": "m.text", "body": body}, headers=user.auth)
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["event_id"])


async def place(client: TestClient, room_id: str, name: str, *, depth_of: str,
                state_of: str | None = None, outlier: bool = False,
                rejected: str | None = None, live: bool = False,
                thread_of: str | None = None) -> str:
    """Store a message event from another server at the depth of event ``depth_of`` (so
    just before it: same depth, lower position), with the state groups of ``state_of``
    (``depth_of`` if not given); indexed for search as the write path would. Backfilled
    (negative position) unless ``live``; a reply in the thread of ``thread_of`` if given."""
    hs = server(client)
    depth = (await hs.event_store.get_pdus([depth_of]))[depth_of]["depth"]
    groups = await hs.db.fetchone("SELECT state_before, state_after FROM events "
                                  "WHERE event_id = ?", (state_of or depth_of,))
    assert groups is not None
    event_id = f"${name}:elsewhere.example"
    pdu = {"event_id": event_id, "room_id": room_id, "type": "m.room.message",
           "sender": REMOTE, "origin_server_ts": 1, "depth": depth,
           "content": {"msgtype": "m.text", "body": f"{name} needle"},
           "prev_events": [], "auth_events": []}
    if thread_of is not None:
        pdu["content"]["m.relates_to"] = {"rel_type": "m.thread", "event_id": thread_of}
    pos = hs.streams.next() if live else hs.streams.next_backfill()

    async def run(conn: aiosqlite.Connection) -> None:
        await insert_event(conn, pdu, pos, room_id, state_before=None if outlier else groups[0],
                           state_after=None if outlier else groups[1], outlier=outlier,
                           rejected_reason=rejected)
        text = searchable(pdu)
        assert text is not None
        await index_event(conn, pos, *text)
    await hs.db.write(run)
    if live:
        hs.notifier.notify(pos)
    return event_id


async def messages(client: TestClient, user: User, room_id: str, **params: Any
                   ) -> dict[str, Any]:
    resp = await client.get(f"{V3}/rooms/{room_id}/messages", params=params, headers=user.auth)
    body = await resp.json()
    assert resp.status == 200, body
    return dict(body)


async def page_texts(client: TestClient, user: User, room_id: str, **params: Any
                     ) -> tuple[list[str], list[str]]:
    """Every m.room.message event id of the pagination, and each token returned."""
    ids: list[str] = []
    tokens: list[str] = []
    for _ in range(50):
        body = await messages(client, user, room_id, limit="2", **params)
        tokens += [body["start"], *([body["end"]] if "end" in body else [])]
        ids += [e["event_id"] for e in body["chunk"] if e["type"] == "m.room.message"]
        if "end" not in body or not body["chunk"]:
            return ids, tokens
        params["from"] = body["end"]
    raise AssertionError("pagination never ended")


async def history_room(client: TestClient, alice: User,
                       create_room: Callable[..., Awaitable[str]]) -> dict[str, str]:
    """m1, m2, m3 sent live; b2 and b3 backfilled at the depths of m2 and m3; an outlier
    and a rejected event (which arrived live) beside them."""
    room_id = await create_room(alice, preset="public_chat")
    ids = {"room": room_id}
    for name in ("m1", "m2", "m3"):
        ids[name] = await send(client, alice, room_id, name)
    ids["b2"] = await place(client, room_id, "b2", depth_of=ids["m2"])
    ids["b3"] = await place(client, room_id, "b3", depth_of=ids["m3"])
    ids["outlier"] = await place(client, room_id, "outlier", depth_of=ids["m2"], outlier=True)
    ids["rejected"] = await place(client, room_id, "rejected", depth_of=ids["m3"],
                                  rejected="auth_error", live=True)
    return ids


async def test_messages_and_context_follow_depth(
        client: TestClient, register: Callable[[str], Awaitable[User]],
        create_room: Callable[..., Awaitable[str]]) -> None:
    alice = await register("alice")
    ids = await history_room(client, alice, create_room)
    room_id = ids["room"]
    order = [ids[n] for n in ("m1", "b2", "m2", "b3", "m3")]

    back, tokens = await page_texts(client, alice, room_id)
    assert back == order[::-1]
    forwards, more = await page_texts(client, alice, room_id, dir="f")
    assert forwards == order
    assert all(t.startswith("t") for t in tokens + more), tokens + more

    # A /sync prev_batch (a stream token) still works as `from`: the sync timeline holds the
    # live m3 only, and paging back from it goes through the backfilled history by depth.
    sync = await (await client.get(f"{V3}/sync", params={
        "filter": json.dumps({"room": {"timeline": {"limit": 1}}})}, headers=alice.auth)).json()
    timeline = sync["rooms"]["join"][room_id]["timeline"]
    assert [e["event_id"] for e in timeline["events"]] == [ids["m3"]]
    back, _ = await page_texts(client, alice, room_id, **{"from": timeline["prev_batch"]})
    assert back == order[-2::-1]
    # ... and so does a stream token as `to`: forwards from the start up to it.
    upto, _ = await page_texts(client, alice, room_id, dir="f", to=timeline["prev_batch"])
    assert upto == order[:-1]

    resp = await client.get(f"{V3}/rooms/{room_id}/context/{ids['m2']}",
                            params={"limit": "20"}, headers=alice.auth)
    body = await resp.json()
    assert resp.status == 200, body
    before = [e["event_id"] for e in body["events_before"] if e["type"] == "m.room.message"]
    after = [e["event_id"] for e in body["events_after"] if e["type"] == "m.room.message"]
    assert (before, after) == ([ids["b2"], ids["m1"]], [ids["b3"], ids["m3"]])
    # Its tokens continue where the context stops.
    older, _ = await page_texts(client, alice, room_id, **{"from": body["start"]})
    assert older == []  # events_before reached the room's start (limit 20)
    resp = await client.get(f"{V3}/rooms/{room_id}/context/{ids['b3']}",
                            params={"limit": "2"}, headers=alice.auth)
    body = await resp.json()
    assert resp.status == 200, body
    assert [e["event_id"] for e in body["events_before"]] == [ids["m2"]]
    assert [e["event_id"] for e in body["events_after"]] == [ids["m3"]]
    newer, _ = await page_texts(client, alice, room_id, dir="f", **{"from": body["end"]})
    assert newer == []
    older, _ = await page_texts(client, alice, room_id, **{"from": body["start"]})
    assert older == [ids["b2"], ids["m1"]]


async def test_outliers_and_rejected_events_have_no_place(
        client: TestClient, register: Callable[[str], Awaitable[User]],
        create_room: Callable[..., Awaitable[str]]) -> None:
    alice = await register("alice")
    ids = await history_room(client, alice, create_room)
    room_id = ids["room"]
    for name in ("outlier", "rejected"):
        for path in ("context", "event"):
            resp = await client.get(f"{V3}/rooms/{room_id}/{path}/{ids[name]}",
                                    headers=alice.auth)
            assert resp.status == 404, await resp.text()
    resp = await client.get(f"{V3}/rooms/{room_id}/event/{ids['b2']}", headers=alice.auth)
    assert resp.status == 200, await resp.text()
    # An outlier or a rejected event that claims to be in a thread is no one's reply.
    for name in ("o-reply", "r-reply"):
        await place(client, room_id, name, depth_of=ids["m3"], thread_of=ids["m1"],
                    outlier=name == "o-reply", rejected="auth_error" if name == "r-reply" else None)
    resp = await client.get(f"/_matrix/client/v1/rooms/{room_id}/relations/{ids['m1']}",
                            headers=alice.auth)
    assert resp.status == 200 and (await resp.json())["chunk"] == []
    resp = await client.get(f"/_matrix/client/v1/rooms/{room_id}/threads", headers=alice.auth)
    assert resp.status == 200 and (await resp.json())["chunk"] == []
    resp = await client.get(f"{V3}/rooms/{room_id}/event/{ids['m1']}", headers=alice.auth)
    assert "m.relations" not in (await resp.json()).get("unsigned", {})
    everything, _ = await page_texts(client, alice, ids["room"])
    assert ids["outlier"] not in everything and ids["rejected"] not in everything
    resp = await client.post(f"{V3}/search", headers=alice.auth, json={
        "search_categories": {"room_events": {"search_term": "needle"}}})
    body = await resp.json()
    assert resp.status == 200, body
    found = {r["result"]["event_id"] for r in body["search_categories"]["room_events"]["results"]}
    assert found == {ids["b2"], ids["b3"]}


async def test_sync_never_shows_backfill_outliers_or_rejected_events(
        client: TestClient, register: Callable[[str], Awaitable[User]],
        create_room: Callable[..., Awaitable[str]]) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    quiet = await create_room(bob, preset="public_chat")
    resp = await client.post(f"{V3}/rooms/{room_id}/join", json={}, headers=bob.auth)
    assert resp.status == 200
    m1 = await send(client, alice, room_id, "m1")
    since = (await get_sync(client, bob))["next_batch"]

    hidden = [await place(client, room_id, "b1", depth_of=m1),
              await place(client, room_id, "o1", depth_of=m1, outlier=True),
              await place(client, room_id, "r1", depth_of=m1, rejected="auth_error",
                          live=True),
              # Whatever position a writer gives them, outliers and rejected events in a
              # quiet room never make it look active.
              await place(client, quiet, "o2", depth_of=await send(client, bob, quiet, "q"),
                          outlier=True, live=True)]
    quiet_since = (await get_sync(client, bob, since))["next_batch"]
    await place(client, quiet, "r2", depth_of=hidden[-1], rejected="auth_error", live=True)
    await place(client, quiet, "o3", depth_of=hidden[-1], outlier=True, live=True)
    assert quiet not in (await get_sync(client, bob, quiet_since)).get("rooms", {}).get(
        "join", {})
    m2 = await send(client, alice, room_id, "m2")

    incremental = await get_sync(client, bob, since)
    timeline = incremental["rooms"]["join"][room_id]["timeline"]["events"]
    assert [e["event_id"] for e in timeline] == [m2]
    initial = json.dumps(await get_sync(client, bob))
    assert m1 in initial and m2 in initial
    for event_id in hidden:
        assert event_id not in initial
    # The backfilled one is history all the same: /messages has it, before m1.
    back, _ = await page_texts(client, bob, room_id)
    assert back[:3] == [m2, m1, hidden[0]]


async def test_history_visibility_is_judged_by_each_events_state(
        client: TestClient, register: Callable[[str], Awaitable[User]],
        create_room: Callable[..., Awaitable[str]]) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat", initial_state=[{
        "type": "m.room.history_visibility", "state_key": "",
        "content": {"history_visibility": "joined"}}])
    m1 = await send(client, alice, room_id, "m1")
    resp = await client.post(f"{V3}/rooms/{room_id}/join", json={}, headers=bob.auth)
    assert resp.status == 200
    m2 = await send(client, alice, room_id, "m2")
    # Both sit just before m2, after bob's join (x2 first: backfilled after x1, it has the
    # lower position); only the one whose state has bob joined is his to see.
    before_bob = await place(client, room_id, "x1", depth_of=m2, state_of=m1)
    with_bob = await place(client, room_id, "x2", depth_of=m2)
    seen, _ = await page_texts(client, bob, room_id)
    assert seen == [m2, with_bob]
    everything, _ = await page_texts(client, alice, room_id)
    assert everything == [m2, before_bob, with_bob, m1]


async def test_tokens_survive_a_restart(
        aiohttp_client: Callable[..., Awaitable[TestClient]], config: Config,
        client: TestClient, register: Callable[[str], Awaitable[User]],
        create_room: Callable[..., Awaitable[str]]) -> None:
    alice = await register("alice")
    ids = await history_room(client, alice, create_room)
    room_id = ids["room"]
    first = await messages(client, alice, room_id, limit="2")
    assert [e["event_id"] for e in first["chunk"]] == [ids["m3"], ids["b3"]]
    resp = await client.get(f"{V3}/rooms/{room_id}/context/{ids['b2']}",
                            params={"limit": "2"}, headers=alice.auth)
    context = await resp.json()
    await client.close()

    again = await aiohttp_client(init_app(config))
    rest, _ = await page_texts(again, alice, room_id, **{"from": first["end"]})
    assert rest == [ids["m2"], ids["b2"], ids["m1"]]
    after, _ = await page_texts(again, alice, room_id, dir="f", **{"from": context["end"]})
    assert after == [ids["b3"], ids["m3"]]
    # Newly backfilled history takes positions below those already stored.
    b1 = await place(again, room_id, "b1", depth_of=ids["m1"])
    assert (await server(again).event_store.get_event(b1)).stream_ordering < -3  # type: ignore[union-attr]
    rest, _ = await page_texts(again, alice, room_id, **{"from": first["end"]})
    assert rest == [ids["m2"], ids["b2"], ids["m1"], b1]


async def test_bad_tokens_are_400(
        client: TestClient, register: Callable[[str], Awaitable[User]],
        create_room: Callable[..., Awaitable[str]]) -> None:
    alice = await register("alice")
    room_id = await create_room(alice)
    for bad in ("t", "t5", "t5-", "tx-1", "t5-3-2", "s-5_0", "s5"):
        for name in ("from", "to"):
            resp = await client.get(f"{V3}/rooms/{room_id}/messages",
                                    params={name: bad}, headers=alice.auth)
            body = await resp.json()
            assert (resp.status, body.get("errcode")) == (400, "M_INVALID_PARAM"), (bad, body)
    # A token with a negative stream part is a place among backfilled events: valid.
    body = await messages(client, alice, room_id, **{"from": "t3--7"})
    assert [e["type"] for e in body["chunk"]] == ["m.room.member", "m.room.create"]
