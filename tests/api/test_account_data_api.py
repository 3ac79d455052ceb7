"""Client config (account data) and room tags, and their delivery through /sync.

https://spec.matrix.org/v1.19/client-server-api/#client-config
https://spec.matrix.org/v1.19/client-server-api/#room-tagging
"""

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient
from support import expect, get_sync, parked

V3 = "/_matrix/client/v3"




def _room_account_data(sync: dict[str, Any], room_id: str) -> dict[str, Any]:
    room = sync["rooms"]["join"].get(room_id)
    if room is None:
        return {}
    return {e["type"]: e["content"] for e in room["account_data"]["events"]}


async def test_global_account_data(client: TestClient, register) -> None:
    alice = await register("alice")
    since = (await get_sync(client, alice))["next_batch"]
    url = f"{V3}/user/{alice.user_id}/account_data/org.example.config"
    await expect(await client.get(url, headers=alice.auth), 404, "M_NOT_FOUND")
    waiting = asyncio.create_task(get_sync(client, alice, since, timeout=10000))
    await parked(client)
    resp = await client.put(url, json={"theme": "dark"}, headers=alice.auth)
    assert resp.status == 200 and await resp.json() == {}
    sync = await asyncio.wait_for(waiting, 10)  # the write woke the long-poll
    assert sync["account_data"]["events"] == [
        {"type": "org.example.config", "content": {"theme": "dark"}}
    ]
    resp = await client.get(url, headers=alice.auth)
    assert await resp.json() == {"theme": "dark"}
    # Replacing it delivers the new content once; a later sync has nothing.
    resp = await client.put(url, json={"theme": "light"}, headers=alice.auth)
    assert resp.status == 200
    sync = await get_sync(client, alice, sync["next_batch"])
    assert sync["account_data"]["events"] == [
        {"type": "org.example.config", "content": {"theme": "light"}}
    ]
    assert (await get_sync(client, alice, sync["next_batch"]))["account_data"]["events"] == []
    initial = await get_sync(client, alice)
    assert {"type": "org.example.config", "content": {"theme": "light"}} in \
        initial["account_data"]["events"]


async def test_room_account_data(client: TestClient, register, create_room) -> None:
    alice = await register("alice")
    room_id = await create_room(alice)
    since = (await get_sync(client, alice))["next_batch"]
    url = f"{V3}/user/{alice.user_id}/rooms/{room_id}/account_data/org.example.pin"
    await expect(await client.get(url, headers=alice.auth), 404, "M_NOT_FOUND")
    resp = await client.put(url, json={"pinned": True}, headers=alice.auth)
    assert resp.status == 200
    assert await (await client.get(url, headers=alice.auth)).json() == {"pinned": True}
    # Room account data is not global account data.
    await expect(await client.get(f"{V3}/user/{alice.user_id}/account_data/org.example.pin",
                                  headers=alice.auth), 404, "M_NOT_FOUND")
    sync = await get_sync(client, alice, since)
    assert _room_account_data(sync, room_id) == {"org.example.pin": {"pinned": True}}
    assert sync["account_data"]["events"] == []


async def test_account_data_bad_input(client: TestClient, register, create_room) -> None:
    alice = await register("alice")
    bob = await register("bob")
    room_id = await create_room(alice)
    base = f"{V3}/user/{alice.user_id}"
    for url in (f"{base}/account_data/org.example.x",
                f"{base}/rooms/{room_id}/account_data/org.example.x"):
        await expect(await client.put(url, json={}, headers=bob.auth), 403, "M_FORBIDDEN")
        await expect(await client.get(url, headers=bob.auth), 403, "M_FORBIDDEN")
        await expect(await client.put(url, json={}), 401, "M_MISSING_TOKEN")
        await expect(await client.get(url), 401, "M_MISSING_TOKEN")
        await expect(await client.put(url, data=b"{x", headers=alice.auth), 400, "M_NOT_JSON")
        await expect(await client.put(url, data=b"", headers=alice.auth), 400, "M_NOT_JSON")
        await expect(await client.put(url, json=[1, 2], headers=alice.auth), 400, "M_BAD_JSON")
    for data_type in ("m.fully_read", "m.push_rules"):
        for url in (f"{base}/account_data/{data_type}",
                    f"{base}/rooms/{room_id}/account_data/{data_type}"):
            await expect(await client.put(url, json={"event_id": "$x"}, headers=alice.auth),
                         405, "M_BAD_JSON")
    for url in (f"{base}/rooms/not-a-room/account_data/org.example.x",
                f"{base}/rooms/@alice:test.local/tags"):
        await expect(await client.get(url, headers=alice.auth), 400, "M_INVALID_PARAM")
    await expect(await client.put(f"{base}/rooms/%23alias:test.local/account_data/org.example.x",
                                  json={}, headers=alice.auth), 400, "M_INVALID_PARAM")
    await expect(await client.put(f"{base}/account_data/{'t' * 256}", json={},
                                  headers=alice.auth), 400, "M_INVALID_PARAM")


