"""What deleting a device and deactivating an account leave behind: nothing.

A deleted device (DELETE /devices/{deviceId}, POST /delete_devices, /logout, /logout/all) is a
device-list change for everyone sharing a room with its owner, and takes its keys, pushers and
to-device inbox with it. Deactivation leaves every room, rejects invites, deletes devices,
tokens, pushers, E2EE and cross-signing keys, key backups, account data, push rules (and with
``erase`` the profile); logging in again is 403 M_USER_DEACTIVATED.

https://spec.matrix.org/v1.19/client-server-api/#device-management
https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3accountdeactivate
"""

import copy
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json
from spec_schema import MatrixSpec
from support import V3, User, count, expect, get_sync

PASSWORD = "secret-pw"
PUSHER = {
    "kind": "http", "app_id": "org.example.app", "pushkey": "key-1",
    "app_display_name": "Example", "device_display_name": "Phone", "lang": "en",
    "data": {"url": "http://127.0.0.1:9/_matrix/push/v1/notify", "format": "event_id_only"},
}


def auth(user: User, password: str = PASSWORD) -> dict[str, Any]:
    return {"auth": {"type": "m.login.password", "password": password,
                     "identifier": {"type": "m.id.user", "user": user.user_id}}}


class Signer:
    def __init__(self, version: str | None = None) -> None:
        self.key = generate_signing_key("tmp")
        self.public = encode_verify_key_base64(get_verify_key(self.key))
        self.key.version = version or self.public
        self.key_id = f"ed25519:{self.key.version}"

    def sign(self, obj: dict[str, Any], user_id: str) -> dict[str, Any]:
        return dict(sign_json(copy.deepcopy(obj), user_id, self.key))


async def ok(resp: Any, spec: MatrixSpec | None = None, op: tuple[str, str, str] | None = None
             ) -> Any:
    data = await resp.json()
    assert resp.status == 200, data
    if spec is not None and op is not None:
        spec.check_response(op[0], op[1], op[2], 200, data)
    return data


async def login(client: TestClient, user: User, device_id: str) -> User:
    resp = await client.post(f"{V3}/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": PASSWORD, "device_id": device_id})
    data = await ok(resp)
    return User(data["user_id"], data["access_token"], data["device_id"])


async def equip(client: TestClient, device: User) -> None:
    """Device keys, one-time keys and a pusher for ``device``."""
    signer = Signer(device.device_id)
    keys = signer.sign({
        "user_id": device.user_id, "device_id": device.device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {signer.key_id: signer.public, f"curve25519:{device.device_id}": "c"},
    }, device.user_id)
    otks = {"signed_curve25519:A": signer.sign({"key": "otk"}, device.user_id)}
    await ok(await client.post(f"{V3}/keys/upload", headers=device.auth,
                               json={"device_keys": keys, "one_time_keys": otks}))
    await ok(await client.post(f"{V3}/pushers/set", json=PUSHER, headers=device.auth))


async def send_to_device(client: TestClient, sender: User, target: User, txn: str) -> None:
    await ok(await client.put(f"{V3}/sendToDevice/org.example.ping/{txn}", headers=sender.auth,
                              json={"messages": {target.user_id: {target.device_id: {"n": 1}}}}))


async def rows(client: TestClient, table: str, where: str, *params: str) -> int:
    from edgehs.api.keys import HS_KEY
    return int(await client.app[HS_KEY].db.fetchval(
        f"SELECT COUNT(*) FROM {table} WHERE {where}", params))


async def shared_room(client: TestClient, create_room: Any, a: User, b: User) -> str:
    room = str(await create_room(a, preset="public_chat"))
    await ok(await client.post(f"{V3}/join/{room}", json={}, headers=b.auth))
    return room


