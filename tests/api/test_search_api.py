"""POST /search: full-text search over the events a user may see.

https://spec.matrix.org/v1.19/client-server-api/#server-side-search
"""

from typing import Any

import aiosqlite
import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, User, expect

from edgehs.api.keys import HS_KEY


async def send(client: TestClient, user: User, room_id: str, body: str,
               event_type: str = "m.room.message") -> str:
    txn = f"t{abs(hash((room_id, body, event_type)))}"
    resp = await client.put(f"{V3}/rooms/{room_id}/send/{event_type}/{txn}",
                            json={"msgtype": "m.text", "body": body}, headers=user.auth)
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["event_id"])


async def state(client: TestClient, user: User, room_id: str, event_type: str,
                content: dict[str, Any]) -> str:
    resp = await client.put(f"{V3}/rooms/{room_id}/state/{event_type}", json=content,
                            headers=user.auth)
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["event_id"])


async def search_raw(client: TestClient, user: User, criteria: dict[str, Any],
                     next_batch: str | None = None) -> Any:
    params = {"next_batch": next_batch} if next_batch else {}
    return await client.post(f"{V3}/search", params=params, headers=user.auth,
                             json={"search_categories": {"room_events": criteria}})


async def search(client: TestClient, user: User, term: str, spec: MatrixSpec | None = None,
                 next_batch: str | None = None, **criteria: Any) -> dict[str, Any]:
    resp = await search_raw(client, user, {"search_term": term, **criteria}, next_batch)
    body = await resp.json()
    assert resp.status == 200, body
    if spec is not None:
        spec.check_response("search", "POST", "/search", 200, body)
        for result in body["search_categories"]["room_events"]["results"]:
            spec.check_event(result["result"])
    return dict(body["search_categories"]["room_events"])


def ids(found: dict[str, Any]) -> list[str]:
    return [r["result"]["event_id"] for r in found["results"]]


@pytest.fixture
async def people(register: Any) -> tuple[User, User, User]:
    return await register("alice"), await register("bob"), await register("carol")


async def test_finds_bodies_names_and_topics_by_prefix(
        client: TestClient, people: tuple[User, User, User], create_room: Any,
        spec: MatrixSpec) -> None:
    alice, bob, _ = people
    room = await create_room(alice, preset="private_chat")
    m1 = await send(client, alice, room, "The Martians have landed")
    await send(client, alice, room, "nothing to see here")
    topic = await state(client, alice, room, "m.room.topic", {"topic": "martian news"})
    name = await state(client, alice, room, "m.room.name", {"name": "Mars watch"})
    found = await search(client, alice, "martian", spec)
    assert set(ids(found)) == {m1, topic}
    assert found["count"] == 2
    assert "martian" in found["highlights"]
    assert all(isinstance(r["rank"], float) for r in found["results"])
    assert "next_batch" not in found
    # Keys narrow what is searched; diacritics and case do not matter.
    assert ids(await search(client, alice, "MÀRTIAN", keys=["content.body"])) == [m1]
    assert ids(await search(client, alice, "mars", keys=["content.name"])) == [name]
    # Someone who was never in the room finds nothing.
    assert ids(await search(client, bob, "martian", spec)) == []


async def test_recent_order_and_pagination(client: TestClient, people: tuple[User, User, User],
                                           create_room: Any, spec: MatrixSpec) -> None:
    alice, _, _ = people
    room = await create_room(alice)
    sent = [await send(client, alice, room, f"cheese number {i}") for i in range(5)]
    seen: list[str] = []
    token = None
    for _ in range(10):
        page = await search(client, alice, "cheese", spec, next_batch=token, order_by="recent",
                            filter={"limit": 2})
        assert len(page["results"]) <= 2
        seen += ids(page)
        token = page.get("next_batch")
        if token is None:
            break
    assert seen == list(reversed(sent))
    # rank order pages too, without repeating a result
    ranked: list[str] = []
    token = None
    for _ in range(10):
        page = await search(client, alice, "cheese", next_batch=token, filter={"limit": 3})
        ranked += ids(page)
        assert page["count"] == 5
        token = page.get("next_batch")
        if token is None:
            break
    assert sorted(ranked) == sorted(sent) and len(ranked) == 5


async def test_history_visibility(client: TestClient, people: tuple[User, User, User],
                                  create_room: Any) -> None:
    alice, bob, carol = people
    room = await create_room(alice, preset="public_chat")
    before = await send(client, alice, room, "secret plans early")
    for user in (bob, carol):
        assert (await client.post(f"{V3}/join/{room}", headers=user.auth, json={})).status == 200
    during = await send(client, alice, room, "secret plans during")
    assert (await client.post(f"{V3}/rooms/{room}/leave", headers=carol.auth,
                              json={})).status == 200
    after = await send(client, alice, room, "secret plans after")
    # A member sees the whole (shared) history; a former member up to their leave.
    assert set(ids(await search(client, bob, "secret"))) == {before, during, after}
    assert set(ids(await search(client, carol, "secret"))) == {before, during}
    # Forgotten rooms are not searched.
    assert (await client.post(f"{V3}/rooms/{room}/forget", headers=carol.auth,
                              json={})).status == 200
    assert ids(await search(client, carol, "secret")) == []


