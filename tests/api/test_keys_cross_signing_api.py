"""Cross-signing: POST /keys/device_signing/upload (with user-interactive authentication when
keys are replaced) and POST /keys/signatures/upload, as /keys/query shows them.

https://spec.matrix.org/v1.19/client-server-api/#cross-signing
"""

import copy
from typing import Any

from aiohttp.test_utils import TestClient
from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json
from spec_schema import MatrixSpec
from support import V3, User, get_sync

XS = ("cross_signing", "POST", "/keys/device_signing/upload")
SIGS = ("cross_signing", "POST", "/keys/signatures/upload")


class Signer:
    """An ed25519 key with key id ``ed25519:<version>`` (its public key unless given)."""

    def __init__(self, version: str | None = None) -> None:
        self.key = generate_signing_key("tmp")
        self.public = encode_verify_key_base64(get_verify_key(self.key))
        self.key.version = version or self.public
        self.key_id = f"ed25519:{self.key.version}"

    def sign(self, obj: dict[str, Any], user_id: str) -> dict[str, Any]:
        return dict(sign_json(copy.deepcopy(obj), user_id, self.key))


def cs_key(user: User, usage: str, key: Signer, master: Signer | None = None
           ) -> dict[str, Any]:
    obj = {"user_id": user.user_id, "usage": [usage], "keys": {key.key_id: key.public}}
    return master.sign(obj, user.user_id) if master else obj


