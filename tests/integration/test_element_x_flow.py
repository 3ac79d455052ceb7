"""Element X's requests from its login screen to its room list, replayed against edgehs as a
process with realistic bodies (raw HTTP: no Python client speaks sliding sync).

The order is matrix-rust-sdk's (what Element X iOS/Android run on):
1. discovery — ``/.well-known/matrix/client``, ``/versions`` (sliding sync must be advertised,
   else Element X refuses the server), the OAuth 2.0 server metadata (MSC2965: stable
   ``v1/auth_metadata`` and the unstable ``org.matrix.msc2965`` paths, plus the older
   ``auth_issuer``): all 404 ``M_UNRECOGNIZED``, which the SDK reads as "no OIDC, use the
   Matrix login API", then ``GET /login`` for the password flow;
2. ``POST /login``; the restored session checks ``/account/whoami``, refetches ``/versions``
   authenticated, reads ``/capabilities``, ``/pushrules/``, its profile, the media config;
3. the crypto machine's first requests: ``/keys/upload`` (device keys, one-time and fallback
   keys), ``/keys/query`` for itself, the recovery state (``/room_keys/version`` and the
   secret-storage account data: 404 ``M_NOT_FOUND`` when absent), cross-signing bootstrap
   (``/keys/device_signing/upload`` without user-interactive auth for a first upload, then
   ``/keys/signatures/upload``), a new key backup (``POST /room_keys/version``);
4. the push registration (``/pushers/set``, ``/pushers``), ``/thirdparty/protocols`` and the
   notification settings screen's push rule changes (actions, enabled, a room mute rule);
5. the two sliding sync connections (``encryption`` and ``room-list``) showing the rooms.
Every answer is checked against the spec's schema where the spec defines the endpoint.
https://spec.matrix.org/v1.19/client-server-api/
"""

from typing import Any

import aiohttp
import pytest
import signedjson.key
import signedjson.sign
import unpaddedbase64
from spec_schema import MatrixSpec

pytestmark = pytest.mark.integration

V3 = "/_matrix/client/v3"
V1 = "/_matrix/client/v1"
SS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
PASSWORD = "element x household password"
Json = dict[str, Any]

AUTH_METADATA_PATHS = (
    "/_matrix/client/v1/auth_metadata",
    "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata",
    "/_matrix/client/unstable/org.matrix.msc2965/auth_issuer",
)


class Session:
    """One HTTP client with an optional access token; every call returns (status, body)."""

    def __init__(self, http: aiohttp.ClientSession, spec: MatrixSpec) -> None:
        self.http = http
        self.spec = spec
        self.headers: dict[str, str] = {}

    async def call(self, method: str, path: str, body: Json | None = None,
                   params: dict[str, str] | None = None) -> tuple[int, Json]:
        resp = await self.http.request(method, path, json=body, params=params,
                                       headers=self.headers)
        assert resp.status != 500, await resp.text()
        return resp.status, dict(await resp.json())

    async def ok(self, method: str, path: str, body: Json | None = None, *,
                 spec: tuple[str, str] | None = None,
                 params: dict[str, str] | None = None) -> Json:
        """A 200, checked against the spec operation ``spec`` = (api file, spec path)."""
        status, got = await self.call(method, path, body, params)
        assert status == 200, f"{method} {path}: {status} {got}"
        if spec is not None:
            self.spec.check_response(spec[0], method, spec[1], 200, got)
        return got

    async def error(self, method: str, path: str, status: int, errcode: str,
                    body: Json | None = None) -> Json:
        got_status, got = await self.call(method, path, body)
        assert (got_status, got.get("errcode")) == (status, errcode), f"{path}: {got}"
        assert isinstance(got.get("error"), str), got
        return got


def signing_key(key_name: str | None = None) -> tuple[Any, str]:
    """An ed25519 key and its public half; signatures name it ``ed25519:KEY_NAME`` (cross-
    signing keys are named by their public key, the default)."""
    key = signedjson.key.generate_signing_key("new")
    public = unpaddedbase64.encode_base64(key.verify_key.encode())
    named = signedjson.key.decode_signing_key_base64(
        "ed25519", key_name or public, signedjson.key.encode_signing_key_base64(key))
    return named, public