async def test_tags(client: TestClient, register, create_room) -> None:
    alice = await register("alice")
    room_id = await create_room(alice)
    url = f"{V3}/user/{alice.user_id}/rooms/{room_id}/tags"
    assert await (await client.get(url, headers=alice.auth)).json() == {"tags": {}}
    since = (await get_sync(client, alice))["next_batch"]
    resp = await client.put(f"{url}/u.work", json={"order": 0.5}, headers=alice.auth)
    assert resp.status == 200 and await resp.json() == {}
    resp = await client.put(f"{url}/m.favourite", json={}, headers=alice.auth)
    assert resp.status == 200
    resp = await client.put(f"{url}/u.edge", json={"order": 1}, headers=alice.auth)
    assert resp.status == 200
    assert await (await client.get(url, headers=alice.auth)).json() == {
        "tags": {"u.work": {"order": 0.5}, "m.favourite": {}, "u.edge": {"order": 1}}
    }
    sync = await get_sync(client, alice, since)
    assert _room_account_data(sync, room_id) == {
        "m.tag": {"tags": {"u.work": {"order": 0.5}, "m.favourite": {}, "u.edge": {"order": 1}}}
    }
    # The tags are the m.tag room account data.
    resp = await client.get(f"{V3}/user/{alice.user_id}/rooms/{room_id}/account_data/m.tag",
                            headers=alice.auth)
    assert (await resp.json())["tags"]["u.work"] == {"order": 0.5}

    resp = await client.delete(f"{url}/u.work", headers=alice.auth)
    assert resp.status == 200 and await resp.json() == {}
    sync = await get_sync(client, alice, sync["next_batch"])
    assert _room_account_data(sync, room_id) == {
        "m.tag": {"tags": {"m.favourite": {}, "u.edge": {"order": 1}}}
    }
    # Deleting a tag that is not there is fine and changes nothing.
    resp = await client.delete(f"{url}/u.work", headers=alice.auth)
    assert resp.status == 200
    assert room_id not in (await get_sync(client, alice, sync["next_batch"]))["rooms"]["join"]


async def test_tags_bad_input(client: TestClient, register, create_room) -> None:
    alice = await register("alice")
    bob = await register("bob")
    room_id = await create_room(alice)
    url = f"{V3}/user/{alice.user_id}/rooms/{room_id}/tags"
    await expect(await client.get(url, headers=bob.auth), 403, "M_FORBIDDEN")
    await expect(await client.put(f"{url}/u.x", json={}, headers=bob.auth), 403, "M_FORBIDDEN")
    await expect(await client.delete(f"{url}/u.x", headers=bob.auth), 403, "M_FORBIDDEN")
    await expect(await client.get(url), 401, "M_MISSING_TOKEN")
    for order in ("high", True, [0.1]):
        await expect(await client.put(f"{url}/u.x", json={"order": order}, headers=alice.auth),
                     400, "M_BAD_JSON")
    for order in (-0.1, 1.5, 2):
        await expect(await client.put(f"{url}/u.x", json={"order": order}, headers=alice.auth),
                     400, "M_INVALID_PARAM")
    await expect(await client.put(f"{url}/u.x", data=b"nope", headers=alice.auth),
                 400, "M_NOT_JSON")
    await expect(await client.put(f"{url}/u.x", json=["order"], headers=alice.auth),
                 400, "M_BAD_JSON")
    await expect(await client.put(f"{url}/{'u' * 256}", json={}, headers=alice.auth),
                 400, "M_INVALID_PARAM")
    assert await (await client.get(url, headers=alice.auth)).json() == {"tags": {}}
