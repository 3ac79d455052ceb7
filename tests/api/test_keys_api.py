"""End-to-end encryption keys: upload, query, claim, changes, device lists and one-time key counts
in /sync, cross-signing keys and signatures. Keys are real ed25519 keys signed with signedjson.

https://spec.matrix.org/v1.19/client-server-api/#end-to-end-encryption
https://spec.matrix.org/v1.19/client-server-api/#cross-signing
"""

import asyncio
import copy
from typing import Any

from aiohttp.test_utils import TestClient
from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json
from spec_schema import MatrixSpec
from support import V3, User, count, expect, get_sync, parked

KEYS = "keys"
XS = "cross_signing"


class Signer:
    """An ed25519 key whose key id is ``ed25519:<version>`` (a device id, or its public key for
    cross-signing keys)."""

    def __init__(self, version: str | None = None) -> None:
        self.key = generate_signing_key("tmp")
        self.public = encode_verify_key_base64(get_verify_key(self.key))
        self.key.version = version or self.public

    def sign(self, obj: dict[str, Any], user_id: str) -> dict[str, Any]:
        return dict(sign_json(copy.deepcopy(obj), user_id, self.key))


def device_keys(user: User, signer: Signer) -> dict[str, Any]:
    return signer.sign({
        "user_id": user.user_id, "device_id": user.device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {f"ed25519:{user.device_id}": signer.public,
                 f"curve25519:{user.device_id}": "curve+" + user.device_id},
    }, user.user_id)


def one_time_keys(user: User, signer: Signer, ids: list[str],
                  fallback: bool = False) -> dict[str, Any]:
    out = {}
    for key_id in ids:
        key: dict[str, Any] = {"key": f"otk-{key_id}"}
        if fallback:
            key["fallback"] = True
        out[f"signed_curve25519:{key_id}"] = signer.sign(key, user.user_id)
    return out


async def post(client: TestClient, user: User | None, path: str, body: Any,
               spec: MatrixSpec | None = None, api: str = KEYS, status: int = 200) -> Any:
    headers = user.auth if user else {}
    kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
    resp = await client.post(f"{V3}{path}", headers=headers, **kwargs)
    data = await resp.json()
    assert resp.status == status, data
    if spec is not None:
        spec.check_response(api, "POST", path, resp.status, data)
    return data


async def upload(client: TestClient, user: User, spec: MatrixSpec | None = None,
                 **body: Any) -> dict[str, int]:
    data = await post(client, user, "/keys/upload", body, spec)
    return dict(data["one_time_key_counts"])


async def shared_room(client: TestClient, create_room: Any, a: User, b: User) -> str:
    room = await create_room(a, preset="public_chat")
    resp = await client.post(f"{V3}/join/{room}", json={}, headers=b.auth)
    assert resp.status == 200
    return str(room)


# --- upload / query ---------------------------------------------------------------------------

async def test_upload_and_query(client: TestClient, register: Any, spec: MatrixSpec) -> None:
    alice, bob = await register("alice"), await register("bob")
    resp = await client.put(f"{V3}/devices/{alice.device_id}", json={"display_name": "Phone"},
                            headers=alice.auth)
    assert resp.status == 200
    signer = Signer(alice.device_id)
    keys = device_keys(alice, signer)
    counts = await upload(client, alice, spec, device_keys=keys,
                          one_time_keys=one_time_keys(alice, signer, ["A", "B"]))
    assert counts == {"signed_curve25519": 2}
    # Uploading the same one-time key again is harmless; nothing at all still answers counts.
    assert await upload(client, alice, spec, one_time_keys=one_time_keys(
        alice, signer, ["A"])) == {"signed_curve25519": 2}
    assert await upload(client, alice, spec) == {"signed_curve25519": 2}
    found = await post(client, bob, "/keys/query", {"device_keys": {alice.user_id: []}}, spec)
    got = found["device_keys"][alice.user_id][alice.device_id]
    assert {k: v for k, v in got.items() if k != "unsigned"} == keys
    assert got["unsigned"] == {"device_display_name": "Phone"}
    # Asking for one device, an unknown device, an unknown user.
    found = await post(client, bob, "/keys/query", {"device_keys": {
        alice.user_id: ["NOPE"], "@ghost:test.local": []}}, spec)
    assert found["device_keys"] == {alice.user_id: {}, "@ghost:test.local": {}}
    found = await post(client, bob, "/keys/query", {"device_keys": {
        "@someone:elsewhere.example": []}}, spec)
    assert "elsewhere.example" in found["failures"]