async def test_redacted_events_leave_the_index(client: TestClient,
                                               people: tuple[User, User, User],
                                               create_room: Any) -> None:
    alice, _, _ = people
    room = await create_room(alice)
    event_id = await send(client, alice, room, "delete me please")
    assert ids(await search(client, alice, "delete")) == [event_id]
    resp = await client.put(f"{V3}/rooms/{room}/redact/{event_id}/r1", json={},
                            headers=alice.auth)
    assert resp.status == 200
    assert ids(await search(client, alice, "delete")) == []
    rows = await client.app[HS_KEY].db.fetchval("SELECT COUNT(*) FROM event_search")
    assert rows == 0


async def test_filter_keys(client: TestClient, people: tuple[User, User, User],
                           create_room: Any) -> None:
    alice, bob, _ = people
    room1 = await create_room(alice, preset="public_chat")
    room2 = await create_room(alice)
    assert (await client.post(f"{V3}/join/{room1}", headers=bob.auth, json={})).status == 200
    a1 = await send(client, alice, room1, "apple pie")
    b1 = await send(client, bob, room1, "apple tart")
    a2 = await send(client, alice, room2, "apple juice")
    assert set(ids(await search(client, alice, "apple"))) == {a1, b1, a2}
    assert set(ids(await search(client, alice, "apple", filter={"rooms": [room2]}))) == {a2}
    assert set(ids(await search(client, alice, "apple",
                                filter={"not_rooms": [room2]}))) == {a1, b1}
    assert ids(await search(client, alice, "apple", filter={"senders": [bob.user_id]})) == [b1]
    assert set(ids(await search(client, alice, "apple",
                                filter={"not_senders": [bob.user_id]}))) == {a1, a2}
    assert ids(await search(client, alice, "apple", filter={"types": ["m.room.topic"]})) == []
    assert len(ids(await search(client, alice, "apple", filter={"types": ["m.room.*"]}))) == 3
    for empty in ("rooms", "senders", "types"):
        assert ids(await search(client, alice, "apple", filter={empty: []})) == []
    for empty in ("not_rooms", "not_senders", "not_types"):
        assert len(ids(await search(client, alice, "apple", filter={empty: []}))) == 3
    assert ids(await search(client, alice, "apple", filter={"contains_url": True})) == []
    # Query syntax: phrases, exclusion and "or".
    assert ids(await search(client, alice, '"apple pie"')) == [a1]
    assert set(ids(await search(client, alice, "apple -pie"))) == {b1, a2}
    assert set(ids(await search(client, alice, "tart or juice"))) == {b1, a2}


async def test_context_groups_and_state(client: TestClient, people: tuple[User, User, User],
                                        create_room: Any, spec: MatrixSpec) -> None:
    alice, bob, _ = people
    room = await create_room(alice, preset="public_chat")
    resp = await client.put(f"{V3}/profile/{bob.user_id}/displayname",
                            json={"displayname": "Bobby"}, headers=bob.auth)
    assert resp.status == 200
    assert (await client.post(f"{V3}/join/{room}", headers=bob.auth, json={})).status == 200
    first = await send(client, alice, room, "one")
    target = await send(client, bob, room, "the needle")
    last = await send(client, alice, room, "three")
    found = await search(client, alice, "needle", spec, include_state=True,
                         event_context={"before_limit": 1, "after_limit": 3,
                                        "include_profile": True},
                         groupings={"group_by": [{"key": "room_id"}, {"key": "sender"}]})
    [result] = found["results"]
    assert result["result"]["event_id"] == target
    ctx = result["context"]
    assert [e["event_id"] for e in ctx["events_before"]] == [first]
    assert [e["event_id"] for e in ctx["events_after"]] == [last]
    assert ctx["profile_info"][bob.user_id] == {"displayname": "Bobby"}
    assert set(ctx["profile_info"]) == {alice.user_id, bob.user_id}
    assert isinstance(ctx["start"], str) and isinstance(ctx["end"], str)
    assert found["groups"]["room_id"][room] == {"order": 1, "results": [target]}
    assert found["groups"]["sender"][bob.user_id]["results"] == [target]
    types = {e["type"] for e in found["state"][room]}
    assert {"m.room.create", "m.room.member", "m.room.join_rules"} <= types
    # The context tokens work with /messages.
    resp = await client.get(f"{V3}/rooms/{room}/messages",
                            params={"from": ctx["start"], "dir": "b", "limit": "1"},
                            headers=alice.auth)
    assert resp.status == 200


