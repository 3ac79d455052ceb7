"""Profiles: GET/PUT/DELETE /profile/{userId}[/{keyName}] and the member-event propagation.

https://spec.matrix.org/v1.19/client-server-api/#profiles
"""


from aiohttp.test_utils import TestClient
from support import expect, get_sync

V3 = "/_matrix/client/v3"




async def test_get_profile_after_registration(client: TestClient, register) -> None:
    alice = await register("alice")
    resp = await client.get(f"{V3}/profile/{alice.user_id}")  # no token needed
    assert resp.status == 200
    assert await resp.json() == {"displayname": "alice"}
    resp = await client.get(f"{V3}/profile/{alice.user_id}/displayname")
    assert await resp.json() == {"displayname": "alice"}
    # Nothing set: 404 for the field.
    await expect(await client.get(f"{V3}/profile/{alice.user_id}/avatar_url"), 404, "M_NOT_FOUND")


async def test_unknown_and_remote_users(client: TestClient, register) -> None:
    await register("alice")
    for user in ("@nobody:test.local", "@alice:elsewhere.example", "not-a-user"):
        await expect(await client.get(f"{V3}/profile/{user}"), 404, "M_NOT_FOUND")
        await expect(await client.get(f"{V3}/profile/{user}/displayname"), 404, "M_NOT_FOUND")


async def test_set_displayname_and_avatar(client: TestClient, register) -> None:
    alice = await register("alice")
    resp = await client.put(f"{V3}/profile/{alice.user_id}/displayname",
                            json={"displayname": "Alice W"}, headers=alice.auth)
    assert resp.status == 200 and await resp.json() == {}
    resp = await client.put(f"/_matrix/client/r0/profile/{alice.user_id}/avatar_url",
                            json={"avatar_url": "mxc://test.local/abc_DEF-1"}, headers=alice.auth)
    assert resp.status == 200
    resp = await client.get(f"{V3}/profile/{alice.user_id}")
    assert await resp.json() == {"displayname": "Alice W",
                                 "avatar_url": "mxc://test.local/abc_DEF-1"}
    # An empty string clears the field.
    resp = await client.put(f"{V3}/profile/{alice.user_id}/avatar_url",
                            json={"avatar_url": ""}, headers=alice.auth)
    assert resp.status == 200
    await expect(await client.get(f"{V3}/profile/{alice.user_id}/avatar_url"), 404, "M_NOT_FOUND")


async def test_set_profile_bad_input(client: TestClient, register) -> None:
    alice = await register("alice")
    bob = await register("bob")
    url = f"{V3}/profile/{alice.user_id}"
    await expect(await client.put(f"{url}/displayname", json={"displayname": "x"},
                                  headers=bob.auth), 403, "M_FORBIDDEN")
    await expect(await client.delete(f"{url}/displayname", headers=bob.auth), 403, "M_FORBIDDEN")
    await expect(await client.put(f"{url}/displayname", json={"displayname": "x"}),
                 401, "M_MISSING_TOKEN")
    await expect(await client.put(f"{url}/displayname", json={"displayname": 12},
                                  headers=alice.auth), 400, "M_BAD_JSON")
    await expect(await client.put(f"{url}/displayname", json={"displayname": None},
                                  headers=alice.auth), 400, "M_BAD_JSON")
    await expect(await client.put(f"{url}/displayname", json={"other": "x"},
                                  headers=alice.auth), 400, "M_MISSING_PARAM")
    await expect(await client.put(f"{url}/displayname", data=b"{nope", headers=alice.auth),
                 400, "M_NOT_JSON")
    await expect(await client.put(f"{url}/displayname", json=["x"], headers=alice.auth),
                 400, "M_BAD_JSON")
    await expect(await client.put(f"{url}/displayname", json={"displayname": "x" * 300},
                                  headers=alice.auth), 400, "M_INVALID_PARAM")
    await expect(await client.put(f"{url}/avatar_url", json={"avatar_url": 5},
                                  headers=alice.auth), 400, "M_BAD_JSON")
    for bad in ("http://example.com/a.png", "mxc://test.local/", "mxc://test.local/a/b"):
        await expect(await client.put(f"{url}/avatar_url", json={"avatar_url": bad},
                                      headers=alice.auth), 400, "M_INVALID_PARAM")
    # Bob may not change a profile of a user that does not exist either.
    await expect(await client.put(f"{V3}/profile/@ghost:test.local/displayname",
                                  json={"displayname": "x"}, headers=bob.auth),
                 403, "M_FORBIDDEN")