async def test_upload_bad_input(client: TestClient, register: Any, spec: MatrixSpec) -> None:
    alice, bob = await register("alice"), await register("bob")
    signer = Signer(alice.device_id)
    good = device_keys(alice, signer)

    async def bad(body: Any, status: int, errcode: str) -> None:
        data = await post(client, alice, "/keys/upload", body, status=status)
        assert data["errcode"] == errcode, data
        spec.check_response(KEYS, "POST", "/keys/upload", status, data)

    await bad(b"{nope", 400, "M_NOT_JSON")
    await bad({"device_keys": "x"}, 400, "M_BAD_JSON")
    await bad({"device_keys": {**good, "user_id": bob.user_id}}, 400, "M_INVALID_PARAM")
    await bad({"device_keys": {**good, "device_id": "OTHER"}}, 400, "M_INVALID_PARAM")
    await bad({"device_keys": {k: v for k, v in good.items() if k != "algorithms"}}, 400,
              "M_BAD_JSON")
    await bad({"device_keys": {**good, "signatures": {alice.user_id: "sig"}}}, 400,
              "M_BAD_JSON")
    await bad({"device_keys": {**good, "signatures": {}}}, 400, "M_INVALID_PARAM")
    await bad({"device_keys": {**good, "keys": {"ed25519:OTHER": "x"}}}, 400,
              "M_INVALID_PARAM")
    await bad({"one_time_keys": {"signed_curve25519": {"key": "k", "signatures": {}}}}, 400,
              "M_INVALID_PARAM")
    await bad({"one_time_keys": {"curve25519:A": 5}}, 400, "M_BAD_JSON")
    await bad({"one_time_keys": {"signed_curve25519:A": {"key": "k"}}}, 400, "M_BAD_JSON")
    await bad({"one_time_keys": []}, 400, "M_BAD_JSON")
    await bad({"fallback_keys": {**one_time_keys(alice, signer, ["F1"], True),
                                 **one_time_keys(alice, signer, ["F2"], True)}},
              400, "M_INVALID_PARAM")
    await upload(client, alice, one_time_keys={"curve25519:X": "one"})
    await bad({"one_time_keys": {"curve25519:X": "another"}}, 400, "M_INVALID_PARAM")
    resp = await client.post(f"{V3}/keys/upload", json={})
    await expect(resp, 401, "M_MISSING_TOKEN")
    # Nothing of a refused upload was stored.
    assert await count(client, "e2e_device_keys") == 0


async def test_query_bad_input(client: TestClient, register: Any, spec: MatrixSpec) -> None:
    alice = await register("alice")
    for body, errcode in [({}, "M_MISSING_PARAM"), ({"device_keys": []}, "M_BAD_JSON"),
                          ({"device_keys": {alice.user_id: {}}}, "M_BAD_JSON"),
                          ({"device_keys": {alice.user_id: [1]}}, "M_BAD_JSON"),
                          ({"device_keys": {"alice": []}}, "M_INVALID_PARAM")]:
        data = await post(client, alice, "/keys/query", body, status=400)
        assert data["errcode"] == errcode, (body, data)
        spec.check_response(KEYS, "POST", "/keys/query", 400, data)


# --- claim ------------------------------------------------------------------------------------