@pytest.mark.parametrize("path", ["delete_device", "delete_devices", "logout", "logout_all"])
async def test_deleted_device_leaves_nothing(client: TestClient, register: Any, create_room: Any,
                                             spec: MatrixSpec, path: str) -> None:
    alice, bob = await register("alice"), await register("bob")
    await shared_room(client, create_room, alice, bob)
    phone = await login(client, alice, "PHONE")
    await equip(client, phone)
    await send_to_device(client, bob, phone, "t1")
    assert await rows(client, "device_inbox", "device_id = ?", "PHONE") == 1
    since = (await get_sync(client, bob))["next_batch"]

    if path == "delete_device":
        await ok(await client.delete(f"{V3}/devices/PHONE", json=auth(alice), headers=alice.auth),
                 spec, ("device_management", "DELETE", "/devices/{deviceId}"))
    elif path == "delete_devices":
        await ok(await client.post(f"{V3}/delete_devices", headers=alice.auth,
                                   json={"devices": ["PHONE"], **auth(alice)}),
                 spec, ("device_management", "POST", "/delete_devices"))
    elif path == "logout":
        await ok(await client.post(f"{V3}/logout", headers=phone.auth),
                 spec, ("logout", "POST", "/logout"))
    else:
        await ok(await client.post(f"{V3}/logout/all", headers=phone.auth),
                 spec, ("logout", "POST", "/logout/all"))

    # bob sees alice's device list change, in /sync and /keys/changes, and no PHONE any more.
    synced = await get_sync(client, bob, since)
    assert alice.user_id in synced["device_lists"]["changed"]
    changes = await ok(await client.get(f"{V3}/keys/changes", params={"from": since},
                                        headers=bob.auth))
    assert alice.user_id in changes["changed"]
    found = await ok(await client.post(f"{V3}/keys/query", headers=bob.auth,
                                       json={"device_keys": {alice.user_id: []}}))
    assert "PHONE" not in found["device_keys"][alice.user_id]
    # The device's keys, pushers and inbox are gone; its token is refused.
    for table in ("e2e_device_keys", "e2e_one_time_keys", "pushers", "device_inbox"):
        assert await rows(client, table, "device_id = ?", "PHONE") == 0, table
    await expect(await client.get(f"{V3}/account/whoami", headers=phone.auth),
                 401, "M_UNKNOWN_TOKEN")
    still = 0 if path == "logout_all" else 1
    assert await rows(client, "devices", "user_id = ?", alice.user_id) == still


async def test_delete_device_bad_input(client: TestClient, register: Any) -> None:
    alice = await register("alice")
    phone = await login(client, alice, "PHONE")
    await expect(await client.delete(f"{V3}/devices/NOPE", json=auth(alice),
                                     headers=alice.auth), 404, "M_NOT_FOUND")
    body = await expect(await client.delete(f"{V3}/devices/PHONE", json={},
                                            headers=alice.auth), 401, "M_UNAUTHORIZED")
    assert body["flows"] == [{"stages": ["m.login.password"]}]
    await expect(await client.delete(f"{V3}/devices/PHONE", json=auth(alice, "wrong"),
                                     headers=alice.auth), 401, "M_FORBIDDEN")
    await expect(await client.post(f"{V3}/delete_devices", json=auth(alice),
                                   headers=alice.auth), 400, "M_MISSING_PARAM")
    await expect(await client.post(f"{V3}/delete_devices", json={"devices": "PHONE"},
                                   headers=alice.auth), 400, "M_BAD_JSON")
    await expect(await client.post(f"{V3}/delete_devices", json={"devices": [1]},
                                   headers=alice.auth), 400, "M_BAD_JSON")
    # Nothing was deleted by the refused requests.
    await ok(await client.get(f"{V3}/account/whoami", headers=phone.auth))


