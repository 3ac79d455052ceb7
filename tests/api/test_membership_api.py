"""Membership through /join and through PUT /state/m.room.member.

https://spec.matrix.org/v1.19/client-server-api/#room-membership
https://spec.matrix.org/v1.19/client-server-api/#mroommember
"""

from urllib.parse import quote

from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, Env, User


async def _member(client: TestClient, env: Env, user: User) -> dict:
    resp = await client.get(f"{V3}/rooms/{env.room_id}/state/m.room.member/{user.user_id}",
                            headers=env.alice.auth)
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def test_join_by_state_put(client: TestClient, env: Env, spec: MatrixSpec) -> None:
    """A user joins a public room by PUTting its own join, with a per-room displayname."""
    path = f"{V3}/rooms/{env.room_id}/state/m.room.member/{env.bob.user_id}"
    resp = await client.put(path, json={"membership": "join", "displayname": "Room Bob"},
                            headers=env.bob.auth)
    body = await resp.json()
    assert resp.status == 200, body
    spec.check_response("room_state", "PUT", "/rooms/{roomId}/state/{eventType}/{stateKey}",
                        200, body)
    assert await _member(client, env, env.bob) == {"membership": "join",
                                                   "displayname": "Room Bob"}
    joined = await client.get(f"{V3}/joined_rooms", headers=env.bob.auth)
    assert env.room_id in (await joined.json())["joined_rooms"]
    # ... and leaves the same way.
    resp = await client.put(path, json={"membership": "leave"}, headers=env.bob.auth)
    assert resp.status == 200, await resp.text()
    assert (await _member(client, env, env.bob))["membership"] == "leave"


async def test_join_by_state_put_fills_profile(client: TestClient, env: Env) -> None:
    """Like /join, the profile gives the displayname the content leaves out."""
    resp = await client.put(f"{V3}/rooms/{env.room_id}/state/m.room.member/{env.bob.user_id}",
                            json={"membership": "join"}, headers=env.bob.auth)
    assert resp.status == 200, await resp.text()
    assert (await _member(client, env, env.bob))["displayname"] == "bob"


async def test_join_by_state_put_invited_to_private_room(client: TestClient, register,
                                                         create_room) -> None:
    alice, bob, carol = await register("alice"), await register("bob"), await register("carol")
    room_id = await create_room(alice, preset="private_chat", invite=[bob.user_id])
    for user, status in ((carol, 403), (bob, 200)):
        resp = await client.put(f"{V3}/rooms/{room_id}/state/m.room.member/{user.user_id}",
                                json={"membership": "join"}, headers=user.auth)
        assert resp.status == status, await resp.text()
    resp = await client.get(f"{V3}/rooms/{room_id}/joined_members", headers=alice.auth)
    assert set((await resp.json())["joined"]) == {alice.user_id, bob.user_id}


async def test_state_put_cannot_set_server_keys(client: TestClient, env: Env) -> None:
    """join_authorised_via_users_server is only ever set by the server after its checks."""
    resp = await client.put(
        f"{V3}/rooms/{env.room_id}/state/m.room.member/{env.bob.user_id}",
        json={"membership": "join", "join_authorised_via_users_server": env.alice.user_id},
        headers=env.bob.auth)
    assert resp.status == 200, await resp.text()
    assert "join_authorised_via_users_server" not in await _member(client, env, env.bob)


async def test_joined_user_changes_displayname_by_state(client: TestClient, env: Env) -> None:
    path = f"{V3}/rooms/{env.room_id}/state/m.room.member/{env.alice.user_id}"
    resp = await client.put(path, json={"membership": "join", "displayname": "Overridden"},
                            headers=env.alice.auth)
    assert resp.status == 200, await resp.text()
    assert (await _member(client, env, env.alice))["displayname"] == "Overridden"


async def test_invite_by_state_put(client: TestClient, env: Env) -> None:
    path = f"{V3}/rooms/{env.room_id}/state/m.room.member/{env.bob.user_id}"
    resp = await client.put(path, json={"membership": "invite"}, headers=env.alice.auth)
    assert resp.status == 200, await resp.text()
    assert (await _member(client, env, env.bob))["membership"] == "invite"


async def test_join_with_custom_content(client: TestClient, env: Env, create_room) -> None:
    """Keys of a /join body beyond reason go into the member event; both by id and alias."""
    await create_room(env.alice, preset="public_chat", room_alias_name="hall")
    for target, user in ((env.room_id, env.bob), ("#hall:test.local", env.alice)):
        resp = await client.post(f"{V3}/join/{quote(target)}", json={"foo": "bar", "reason": "hi"},
                                 headers=user.auth)
        body = await resp.json()
        assert resp.status == 200, body
        state = await client.get(
            f"{V3}/rooms/{body['room_id']}/state/m.room.member/{user.user_id}",
            headers=user.auth)
        content = await state.json()
        assert (content["foo"], content["membership"], content["reason"]) == ("bar", "join",
                                                                              "hi"), content


async def test_join_again_without_content_is_a_no_op(client: TestClient, env: Env) -> None:
    before = await _member(client, env, env.alice)
    resp = await client.post(f"{V3}/join/{env.room_id}", json={}, headers=env.alice.auth)
    assert resp.status == 200
    assert await _member(client, env, env.alice) == before