async def test_custom_profile_fields(client: TestClient, register) -> None:
    alice = await register("alice")
    url = f"{V3}/profile/{alice.user_id}"
    for key, value in (("m.tz", "Europe/London"), ("org.example.job", {"title": "cook"}),
                       ("m.example_field", None)):
        resp = await client.put(f"{url}/{key}", json={key: value}, headers=alice.auth)
        assert resp.status == 200, await resp.json()
    resp = await client.get(f"{V3}/profile/{alice.user_id}/org.example.job")
    assert await resp.json() == {"org.example.job": {"title": "cook"}}
    resp = await client.get(f"{V3}/profile/{alice.user_id}/m.example_field")
    assert await resp.json() == {"m.example_field": None}
    assert await (await client.get(url)).json() == {
        "displayname": "alice", "m.tz": "Europe/London", "org.example.job": {"title": "cook"},
        "m.example_field": None,
    }
    resp = await client.delete(f"{url}/org.example.job", headers=alice.auth)
    assert resp.status == 200
    await expect(await client.get(f"{url}/org.example.job"), 404, "M_NOT_FOUND")
    # Deleting something that is not there is fine.
    resp = await client.delete(f"{url}/org.example.job", headers=alice.auth)
    assert resp.status == 200


async def test_custom_profile_field_limits(client: TestClient, register) -> None:
    alice = await register("alice")
    url = f"{V3}/profile/{alice.user_id}"
    for key in ("Org.Example", "nodots", "org..x", "1org.x"):
        await expect(await client.put(f"{url}/{key}", json={key: 1}, headers=alice.auth),
                     400, "M_INVALID_PARAM")
        await expect(await client.delete(f"{url}/{key}", headers=alice.auth),
                     400, "M_INVALID_PARAM")
    long_key = "org." + "a" * 260
    await expect(await client.put(f"{url}/{long_key}", json={long_key: 1}, headers=alice.auth),
                 400, "M_KEY_TOO_LARGE")
    await expect(await client.put(f"{url}/m.tz", json={"m.tz": 1}, headers=alice.auth),
                 400, "M_BAD_JSON")
    big = "x" * 40000
    resp = await client.put(f"{url}/org.example.a", json={"org.example.a": big},
                            headers=alice.auth)
    assert resp.status == 200
    # Together over 64 KiB.
    await expect(await client.put(f"{url}/org.example.b", json={"org.example.b": big},
                                  headers=alice.auth), 400, "M_PROFILE_TOO_LARGE")
    await expect(await client.get(f"{url}/org.example.b"), 404, "M_NOT_FOUND")
    # Replacing the big field with a small one is fine.
    resp = await client.put(f"{url}/org.example.a", json={"org.example.a": 1}, headers=alice.auth)
    assert resp.status == 200


async def test_displayname_change_propagates_to_rooms(client: TestClient, register,
                                                      create_room) -> None:
    alice = await register("alice")
    bob = await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    other_room = await create_room(alice)
    resp = await client.post(f"{V3}/join/{room_id}", json={}, headers=bob.auth)
    assert resp.status == 200
    since = (await get_sync(client, bob))["next_batch"]
    alice_since = (await get_sync(client, alice))["next_batch"]

    resp = await client.put(f"{V3}/profile/{alice.user_id}/displayname",
                            json={"displayname": "Alice W"}, headers=alice.auth)
    assert resp.status == 200
    resp = await client.put(f"{V3}/profile/{alice.user_id}/avatar_url",
                            json={"avatar_url": "mxc://test.local/pic"}, headers=alice.auth)
    assert resp.status == 200

    sync = await get_sync(client, bob, since)
    timeline = sync["rooms"]["join"][room_id]["timeline"]["events"]
    members = [e for e in timeline if e["type"] == "m.room.member"]
    assert [e["content"] for e in members] == [
        {"membership": "join", "displayname": "Alice W"},
        {"membership": "join", "displayname": "Alice W", "avatar_url": "mxc://test.local/pic"},
    ]
    assert all(e["state_key"] == alice.user_id for e in members)
    assert other_room not in sync["rooms"]["join"]  # bob is not in it
    own = await get_sync(client, alice, alice_since)
    assert {room_id, other_room} <= set(own["rooms"]["join"])
    resp = await client.get(f"{V3}/rooms/{room_id}/joined_members", headers=bob.auth)
    assert (await resp.json())["joined"][alice.user_id] == {
        "display_name": "Alice W", "avatar_url": "mxc://test.local/pic",
    }

    # Setting the same name again sends nothing new.
    since = sync["next_batch"]
    resp = await client.put(f"{V3}/profile/{alice.user_id}/displayname",
                            json={"displayname": "Alice W"}, headers=alice.auth)
    assert resp.status == 200
    assert room_id not in (await get_sync(client, bob, since))["rooms"]["join"]

    # Deleting the display name propagates too.
    resp = await client.delete(f"{V3}/profile/{alice.user_id}/displayname", headers=alice.auth)
    assert resp.status == 200
    timeline = (await get_sync(client, bob, since))["rooms"]["join"][room_id]["timeline"]["events"]
    assert timeline[-1]["content"] == {"membership": "join", "avatar_url": "mxc://test.local/pic"}
    await expect(await client.get(f"{V3}/profile/{alice.user_id}/displayname"), 404,
                 "M_NOT_FOUND")