async def test_deactivation_cleans_up(client: TestClient, register: Any, create_room: Any,
                                      spec: MatrixSpec) -> None:
    alice, bob, carol = await register("alice"), await register("bob"), await register("carol")
    joined = await shared_room(client, create_room, bob, alice)
    invited = str(await create_room(carol, preset="private_chat"))
    await ok(await client.post(f"{V3}/rooms/{invited}/invite", json={"user_id": alice.user_id},
                               headers=carol.auth))
    await ok(await client.put(f"{V3}/profile/{alice.user_id}/displayname",
                              json={"displayname": "Alice A."}, headers=alice.auth))
    await ok(await client.put(f"{V3}/profile/{alice.user_id}/avatar_url",
                              json={"avatar_url": "mxc://test.local/a"}, headers=alice.auth))
    await equip(client, alice)
    master, ssk = Signer(), Signer()
    cross = {"master_key": {"user_id": alice.user_id, "usage": ["master"],
                            "keys": {master.key_id: master.public}},
             "self_signing_key": master.sign({"user_id": alice.user_id,
                                              "usage": ["self_signing"],
                                              "keys": {ssk.key_id: ssk.public}},
                                             alice.user_id)}
    await ok(await client.post(f"{V3}/keys/device_signing/upload", json=cross,
                               headers=alice.auth))
    await ok(await client.post(f"{V3}/room_keys/version", headers=alice.auth, json={
        "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": {"k": "v"}}))
    await ok(await client.put(f"{V3}/user/{alice.user_id}/account_data/org.example.x",
                              json={"a": 1}, headers=alice.auth))
    await send_to_device(client, bob, alice, "t1")
    since = (await get_sync(client, bob))["next_batch"]
    search = {"search_term": "alice"}
    found = await ok(await client.post(f"{V3}/user_directory/search", json=search,
                                       headers=bob.auth))
    assert [r["user_id"] for r in found["results"]] == [alice.user_id]

    # Refused without the password; with it, done.
    body = await expect(await client.post(f"{V3}/account/deactivate", json={},
                                          headers=alice.auth), 401, "M_UNAUTHORIZED")
    assert "session" in body
    await expect(await client.post(f"{V3}/account/deactivate", json={"erase": "yes"},
                                   headers=alice.auth), 400, "M_BAD_JSON")
    done = await ok(await client.post(f"{V3}/account/deactivate", headers=alice.auth,
                                      json={"erase": True, **auth(alice)}),
                    spec, ("account_deactivation", "POST", "/account/deactivate"))
    assert done["id_server_unbind_result"] == "no-support"

    # Left the joined room, rejected the invite, through events others see.
    synced = await get_sync(client, bob, since)
    members = [e for e in synced["rooms"]["join"][joined]["timeline"]["events"]
               if e["type"] == "m.room.member" and e["state_key"] == alice.user_id]
    assert members[-1]["content"] == {"membership": "leave"}
    assert alice.user_id in synced["device_lists"]["left"]
    resp = await client.get(f"{V3}/rooms/{invited}/state/m.room.member/{alice.user_id}",
                            headers=carol.auth)
    assert (await ok(resp))["membership"] == "leave"
    # Logging in again: 403 M_USER_DEACTIVATED, whatever the password; the token is dead.
    for password in (PASSWORD, "wrong"):
        await expect(await client.post(f"{V3}/login", json={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
            "password": password}), 403, "M_USER_DEACTIVATED")
    await expect(await client.get(f"{V3}/account/whoami", headers=alice.auth),
                 401, "M_UNKNOWN_TOKEN")
    # The name stays taken.
    await expect(await client.get(f"{V3}/register/available", params={"username": "alice"}),
                 400, "M_USER_IN_USE")
    # Gone from the user directory (it reads the membership index and skips deactivated
    # users: there is no directory table to clean).
    found = await ok(await client.post(f"{V3}/user_directory/search", json=search,
                                       headers=bob.auth))
    assert found["results"] == []
    # Erased profile.
    profile = await ok(await client.get(f"{V3}/profile/{alice.user_id}", headers=bob.auth))
    assert profile == {}
    # Nothing of alice's is left behind.
    for table in ("devices", "access_tokens", "e2e_device_keys", "e2e_one_time_keys",
                  "pushers", "device_inbox", "e2e_cross_signing_keys", "room_key_backup_versions",
                  "account_data", "push_rules"):
        assert await rows(client, table, "user_id = ?", alice.user_id) == 0, table
    assert await rows(client, "e2e_signatures", "target_user_id = ? OR signer_user_id = ?",
                      alice.user_id, alice.user_id) == 0
    assert await count(client, "room_key_backup_sessions") == 0


async def test_deactivation_without_erase_keeps_profile(client: TestClient,
                                                        register: Any) -> None:
    alice = await register("alice")
    await ok(await client.put(f"{V3}/profile/{alice.user_id}/displayname",
                              json={"displayname": "Alice A."}, headers=alice.auth))
    await ok(await client.post(f"{V3}/account/deactivate", headers=alice.auth, json=auth(alice)))
    resp = await client.get(f"{V3}/profile/{alice.user_id}/displayname")
    assert (await ok(resp))["displayname"] == "Alice A."


async def test_deactivated_appservice_user_cannot_log_in(client: TestClient) -> None:
    from edgehs.api.keys import HS_KEY
    server = client.app[HS_KEY]
    root = await server.users.register("root", PASSWORD, admin=True)
    token, _ = await server.users.login(root, None, None)
    await ok(await client.post("/_matrix/appservice/v1/register", headers={
        "Authorization": f"Bearer {token}"}, json={
        "url": "http://127.0.0.1:9", "as_token": "as-token",
        "namespaces": {"users": [{"regex": "@irc_.*", "exclusive": True}]}}))
    as_auth = {"Authorization": "Bearer as-token"}
    await ok(await client.post(f"{V3}/register", headers=as_auth, json={
        "type": "m.login.application_service", "username": "irc_bob", "inhibit_login": True}))
    body = {"type": "m.login.application_service",
            "identifier": {"type": "m.id.user", "user": "irc_bob"}}
    await ok(await client.post(f"{V3}/login", headers=as_auth, json=body))
    await server.devices.deactivate("@irc_bob:test.local")
    await expect(await client.post(f"{V3}/login", headers=as_auth, json=body),
                 403, "M_USER_DEACTIVATED")