def device_keys_body(user_id: str, device_id: str) -> Json:
    """What the Rust crypto machine uploads first: signed device keys, OTKs, a fallback key."""
    key, public = signing_key(device_id)
    curve = unpaddedbase64.encode_base64(bytes(range(32)))
    device = signedjson.sign.sign_json({
        "user_id": user_id, "device_id": device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {f"curve25519:{device_id}": curve, f"ed25519:{device_id}": public},
    }, user_id, key)

    def signed_curve(n: int) -> Json:
        return signedjson.sign.sign_json(
            {"key": unpaddedbase64.encode_base64(bytes([n]) * 32)}, user_id, key)

    return {
        "device_keys": device,
        "one_time_keys": {f"signed_curve25519:AAAAA{n}": signed_curve(n) for n in range(5)},
        "fallback_keys": {"signed_curve25519:AAAAFB": {**signed_curve(99), "fallback": True}},
        "_device_key": key,
    }


def cross_signing_keys(user_id: str) -> tuple[Json, Any]:
    """Master, self-signing and user-signing keys, the last two signed by the master key."""
    master, master_pub = signing_key()
    body: Json = {"master_key": {"user_id": user_id, "usage": ["master"],
                                 "keys": {f"ed25519:{master_pub}": master_pub}}}
    ssk, ssk_pub = signing_key()
    for field, usage, pub in (("self_signing_key", "self_signing", ssk_pub),
                              ("user_signing_key", "user_signing", signing_key()[1])):
        body[field] = signedjson.sign.sign_json(
            {"user_id": user_id, "usage": [usage], "keys": {f"ed25519:{pub}": pub}},
            user_id, master)
    return body, ssk


