"""Room upgrades: POST /rooms/{roomId}/upgrade.

https://spec.matrix.org/v1.19/client-server-api/#room-upgrades
https://spec.matrix.org/v1.19/client-server-api/#server-behaviour-19
"""

from typing import Any

from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, expect

PATH = "/rooms/{roomId}/upgrade"


async def upgrade(client: TestClient, user: Any, room_id: str, spec: MatrixSpec,
                  **body: Any) -> str:
    resp = await client.post(f"{V3}/rooms/{room_id}/upgrade", json=body, headers=user.auth)
    data = await resp.json()
    assert resp.status == 200, data
    spec.check_response("room_upgrades", "POST", PATH, 200, data)
    return str(data["replacement_room"])


async def state(client: TestClient, user: Any, room_id: str) -> dict[tuple[str, str], Any]:
    resp = await client.get(f"{V3}/rooms/{room_id}/state", headers=user.auth)
    assert resp.status == 200, await resp.text()
    return {(e["type"], e["state_key"]): e for e in await resp.json()}


async def join(client: TestClient, user: Any, room_id: str) -> None:
    resp = await client.post(f"{V3}/join/{room_id}", headers=user.auth)
    assert resp.status == 200, await resp.text()


async def test_upgrade_v11_to_v12(client: TestClient, register: Any, create_room: Any,
                                  spec: MatrixSpec) -> None:
    alice, bob, carol = await register("alice"), await register("bob"), await register("carol")
    old = await create_room(
        alice, preset="public_chat", room_version="11", name="Porch", topic="front door",
        room_alias_name="porch", visibility="public",
        initial_state=[{"type": "m.room.encryption",
                        "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
        power_level_content_override={"users": {"@alice:test.local": 100,
                                                 "@bob:test.local": 50}})
    await join(client, bob, old)
    await join(client, carol, old)
    resp = await client.post(f"{V3}/rooms/{old}/ban", json={"user_id": "@mallory:test.local"},
                             headers=alice.auth)
    assert resp.status == 200
    new = await upgrade(client, alice, old, spec, new_version="12")
    assert new != old and new.startswith("!")
    after = await state(client, alice, new)
    create = after[("m.room.create", "")]
    assert create["sender"] == alice.user_id and "creator" not in create["content"]
    assert create["content"]["room_version"] == "12"
    assert create["content"]["predecessor"]["room_id"] == old
    # the transferable state, with v12 power levels: the creator is not listed
    assert after[("m.room.name", "")]["content"] == {"name": "Porch"}
    assert after[("m.room.topic", "")]["content"]["topic"] == "front door"
    assert after[("m.room.join_rules", "")]["content"] == {"join_rule": "public"}
    assert after[("m.room.encryption", "")]["content"]["algorithm"] == "m.megolm.v1.aes-sha2"
    assert after[("m.room.history_visibility", "")]["content"]["history_visibility"] == "shared"
    assert after[("m.room.guest_access", "")]["content"]["guest_access"] == "forbidden"
    power = after[("m.room.power_levels", "")]["content"]
    assert power["users"] == {bob.user_id: 50}
    assert after[("m.room.canonical_alias", "")]["content"]["alias"] == "#porch:test.local"
    members = {k: e["content"]["membership"] for (t, k), e in after.items()
               if t == "m.room.member"}
    # nobody else is moved; bans are kept
    assert members == {alice.user_id: "join", "@mallory:test.local": "ban"}
    # the old room: tombstone, restricted power levels, no canonical alias
    before = await state(client, alice, old)
    tombstone = before[("m.room.tombstone", "")]
    assert tombstone["content"]["replacement_room"] == new
    assert tombstone["sender"] == alice.user_id
    old_power = before[("m.room.power_levels", "")]["content"]
    assert old_power["events_default"] == 50 and old_power["invite"] == 50
    assert before[("m.room.canonical_alias", "")]["content"] == {}
    resp = await client.put(f"{V3}/rooms/{old}/send/m.room.message/late",
                            json={"msgtype": "m.text", "body": "hello?"}, headers=carol.auth)
    await expect(resp, 403, "M_FORBIDDEN")
    # the alias and the directory entry moved
    resp = await client.get(f"{V3}/directory/room/%23porch:test.local")
    assert (await resp.json())["room_id"] == new
    for room_id, visibility in ((old, "private"), (new, "public")):
        resp = await client.get(f"{V3}/directory/list/room/{room_id}")
        assert (await resp.json())["visibility"] == visibility
    resp = await client.get(f"{V3}/publicRooms")
    assert [r["room_id"] for r in (await resp.json())["chunk"]] == [new]
    # the others follow the tombstone
    await join(client, bob, new)
    await join(client, carol, new)


async def test_upgrade_additional_creators_and_back_to_v10(
        client: TestClient, register: Any, create_room: Any, spec: MatrixSpec) -> None:
    alice, bob = await register("alice"), await register("bob")
    old = await create_room(alice, preset="private_chat", invite=[bob.user_id],
                            creation_content={"type": "m.space"})
    await join(client, bob, old)
    new = await upgrade(client, alice, old, spec, new_version="12",
                        additional_creators=[bob.user_id])
    after = await state(client, alice, new)
    create = after[("m.room.create", "")]["content"]
    assert create["additional_creators"] == [bob.user_id]
    assert create["type"] == "m.space"  # the room type stays
    assert bob.user_id not in after[("m.room.power_levels", "")]["content"]["users"]
    # into an older version: the creator field, and the v12 creators keep 100
    older = await upgrade(client, alice, new, spec, new_version="10")
    after = await state(client, alice, older)
    assert after[("m.room.create", "")]["content"]["creator"] == alice.user_id
    assert after[("m.room.create", "")]["content"]["room_version"] == "10"
    users = after[("m.room.power_levels", "")]["content"]["users"]
    assert users == {alice.user_id: 100, bob.user_id: 100}


async def test_upgrade_errors(client: TestClient, register: Any, create_room: Any,
                              spec: MatrixSpec) -> None:
    alice, bob, carol = await register("alice"), await register("bob"), await register("carol")
    room = await create_room(alice, preset="public_chat")
    await join(client, bob, room)
    url = f"{V3}/rooms/{room}/upgrade"
    body = await expect(await client.post(url, json={"new_version": "99"}, headers=alice.auth),
                        400, "M_UNSUPPORTED_ROOM_VERSION")
    spec.check_response("room_upgrades", "POST", PATH, 400, body)
    # bob has no power to send a tombstone; carol is not in the room
    for user in (bob, carol):
        body = await expect(await client.post(url, json={"new_version": "12"},
                                              headers=user.auth), 403, "M_FORBIDDEN")
        spec.check_response("room_upgrades", "POST", PATH, 403, body)
    await expect(await client.post(f"{V3}/rooms/!nowhere:test.local/upgrade",
                                   json={"new_version": "12"}, headers=alice.auth),
                 403, "M_FORBIDDEN")
    await expect(await client.post(url, json={}, headers=alice.auth), 400, "M_MISSING_PARAM")
    await expect(await client.post(url, json={"new_version": 12}, headers=alice.auth), 400,
                 "M_BAD_JSON")
    await expect(await client.post(url, json={"new_version": "12", "additional_creators": "x"},
                                   headers=alice.auth), 400, "M_BAD_JSON")
    for creators in (["nobody"], ["@" + "a" * 300 + ":test.local"]):
        await expect(await client.post(url, json={"new_version": "12",
                                                  "additional_creators": creators},
                                       headers=alice.auth), 400, "M_INVALID_PARAM")
    await expect(await client.post(url, data=b"[]", headers=alice.auth), 400, "M_BAD_JSON")
    await expect(await client.post(url, json={"new_version": "12"}), 401, "M_MISSING_TOKEN")
    # nothing changed in the room
    resp = await client.get(f"{V3}/rooms/{room}/state/m.room.tombstone/", headers=alice.auth)
    await expect(resp, 404, "M_NOT_FOUND")


async def test_upgrade_by_a_moderator_keeps_their_level(
        client: TestClient, register: Any, create_room: Any, spec: MatrixSpec) -> None:
    """Into a version without infinitely powerful creators, a user below 100 is raised while
    the state is copied, then the copied power levels (with their own level) come last."""
    alice, bob = await register("alice"), await register("bob")
    old = await create_room(alice, preset="public_chat", room_version="11", name="Den",
                            power_level_content_override={
                                "users": {alice.user_id: 100, bob.user_id: 50},
                                "events": {"m.room.tombstone": 50, "m.room.name": 100}})
    await join(client, bob, old)
    new = await upgrade(client, bob, old, spec, new_version="11")
    after = await state(client, bob, new)
    assert after[("m.room.create", "")]["sender"] == bob.user_id
    assert after[("m.room.name", "")]["content"] == {"name": "Den"}
    power = after[("m.room.power_levels", "")]
    assert power["content"]["users"] == {alice.user_id: 100, bob.user_id: 50}
    assert power["sender"] == bob.user_id