class Identity:
    """A user's device key and cross-signing keys."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.device = Signer(user.device_id)
        self.master, self.ssk, self.usk = Signer(), Signer(), Signer()

    def device_keys(self) -> dict[str, Any]:
        u = self.user
        return self.device.sign({
            "user_id": u.user_id, "device_id": u.device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {self.device.key_id: self.device.public, f"curve25519:{u.device_id}": "c"},
        }, u.user_id)

    def upload_body(self) -> dict[str, Any]:
        return {"master_key": cs_key(self.user, "master", self.master),
                "self_signing_key": cs_key(self.user, "self_signing", self.ssk, self.master),
                "user_signing_key": cs_key(self.user, "user_signing", self.usk, self.master)}


async def post(client: TestClient, user: User, op: tuple[str, str, str], body: Any,
               spec: MatrixSpec, status: int = 200) -> Any:
    resp = await client.post(f"{V3}{op[2]}", json=body, headers=user.auth)
    data = await resp.json()
    assert resp.status == status, data
    spec.check_response(*op, resp.status, data)
    return data


async def query(client: TestClient, user: User, *targets: User) -> dict[str, Any]:
    resp = await client.post(f"{V3}/keys/query", headers=user.auth,
                             json={"device_keys": {t.user_id: [] for t in targets}})
    assert resp.status == 200
    return dict(await resp.json())


async def setup(client: TestClient, register: Any, name: str) -> Identity:
    ident = Identity(await register(name))
    resp = await client.post(f"{V3}/keys/upload", json={"device_keys": ident.device_keys()},
                             headers=ident.user.auth)
    assert resp.status == 200
    return ident


async def test_upload_query_and_uia(client: TestClient, register: Any,
                                    spec: MatrixSpec) -> None:
    alice, bob = await setup(client, register, "alice"), await setup(client, register, "bob")
    since = (await get_sync(client, alice.user))["next_batch"]
    # The first upload needs no user-interactive authentication.
    await post(client, alice.user, XS, alice.upload_body(), spec)
    mine = await query(client, alice.user, alice.user)
    body = alice.upload_body()
    assert mine["master_keys"][alice.user.user_id] == body["master_key"]
    assert mine["self_signing_keys"][alice.user.user_id] == body["self_signing_key"]
    assert mine["user_signing_keys"][alice.user.user_id] == body["user_signing_key"]
    # Others see the master and self-signing keys, never the user-signing key.
    theirs = await query(client, bob.user, alice.user)
    assert alice.user.user_id in theirs["master_keys"]
    assert theirs["user_signing_keys"] == {}
    # The upload is a device-list change for alice herself.
    sync = await get_sync(client, alice.user, since)
    assert sync["device_lists"]["changed"] == [alice.user.user_id]
    # Repeating the same keys needs no authentication either (a lost response retried).
    await post(client, alice.user, XS, alice.upload_body(), spec)
    # Replacing them does: 401 with the password flow, then 200 with the password.
    alice.master = Signer()
    new = alice.upload_body()
    challenge = await post(client, alice.user, XS, new, spec, status=401)
    assert {"stages": ["m.login.password"]} in challenge["flows"]
    wrong = {"type": "m.login.password", "password": "wrong", "session": challenge["session"],
             "identifier": {"type": "m.id.user", "user": alice.user.user_id}}
    await post(client, alice.user, XS, {**new, "auth": wrong}, spec, status=401)
    await post(client, alice.user, XS, {**new, "auth": {**wrong, "password": "secret-pw"}}, spec)
    mine = await query(client, alice.user, alice.user)
    assert mine["master_keys"][alice.user.user_id]["keys"] == {
        alice.master.key_id: alice.master.public}


async def test_device_signing_bad_input(client: TestClient, register: Any,
                                        spec: MatrixSpec) -> None:
    alice = await setup(client, register, "alice")
    user, master = alice.user, alice.master
    unsigned_ssk = cs_key(user, "self_signing", alice.ssk)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"self_signing_key": cs_key(user, "self_signing", alice.ssk, master)}, 400,
         "M_MISSING_PARAM"),
        ({"master_key": cs_key(user, "master", master), "self_signing_key": unsigned_ssk},
         400, "M_INVALID_SIGNATURE"),
        ({"master_key": cs_key(user, "master", master),
          "self_signing_key": cs_key(user, "self_signing", alice.ssk, Signer())},
         400, "M_INVALID_SIGNATURE"),
        ({"master_key": {**cs_key(user, "master", master), "user_id": "@bob:test.local"}},
         400, "M_INVALID_PARAM"),
        ({"master_key": cs_key(user, "self_signing", master)}, 400, "M_INVALID_PARAM"),
        ({"master_key": {**cs_key(user, "master", master),
                         "keys": {master.key_id: master.public, "ed25519:x": "x"}}},
         400, "M_INVALID_PARAM"),
        ({"master_key": {**cs_key(user, "master", master), "keys": {"ed25519:x": "y"}}},
         400, "M_INVALID_PARAM"),
        ({"master_key": "key"}, 400, "M_BAD_JSON"),
        ({"master_key": {"user_id": user.user_id, "usage": "master",
                         "keys": {master.key_id: master.public}}}, 400, "M_BAD_JSON"),
        ({"master_key": {"user_id": user.user_id, "usage": ["master"],
                         "keys": {f"ed25519:{user.device_id}": user.device_id}}},
         403, "M_FORBIDDEN"),
    ]
    for body, status, errcode in cases:
        data = await post(client, user, XS, body, spec, status=status)
        assert data["errcode"] == errcode, (body, data)
    assert (await query(client, user, user))["master_keys"] == {}


async def test_signatures_upload(client: TestClient, register: Any, spec: MatrixSpec) -> None:
    alice, bob = await setup(client, register, "alice"), await setup(client, register, "bob")
    carol = await setup(client, register, "carol")
    for ident in (alice, bob):
        await post(client, ident.user, XS, ident.upload_body(), spec)
    a, b = alice.user.user_id, bob.user.user_id
    bob_master = cs_key(bob.user, "master", bob.master)
    body = {
        # alice's device, signed with her self-signing key
        a: {alice.user.device_id: alice.ssk.sign(alice.device_keys(), a),
            # alice's master key, signed with her device key
            alice.master.public: alice.device.sign(cs_key(alice.user, "master", alice.master),
                                                   a)},
        # bob's master key, signed with alice's user-signing key
        b: {bob.master.public: alice.usk.sign(bob_master, a)},
    }
    data = await post(client, alice.user, SIGS, body, spec)
    assert data["failures"] == {}
    seen_by_alice = await query(client, alice.user, alice.user, bob.user)
    dev = seen_by_alice["device_keys"][a][alice.user.device_id]
    assert alice.ssk.key_id in dev["signatures"][a]
    assert alice.device.key_id in seen_by_alice["master_keys"][a]["signatures"][a]
    assert alice.usk.key_id in seen_by_alice["master_keys"][b]["signatures"][a]
    # alice's signature on bob's master key is hers to see, not carol's.
    seen_by_carol = await query(client, carol.user, alice.user, bob.user)
    assert a not in seen_by_carol["master_keys"][b].get("signatures", {})
    assert alice.ssk.key_id in seen_by_carol["device_keys"][a][alice.user.device_id][
        "signatures"][a]


async def test_signatures_upload_failures(client: TestClient, register: Any,
                                          spec: MatrixSpec) -> None:
    alice, bob = await setup(client, register, "alice"), await setup(client, register, "bob")
    await post(client, alice.user, XS, alice.upload_body(), spec)
    a = alice.user.user_id
    # A signature made by another key, claimed to be the self-signing key's.
    impostor = Signer()
    forged = alice.device_keys()
    forged["signatures"][a][alice.ssk.key_id] = impostor.sign(alice.device_keys(), a)[
        "signatures"][a][impostor.key_id]
    altered = alice.ssk.sign({**alice.device_keys(), "algorithms": ["x"]}, a)
    data = await post(client, alice.user, SIGS, {
        a: {alice.user.device_id: forged, "NOSUCHKEY": alice.ssk.sign({"x": 1}, a)},
        bob.user.user_id: {"nomaster": alice.usk.sign({"x": 1}, a)},
    }, spec)
    failures = data["failures"]
    assert failures[a][alice.user.device_id]["errcode"] == "M_INVALID_SIGNATURE"
    assert failures[a]["NOSUCHKEY"]["errcode"] == "M_NOT_FOUND"
    assert failures[bob.user.user_id]["nomaster"]["errcode"] == "M_NOT_FOUND"
    data = await post(client, alice.user, SIGS, {a: {alice.user.device_id: altered}}, spec)
    assert data["failures"][a][alice.user.device_id]["errcode"] == "M_INVALID_SIGNATURE"
    for body, errcode in [({a: []}, "M_BAD_JSON"), ({a: {"K": "x"}}, "M_BAD_JSON"),
                          ({"alice": {}}, "M_INVALID_PARAM")]:
        err = await post(client, alice.user, SIGS, body, spec, status=400)
        assert err["errcode"] == errcode
    # Nothing above was stored.
    mine = await query(client, alice.user, alice.user)
    assert list(mine["device_keys"][a][alice.user.device_id]["signatures"][a]) == [
        alice.device.key_id]


JUNK: list[Any] = [None, 1, "s", [], {}, [1], {"a": None}, {"a": []}, {"@x:test.local": None},
                   {"@x:test.local": [None]}, {"@x:test.local": {"D": None}},
                   {"@x:test.local": {"D": {"signatures": "x"}}}]


async def test_junk_never_fails_with_500(client: TestClient, register: Any) -> None:
    """Every E2EE endpoint answers junk in any field with a 4xx and an errcode (or a 200 that
    reports per-key failures), never a 500."""
    alice = await setup(client, register, "alice")
    await client.post(f"{V3}/keys/device_signing/upload", json=alice.upload_body(),
                      headers=alice.user.auth)
    fresh = await setup(client, register, "fresh")  # no cross-signing keys: no UIA in the way
    a = alice.user.user_id
    garbage_sig = alice.device_keys()
    garbage_sig["signatures"][a][alice.ssk.key_id] = "!!not base64!!"
    fields = {
        "/keys/upload": ["device_keys", "one_time_keys", "fallback_keys"],
        "/keys/query": ["device_keys", "timeout"],
        "/keys/claim": ["one_time_keys", "timeout"],
        "/keys/device_signing/upload": ["master_key", "self_signing_key", "user_signing_key",
                                        "auth"],
        "/keys/signatures/upload": [a, "@x:test.local"],
    }
    bodies: list[tuple[str, Any]] = []
    for path, names in fields.items():
        bodies += [(path, junk) for junk in JUNK]
        bodies += [(path, {name: junk}) for name in names for junk in JUNK]
    bodies.append(("/keys/signatures/upload", {a: {alice.user.device_id: garbage_sig}}))
    bodies.append(("/keys/device_signing/upload", {
        "master_key": cs_key(fresh.user, "master", fresh.master),
        "self_signing_key": {**cs_key(fresh.user, "self_signing", fresh.ssk),
                             "signatures": {fresh.user.user_id: {fresh.master.key_id: "%%%"}}}}))
    for path, body in bodies:
        who = fresh if path == "/keys/device_signing/upload" else alice
        resp = await client.post(f"{V3}{path}", json=body, headers=who.user.auth)
        data = await resp.json()
        assert resp.status < 500, (path, body, data)
        assert resp.status == 200 or isinstance(data.get("errcode"), str), (path, body, data)
    for junk in JUNK:
        resp = await client.put(f"{V3}/sendToDevice/m.test/t{id(junk)}",
                                json={"messages": junk}, headers=alice.user.auth)
        assert resp.status < 500, (junk, await resp.text())


async def test_unstable_paths_of_before_v1_1(client: TestClient, register: Any) -> None:
    """Clients from before v1.1 upload cross-signing keys under the unstable prefix."""
    alice = await register("alice")
    ident = Identity(alice)
    unstable = "/_matrix/client/unstable/keys"
    resp = await client.post(f"{unstable}/device_signing/upload", json=ident.upload_body(),
                             headers=alice.auth)
    assert resp.status == 200, await resp.text()
    resp = await client.post(f"{V3}/keys/query", json={"device_keys": {alice.user_id: []}},
                             headers=alice.auth)
    assert alice.user_id in (await resp.json())["master_keys"]
    resp = await client.post(f"{unstable}/signatures/upload", json={}, headers=alice.auth)
    assert resp.status == 200, await resp.text()