async def test_element_x_login_to_room_list(http: aiohttp.ClientSession) -> None:
    spec = MatrixSpec.load()
    ex = Session(http, spec)

    # Another household member has a room waiting for the new Element X user.
    mum = Session(http, spec)
    reg = await mum.ok("POST", f"{V3}/register", {"username": "mum", "password": PASSWORD,
                                                  "auth": {"type": "m.login.dummy"}})
    mum.headers = {"Authorization": f"Bearer {reg['access_token']}"}
    await ex.ok("POST", f"{V3}/register", {"username": "xavier", "password": PASSWORD,
                                           "auth": {"type": "m.login.dummy"},
                                           "inhibit_login": True})
    user_id = "@xavier:test.local"
    created = await mum.ok("POST", f"{V3}/createRoom", {"name": "Family", "invite": [user_id],
                                                        "preset": "private_chat"})
    room_id = created["room_id"]

    # 1. Discovery, before any login.
    well_known = await ex.ok("GET", "/.well-known/matrix/client",
                             spec=("wellknown", "/matrix/client"))
    assert well_known["m.homeserver"]["base_url"].startswith("http")
    versions = await ex.ok("GET", "/_matrix/client/versions", spec=("versions", "/versions"))
    assert versions["unstable_features"]["org.matrix.simplified_msc3575"] is True
    assert "v1.11" in versions["versions"]  # authenticated media: the SDK uses v1/media
    for path in AUTH_METADATA_PATHS:
        await ex.error("GET", path, 404, "M_UNRECOGNIZED")
    flows = await ex.ok("GET", f"{V3}/login", spec=("login", "/login"))
    assert {"type": "m.login.password"} in [{"type": f["type"]} for f in flows["flows"]]

    # 2. Login and the restored session's first checks.
    login = await ex.ok("POST", f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "xavier"},
        "password": PASSWORD, "initial_device_display_name": "Element X iOS"},
        spec=("login", "/login"))
    device_id = login["device_id"]
    ex.headers = {"Authorization": f"Bearer {login['access_token']}"}
    whoami = await ex.ok("GET", f"{V3}/account/whoami", spec=("whoami", "/account/whoami"))
    assert (whoami["user_id"], whoami["device_id"]) == (user_id, device_id)
    await ex.ok("GET", "/_matrix/client/versions", spec=("versions", "/versions"))
    caps = await ex.ok("GET", f"{V3}/capabilities", spec=("capabilities", "/capabilities"))
    assert "12" in caps["capabilities"]["m.room_versions"]["available"]
    rules = await ex.ok("GET", f"{V3}/pushrules/", spec=("pushrules", "/pushrules/"))
    assert rules["global"]["override"][0]["rule_id"] == ".m.rule.master"
    profile = await ex.ok("GET", f"{V3}/profile/{user_id}")
    assert profile["displayname"] == "xavier"
    media = await ex.ok("GET", f"{V1}/media/config",
                        spec=("authed-content-repo", "/media/config"))
    assert media["m.upload.size"] > 0

    # 3. The crypto machine: keys, own identity, recovery state, cross-signing, backup.
    upload = device_keys_body(user_id, device_id)
    device_key = upload.pop("_device_key")
    counts = await ex.ok("POST", f"{V3}/keys/upload", upload, spec=("keys", "/keys/upload"))
    assert counts["one_time_key_counts"]["signed_curve25519"] == 5
    query = await ex.ok("POST", f"{V3}/keys/query", {"device_keys": {user_id: []}},
                        spec=("keys", "/keys/query"))
    assert list(query["device_keys"][user_id]) == [device_id]
    await ex.error("GET", f"{V3}/room_keys/version", 404, "M_NOT_FOUND")
    for kind in ("m.secret_storage.default_key", "m.org.matrix.custom.backup_disabled",
                 "m.cross_signing.master"):
        await ex.error("GET", f"{V3}/user/{user_id}/account_data/{kind}", 404, "M_NOT_FOUND")
    cross, ssk = cross_signing_keys(user_id)
    await ex.ok("POST", f"{V3}/keys/device_signing/upload", cross,
                spec=("cross_signing", "/keys/device_signing/upload"))
    ssk_pub = next(iter(cross["self_signing_key"]["keys"].values()))
    own_device = dict(query["device_keys"][user_id][device_id])
    own_device.pop("unsigned", None)
    signed_device = signedjson.sign.sign_json(
        {k: v for k, v in own_device.items() if k != "signatures"}, user_id, ssk)
    sig_upload = await ex.ok("POST", f"{V3}/keys/signatures/upload", {user_id: {device_id: {
        **own_device, "signatures": {user_id: {
            **own_device["signatures"][user_id],
            f"ed25519:{ssk_pub}": signed_device["signatures"][user_id][f"ed25519:{ssk_pub}"],
        }}}}}, spec=("cross_signing", "/keys/signatures/upload"))
    assert sig_upload["failures"] == {}
    identity = await ex.ok("POST", f"{V3}/keys/query", {"device_keys": {user_id: []}})
    assert identity["master_keys"][user_id]["usage"] == ["master"]
    assert f"ed25519:{ssk_pub}" in \
        identity["device_keys"][user_id][device_id]["signatures"][user_id]
    backup_key = unpaddedbase64.encode_base64(bytes(range(1, 33)))
    auth_data = signedjson.sign.sign_json({"public_key": backup_key}, user_id, device_key)
    created_backup = await ex.ok("POST", f"{V3}/room_keys/version", {
        "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": auth_data},
        spec=("key_backup", "/room_keys/version"))
    current = await ex.ok("GET", f"{V3}/room_keys/version",
                          spec=("key_backup", "/room_keys/version"))
    assert current["version"] == created_backup["version"]
    await ex.ok("PUT", f"{V3}/user/{user_id}/account_data/m.org.matrix.custom.backup_disabled",
                {"disabled": False})

    # 4. Push registration (Sygnal, event_id_only as Element X sends) and third-party lookup.
    await ex.ok("POST", f"{V3}/pushers/set", {
        "kind": "http", "app_id": "io.element.elementx.ios", "pushkey": "apns-token-1",
        "app_display_name": "Element X", "device_display_name": "Xavier's iPhone",
        "lang": "en", "append": False,
        "data": {"url": "https://sygnal.example.org/_matrix/push/v1/notify",
                 "format": "event_id_only",
                 "default_payload": {"aps": {"mutable-content": 1}}}},
        spec=("pusher", "/pushers/set"))
    pushers = await ex.ok("GET", f"{V3}/pushers", spec=("pusher", "/pushers"))
    assert [p["app_id"] for p in pushers["pushers"]] == ["io.element.elementx.ios"]
    assert await ex.ok("GET", f"{V3}/thirdparty/protocols") == {}
    # Element X's notification settings: aligns the one-to-one rules' actions, toggles a
    # default rule, and mutes a room with a room-id override rule.
    rules_base = f"{V3}/pushrules/global"
    await ex.ok("PUT", f"{rules_base}/underride/.m.rule.encrypted_room_one_to_one/actions",
                {"actions": ["notify", {"set_tweak": "sound", "value": "default"}]})
    await ex.ok("PUT", f"{rules_base}/override/.m.rule.is_room_mention/enabled",
                {"enabled": True})
    await ex.ok("PUT", f"{rules_base}/override/{room_id}", {
        "actions": [], "conditions": [{"kind": "event_match", "key": "room_id",
                                       "pattern": room_id}]})
    muted = await ex.ok("GET", f"{rules_base}/override/{room_id}",
                        spec=("pushrules", "/pushrules/global/{kind}/{ruleId}"))
    assert muted["actions"] == [] and muted["enabled"] is True
    await ex.error("PUT", f"{rules_base}/override/.m.rule.nonexistent/enabled", 404,
                   "M_NOT_FOUND", {"enabled": False})

    # 5. Sliding sync: the encryption connection, then the room list with the invite; the
    # user accepts it and the list shows the joined room with its name and last message.
    enc = await ex.ok("POST", SS, {"conn_id": "encryption", "extensions": {
        "to_device": {"enabled": True}, "e2ee": {"enabled": True}}}, params={"timeout": "0"})
    assert enc["extensions"]["e2ee"]["device_one_time_keys_count"]["signed_curve25519"] == 5
    assert enc["extensions"]["e2ee"]["device_unused_fallback_key_types"] == ["signed_curve25519"]
    room_list = {
        "conn_id": "room-list",
        "lists": {"all_rooms": {
            "ranges": [[0, 19]], "timeline_limit": 1,
            "required_state": [["m.room.encryption", ""], ["m.room.member", "$LAZY"],
                               ["m.room.member", "$ME"], ["m.room.name", ""],
                               ["m.room.avatar", ""], ["m.room.create", ""],
                               ["m.room.power_levels", ""], ["m.room.join_rules", ""],
                               ["m.room.tombstone", ""], ["m.space.parent", "*"]],
            "filters": {"not_room_types": ["m.space"]}}},
        "extensions": {"account_data": {"enabled": True}, "typing": {"enabled": True},
                       "receipts": {"enabled": True, "rooms": ["*"]}},
    }
    first = await ex.ok("POST", SS, room_list, params={"timeout": "0"})
    assert first["lists"]["all_rooms"]["count"] == 1
    assert "invite_state" in first["rooms"][room_id]
    await ex.ok("POST", f"{V3}/join/{room_id}", {})
    await mum.ok("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/t1",
                 {"msgtype": "m.text", "body": "welcome to edgehs"})
    second = await ex.ok("POST", SS, room_list, params={"timeout": "0", "pos": first["pos"]})
    room = second["rooms"][room_id]
    assert room["name"] == "Family"
    assert room["timeline"][-1]["content"]["body"] == "welcome to edgehs"
    assert "m.push_rules" in {e["type"] for e in
                              first["extensions"]["account_data"]["global"]}