async def test_claim_one_time_then_fallback(client: TestClient, register: Any,
                                            spec: MatrixSpec) -> None:
    alice, bob = await register("alice"), await register("bob")
    signer = Signer(alice.device_id)
    otks = one_time_keys(alice, signer, ["A1"])
    fallback = one_time_keys(alice, signer, ["F1"], fallback=True)
    await upload(client, alice, device_keys=device_keys(alice, signer), one_time_keys=otks,
                 fallback_keys=fallback)
    await upload(client, alice, one_time_keys=one_time_keys(alice, signer, ["A2"]))
    sync = await get_sync(client, alice)
    spec.check_response("sync", "GET", "/sync", 200, sync)
    assert sync["device_one_time_keys_count"] == {"signed_curve25519": 2}
    assert sync["device_unused_fallback_key_types"] == ["signed_curve25519"]
    want = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}
    claimed = []
    for _ in range(4):
        data = await post(client, bob, "/keys/claim", want, spec)
        [(key_id, key)] = data["one_time_keys"][alice.user_id][alice.device_id].items()
        claimed.append(key_id)
    # Oldest upload first, each one-time key once, then the fallback key (again and again).
    assert claimed == ["signed_curve25519:A1", "signed_curve25519:A2",
                       "signed_curve25519:F1", "signed_curve25519:F1"]
    assert key == fallback["signed_curve25519:F1"]
    sync = await get_sync(client, alice)
    assert sync["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert sync["device_unused_fallback_key_types"] == []
    # A new fallback key is unused again.
    await upload(client, alice, fallback_keys=one_time_keys(alice, signer, ["F2"], True))
    assert (await get_sync(client, alice))["device_unused_fallback_key_types"] == [
        "signed_curve25519"]
    # Devices without keys, unknown devices and other algorithms give nothing.
    data = await post(client, bob, "/keys/claim", {"one_time_keys": {
        alice.user_id: {alice.device_id: "curve25519", "NOPE": "signed_curve25519"},
        bob.user_id: {bob.device_id: "signed_curve25519"},
        "@x:elsewhere.example": {"D": "signed_curve25519"}}}, spec)
    assert data["one_time_keys"] == {}
    assert "elsewhere.example" in data["failures"]


async def test_claim_bad_input(client: TestClient, register: Any, spec: MatrixSpec) -> None:
    alice = await register("alice")
    for body, errcode in [({}, "M_MISSING_PARAM"), ({"one_time_keys": []}, "M_BAD_JSON"),
                          ({"one_time_keys": {alice.user_id: []}}, "M_BAD_JSON"),
                          ({"one_time_keys": {alice.user_id: {"D": 1}}}, "M_BAD_JSON"),
                          ({"one_time_keys": {"x": {}}}, "M_INVALID_PARAM")]:
        data = await post(client, alice, "/keys/claim", body, status=400)
        assert data["errcode"] == errcode, (body, data)
        spec.check_response(KEYS, "POST", "/keys/claim", 400, data)
    await expect(await client.post(f"{V3}/keys/claim", data=b"[", headers=alice.auth),
                 400, "M_NOT_JSON")


# --- device lists -----------------------------------------------------------------------------

async def test_device_lists_in_sync_and_changes(client: TestClient, register: Any,
                                                create_room: Any, spec: MatrixSpec) -> None:
    alice, bob, carol = await register("alice"), await register("bob"), await register("carol")
    room = await shared_room(client, create_room, alice, bob)
    since = (await get_sync(client, alice))["next_batch"]
    # carol shares no room with alice: her keys are none of alice's business.
    await upload(client, carol, device_keys=device_keys(carol, Signer(carol.device_id)))
    await upload(client, bob, device_keys=device_keys(bob, Signer(bob.device_id)))
    sync = await get_sync(client, alice, since)
    spec.check_response("sync", "GET", "/sync", 200, sync)
    assert sync["device_lists"] == {"changed": [bob.user_id], "left": []}
    resp = await client.get(f"{V3}/keys/changes", params={"from": since,
                                                          "to": sync["next_batch"]},
                            headers=alice.auth)
    body = await resp.json()
    spec.check_response(KEYS, "GET", "/keys/changes", resp.status, body)
    assert body == {"changed": [bob.user_id], "left": []}
    # Nothing new: nothing changed.
    sync = await get_sync(client, alice, sync["next_batch"])
    assert sync["device_lists"] == {"changed": [], "left": []}
    # carol joins: she now shares a room, alice must fetch her keys.
    resp = await client.post(f"{V3}/join/{room}", json={}, headers=carol.auth)
    assert resp.status == 200
    sync = await get_sync(client, alice, sync["next_batch"])
    assert sync["device_lists"]["changed"] == [carol.user_id]
    # bob leaves the last room he shared with alice.
    resp = await client.post(f"{V3}/rooms/{room}/leave", json={}, headers=bob.auth)
    assert resp.status == 200
    sync = await get_sync(client, alice, sync["next_batch"])
    assert sync["device_lists"] == {"changed": [], "left": [bob.user_id]}
    # And bob, who left, sees alice and carol go.
    bob_sync = await get_sync(client, bob, since)
    assert bob_sync["device_lists"]["left"] == sorted([alice.user_id, carol.user_id])


async def test_own_device_change_and_long_poll(client: TestClient, register: Any,
                                               create_room: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    await shared_room(client, create_room, alice, bob)
    since = (await get_sync(client, alice))["next_batch"]
    waiting = asyncio.create_task(get_sync(client, alice, since, timeout=10000))
    await parked(client)
    await upload(client, bob, device_keys=device_keys(bob, Signer(bob.device_id)))
    sync = await asyncio.wait_for(waiting, 10)
    assert sync["device_lists"]["changed"] == [bob.user_id]
    await upload(client, alice, device_keys=device_keys(alice, Signer(alice.device_id)))
    sync = await get_sync(client, alice, sync["next_batch"])
    assert sync["device_lists"]["changed"] == [alice.user_id]


async def test_changes_bad_input(client: TestClient, register: Any, spec: MatrixSpec) -> None:
    alice = await register("alice")
    for params, errcode in [({}, "M_MISSING_PARAM"), ({"from": "garbage"}, "M_INVALID_PARAM"),
                            ({"from": "s1_0", "to": "x"}, "M_INVALID_PARAM")]:
        resp = await client.get(f"{V3}/keys/changes", params=params, headers=alice.auth)
        body = await expect(resp, 400, errcode)
        spec.check_response(KEYS, "GET", "/keys/changes", 400, body)


async def test_deleted_device_loses_its_keys(client: TestClient, register: Any) -> None:
    alice = await register("alice")
    signer = Signer(alice.device_id)
    await upload(client, alice, device_keys=device_keys(alice, signer),
                 one_time_keys=one_time_keys(alice, signer, ["A"]))
    resp = await client.post(f"{V3}/logout", headers=alice.auth)
    assert resp.status == 200
    assert await count(client, "e2e_device_keys") == 0
    assert await count(client, "e2e_one_time_keys") == 0