WEIRD_TERMS = ['"', '""', "'", "*", "-", "--", "AND", "OR", "NOT", "a OR", "OR a", "NOT a",
               "a NOT", "a AND NOT b", "(", ")", "NEAR(a b)", "a:b", "body:x", "^x", "x^",
               '"unterminated', 'a"b', "\\", "%", "_", "a*b", "{x}", "+x", "-x", "- -",
               "a -", "\u00e9t\u00e9", "\U0001F600", " ", "", "x" * 3000, "a " * 200, "@:!$#",
               "'; DROP TABLE events; --", "\u0000", "a\u0000b", "\u202e", "-a -b -c",
               "x OR OR OR y", '"a" "b" -"c"', "NEAR/2"]


@pytest.mark.parametrize("term", WEIRD_TERMS)
async def test_fts_special_characters_never_fail(client: TestClient, register: Any,
                                                 create_room: Any, term: str) -> None:
    alice = await register("alice")
    room = await create_room(alice)
    await send(client, alice, room, "a b x body NEAR OR AND NOT")
    for order in ("rank", "recent"):
        resp = await search_raw(client, alice, {"search_term": term, "order_by": order})
        assert resp.status == 200, await resp.text()


async def test_bad_input(client: TestClient, register: Any, spec: MatrixSpec) -> None:
    alice = await register("alice")
    url = f"{V3}/search"

    async def post(body: Any, status: int, errcode: str, **params: str) -> None:
        resp = await client.post(url, json=body, headers=alice.auth, params=params)
        error = await expect(resp, status, errcode)
        spec.check_response("search", "POST", "/search", status, error)

    await post({}, 400, "M_MISSING_PARAM")
    await post({"search_categories": []}, 400, "M_BAD_JSON")
    await post({"search_categories": {}}, 400, "M_INVALID_PARAM")
    await post({"search_categories": {"messages": {"search_term": "x"}}}, 400, "M_INVALID_PARAM")
    room_events: list[tuple[dict[str, Any], str]] = [
        ({}, "M_MISSING_PARAM"),
        ({"search_term": 5}, "M_BAD_JSON"),
        ({"search_term": "x", "order_by": "newest"}, "M_INVALID_PARAM"),
        ({"search_term": "x", "order_by": 1}, "M_BAD_JSON"),
        ({"search_term": "x", "keys": ["content.msgtype"]}, "M_INVALID_PARAM"),
        ({"search_term": "x", "keys": "content.body"}, "M_BAD_JSON"),
        ({"search_term": "x", "filter": {"limit": "ten"}}, "M_BAD_JSON"),
        ({"search_term": "x", "filter": {"rooms": "!a:b"}}, "M_BAD_JSON"),
        ({"search_term": "x", "event_context": {"before_limit": -1}}, "M_INVALID_PARAM"),
        ({"search_term": "x", "event_context": {"after_limit": "5"}}, "M_BAD_JSON"),
        ({"search_term": "x", "event_context": []}, "M_BAD_JSON"),
        ({"search_term": "x", "groupings": {"group_by": [{"key": "type"}]}}, "M_INVALID_PARAM"),
        ({"search_term": "x", "include_state": "yes"}, "M_BAD_JSON"),
    ]
    for criteria, errcode in room_events:
        await post({"search_categories": {"room_events": criteria}}, 400, errcode)
    ok = {"search_categories": {"room_events": {"search_term": "x", "order_by": "recent"}}}
    await post(ok, 400, "M_INVALID_PARAM", next_batch="bogus")
    await post(ok, 400, "M_INVALID_PARAM", next_batch="k5")  # a rank token for recent
    resp = await client.post(url, data=b"not json", headers=alice.auth)
    await expect(resp, 400, "M_NOT_JSON")
    lone_surrogate = b'{"search_categories": {"room_events": {"search_term": "a\\ud800"}}}'
    resp = await client.post(url, data=lone_surrogate, headers=alice.auth)
    await expect(resp, 400, "M_BAD_JSON")
    resp = await client.post(url, json=ok)
    await expect(resp, 401, "M_MISSING_TOKEN")


async def test_migration_backfills_existing_events(client: TestClient, register: Any,
                                                   create_room: Any) -> None:
    """Events stored before migration 0012 are indexed by it (redacted ones are not)."""
    alice = await register("alice")
    room = await create_room(alice, name="Holiday planning")
    keep = await send(client, alice, room, "old message about holidays")
    gone = await send(client, alice, room, "old holiday secret")
    resp = await client.put(f"{V3}/rooms/{room}/redact/{gone}/r1", json={}, headers=alice.auth)
    assert resp.status == 200
    db = client.app[HS_KEY].db

    async def undo(conn: aiosqlite.Connection) -> None:
        await conn.execute("DROP TABLE event_search")
        await conn.execute("DROP TABLE content_reports")
        await conn.execute("DELETE FROM schema_migrations WHERE name = '0012_search_reports.sql'")

    await db.write(undo)
    await db.migrate()
    found = await search(client, alice, "holiday")
    assert len(found["results"]) == 2
    assert keep in ids(found) and gone not in ids(found)
    assert {r["result"]["type"] for r in found["results"]} == {"m.room.message", "m.room.name"}
