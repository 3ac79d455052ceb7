"""Every response of the modules that exist is checked against the spec's own schema.

Each call names the spec file and the operation (path template + method) it implements; the
body is validated with ``spec_schema`` against the schema the spec gives for the status code
(200s and the main error statuses), and 2xx bodies may not carry undeclared top-level keys.
Events are also checked in the client format and against ``event-schemas/schema/<type>.yaml``.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec, SpecError, find_spec_data

V3 = "/_matrix/client/v3"
Register = Callable[..., Awaitable[Any]]
CreateRoom = Callable[..., Awaitable[str]]


@pytest.fixture
def call(client: TestClient, spec: MatrixSpec) -> Callable[..., Awaitable[Any]]:
    """``call(spec_file, METHOD, spec_path, status, params, user=, json=, query=)``: do the
    request, assert the status (and errcode), validate the body against the spec's schema of
    that operation and status, and return it. ``url`` overrides the path filled from
    ``spec_path``."""
    async def _call(api_file: str, method: str, path: str, status: int,
                    params: dict[str, str] | None = None, *, user: Any = None,
                    json: Any = None, query: dict[str, str] | None = None,
                    prefix: str = V3, errcode: str | None = None, url: str | None = None
                    ) -> Any:
        url = prefix + (url or path.format(**{k: quote(v, safe="")
                                               for k, v in (params or {}).items()}))
        headers = user.auth if user is not None else {}
        resp = await client.request(method, url, json=json, params=query, headers=headers)
        body = await resp.json()
        assert resp.status == status, (method, url, body)
        if errcode is not None:
            assert body["errcode"] == errcode, body
        spec.check_response(api_file, method, path, resp.status, body)
        return body
    return _call


@dataclass
class Session:
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def room_with_message(register: Register, create_room: CreateRoom, client: TestClient
                            ) -> tuple[Any, str, str]:
    alice = await register("alice")
    room_id = await create_room(alice, name="Hall", topic="chat")
    resp = await client.put(f"{V3}/rooms/{room_id}/send/m.room.message/t1", headers=alice.auth,
                            json={"msgtype": "m.text", "body": "hello"})
    assert resp.status == 200
    return alice, room_id, (await resp.json())["event_id"]


# --- the helper itself -------------------------------------------------------------------------


def test_spec_helper_rejects_wrong_bodies(spec: MatrixSpec) -> None:
    path = "/rooms/{roomId}/send/{eventType}/{txnId}"
    spec.check_response("room_send", "PUT", path, 200, {"event_id": "$abc"})
    with pytest.raises(SpecError, match="does not match"):
        spec.check_response("room_send", "PUT", path, 200, {"event_id": "abc"})
    with pytest.raises(SpecError, match=r"not in room_send\.yaml"):
        spec.check_response("room_send", "PUT", path, 200, {"event_id": "$abc", "extra": 1})
    with pytest.raises(SpecError, match="errcode"):
        spec.check_response("room_send", "PUT", path, 400, {"error": "no errcode"})
    with pytest.raises(SpecError, match="retry_after_ms"):
        spec.check_response("capabilities", "GET", "/capabilities", 429,
                            {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": "soon"})
    with pytest.raises(SpecError, match="does not document a 201"):
        spec.check_response("room_send", "PUT", path, 201, {})
    with pytest.raises(SpecError, match="has no path"):
        spec.check_response("room_send", "PUT", "/nope", 200, {})
    with pytest.raises(SpecError, match="body"):
        spec.check_event({"type": "m.room.message", "event_id": "$e", "sender": "@a:b",
                          "origin_server_ts": 1, "room_id": "!r:b",
                          "content": {"msgtype": "m.text"}})
    with pytest.raises(SpecError, match="room_id"):
        spec.check_event({"type": "m.room.message", "event_id": "$e", "sender": "@a:b",
                          "origin_server_ts": 1, "content": {"msgtype": "m.text", "body": ""}})
    spec.check_event({"type": "m.room.message", "event_id": "$e", "sender": "@a:b",
                      "origin_server_ts": 1, "content": {"msgtype": "m.text", "body": ""}},
                     with_room_id=False)


def test_spec_folder_is_found_beside_the_checkout(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEHS_SPEC_DATA", raising=False)
    repo = tmp_path / "ci-clone"
    (repo / "tests").mkdir(parents=True)
    (repo / "pyproject.toml").write_text("")
    with pytest.raises(FileNotFoundError, match="shared/matrix-spec/data"):
        find_spec_data(repo / "tests" / "spec_schema.py")
    data = tmp_path / "shared" / "matrix-spec" / "data"
    (data / "api" / "client-server").mkdir(parents=True)
    assert find_spec_data(repo / "tests" / "spec_schema.py") == data


# --- discovery ------------------------------------------------------------------------------------


async def test_versions_well_known_capabilities(call: Any, register: Register) -> None:
    body = await call("versions", "GET", "/versions", 200, prefix="/_matrix/client")
    assert "v1.1" in body["versions"]
    await call("wellknown", "GET", "/matrix/client", 200, prefix="/.well-known")
    alice = await register("alice")
    caps = await call("capabilities", "GET", "/capabilities", 200, user=alice)
    assert caps["capabilities"]["m.room_versions"]["default"]
    await call("capabilities", "GET", "/capabilities", 401, errcode="M_MISSING_TOKEN")


# --- registration, login, account -------------------------------------------------------------


async def test_register_and_availability(call: Any, register: Register) -> None:
    body = await call("registration", "POST", "/register", 200, json={
        "username": "carol", "password": "pw", "auth": {"type": "m.login.dummy"},
    })
    assert body["user_id"] == "@carol:test.local" and body["access_token"]
    body = await call("registration", "POST", "/register", 200, json={
        "username": "dave", "password": "pw", "inhibit_login": True,
        "auth": {"type": "m.login.dummy"},
    })
    assert "access_token" not in body
    challenge = await call("registration", "POST", "/register", 401,
                           json={"username": "erin", "password": "pw"})
    assert challenge["flows"] == [{"stages": ["m.login.dummy"]}]
    await call("registration", "POST", "/register", 400, errcode="M_USER_IN_USE",
               json={"username": "carol", "password": "pw", "auth": {"type": "m.login.dummy"}})
    await call("registration", "POST", "/register", 403, query={"kind": "guest"},
               errcode="M_GUEST_ACCESS_FORBIDDEN", json={})
    await call("registration", "GET", "/register/available", 200, query={"username": "zed"})
    await call("registration", "GET", "/register/available", 400, query={"username": "carol"},
               errcode="M_USER_IN_USE")


async def test_login_logout(call: Any, register: Register) -> None:
    await register("alice")
    flows = await call("login", "GET", "/login", 200)
    assert {"type": "m.login.password"} in flows["flows"]
    body = await call("login", "POST", "/login", 200, json={
        "type": "m.login.password", "password": "secret-pw",
        "identifier": {"type": "m.id.user", "user": "alice"},
    })
    await call("login", "POST", "/login", 403, errcode="M_FORBIDDEN", json={
        "type": "m.login.password", "password": "wrong",
        "identifier": {"type": "m.id.user", "user": "alice"},
    })
    await call("login", "POST", "/login", 400, errcode="M_UNKNOWN",
               json={"type": "m.login.sso"})
    session = Session(body["access_token"])
    await call("logout", "POST", "/logout", 200, user=session)
    await call("whoami", "GET", "/account/whoami", 401, user=session, errcode="M_UNKNOWN_TOKEN")
    other = await register("bob")
    await call("logout", "POST", "/logout/all", 200, user=other)


async def test_whoami_password_deactivate(call: Any, register: Register) -> None:
    alice = await register("alice")
    me = await call("whoami", "GET", "/account/whoami", 200, user=alice)
    assert me["user_id"] == alice.user_id and me["device_id"] == alice.device_id
    await call("whoami", "GET", "/account/whoami", 401, errcode="M_MISSING_TOKEN")
    challenge = await call("password_management", "POST", "/account/password", 401, user=alice,
                           json={"new_password": "next"})
    assert challenge["flows"] == [{"stages": ["m.login.password"]}]
    await call("password_management", "POST", "/account/password", 200, user=alice, json={
        "new_password": "next", "logout_devices": False,
        "auth": {"type": "m.login.password", "password": "secret-pw",
                 "identifier": {"type": "m.id.user", "user": alice.user_id}},
    })
    await call("account_deactivation", "POST", "/account/deactivate", 401, user=alice, json={})
    body = await call("account_deactivation", "POST", "/account/deactivate", 200, user=alice,
                      json={"auth": {"type": "m.login.password", "password": "next",
                                     "user": alice.user_id}})
    assert body["id_server_unbind_result"] == "no-support"


async def test_devices(call: Any, register: Register) -> None:
    alice = await register("alice")
    listed = await call("device_management", "GET", "/devices", 200, user=alice)
    assert [d["device_id"] for d in listed["devices"]] == [alice.device_id]
    one = {"deviceId": alice.device_id}
    await call("device_management", "GET", "/devices/{deviceId}", 200, one, user=alice)
    await call("device_management", "GET", "/devices/{deviceId}", 404, {"deviceId": "NOPE"},
               user=alice, errcode="M_NOT_FOUND")
    await call("device_management", "PUT", "/devices/{deviceId}", 200, one, user=alice,
               json={"display_name": "phone"})
    await call("device_management", "PUT", "/devices/{deviceId}", 404, {"deviceId": "NOPE"},
               user=alice, json={"display_name": "x"}, errcode="M_NOT_FOUND")
    second = await register("alice2")
    await call("device_management", "DELETE", "/devices/{deviceId}", 401,
               {"deviceId": second.device_id}, user=second, json={})
    auth = {"type": "m.login.password", "password": "secret-pw", "user": second.user_id}
    await call("device_management", "POST", "/delete_devices", 401, user=second,
               json={"devices": ["X"]})
    await call("device_management", "POST", "/delete_devices", 200, user=second,
               json={"devices": ["X"], "auth": auth})
    await call("device_management", "DELETE", "/devices/{deviceId}", 200,
               {"deviceId": second.device_id}, user=second, json={"auth": auth})


# --- rooms and membership ------------------------------------------------------------------------


async def test_create_room_and_membership(call: Any, register: Register) -> None:
    alice, bob, carol = await register("alice"), await register("bob"), await register("carol")
    created = await call("create_room", "POST", "/createRoom", 200, user=alice,
                         json={"name": "Hall", "room_alias_name": "hall"})
    room = {"roomId": created["room_id"]}
    await call("create_room", "POST", "/createRoom", 400, user=alice,
               json={"room_alias_name": "hall"}, errcode="M_ROOM_IN_USE")
    await call("create_room", "POST", "/createRoom", 400, user=alice,
               json={"room_version": "999"}, errcode="M_UNSUPPORTED_ROOM_VERSION")
    # invite-only: bob may not join uninvited
    await call("joining", "POST", "/rooms/{roomId}/join", 403, room, user=bob, json={},
               errcode="M_FORBIDDEN")
    await call("inviting", "POST", "/rooms/{roomId}/invite", 200, room, user=alice,
               json={"user_id": bob.user_id})
    await call("inviting", "POST", "/rooms/{roomId}/invite", 403, room, user=carol,
               json={"user_id": carol.user_id}, errcode="M_FORBIDDEN")
    joined = await call("joining", "POST", "/rooms/{roomId}/join", 200, room, user=bob, json={})
    assert joined["room_id"] == room["roomId"]
    await call("joining", "POST", "/join/{roomIdOrAlias}", 200,
               {"roomIdOrAlias": "#hall:test.local"}, user=bob, json={})
    rooms = await call("list_joined_rooms", "GET", "/joined_rooms", 200, user=bob)
    assert rooms["joined_rooms"] == [room["roomId"]]
    await call("kicking", "POST", "/rooms/{roomId}/kick", 403, room, user=bob,
               json={"user_id": alice.user_id}, errcode="M_FORBIDDEN")
    await call("kicking", "POST", "/rooms/{roomId}/kick", 200, room, user=alice,
               json={"user_id": bob.user_id, "reason": "bye"})
    await call("banning", "POST", "/rooms/{roomId}/ban", 200, room, user=alice,
               json={"user_id": bob.user_id})
    await call("banning", "POST", "/rooms/{roomId}/ban", 403, room, user=carol,
               json={"user_id": alice.user_id}, errcode="M_FORBIDDEN")
    await call("banning", "POST", "/rooms/{roomId}/unban", 200, room, user=alice,
               json={"user_id": bob.user_id})
    await call("banning", "POST", "/rooms/{roomId}/unban", 403, room, user=alice,
               json={"user_id": carol.user_id}, errcode="M_FORBIDDEN")
    await call("leaving", "POST", "/rooms/{roomId}/forget", 400, room, user=alice,
               errcode="M_UNKNOWN")
    await call("leaving", "POST", "/rooms/{roomId}/leave", 200, room, user=alice, json={})
    await call("leaving", "POST", "/rooms/{roomId}/forget", 200, room, user=alice)


async def test_members_and_state(call: Any, register: Register, create_room: CreateRoom,
                                 spec: MatrixSpec) -> None:
    alice, bob = await register("alice"), await register("bob")
    room = {"roomId": await create_room(alice, name="Hall", topic="chat")}
    members = await call("rooms", "GET", "/rooms/{roomId}/members", 200, room, user=alice)
    for ev in members["chunk"]:
        spec.check_event(ev, require_known_type=True)
    await call("rooms", "GET", "/rooms/{roomId}/members", 403, room, user=bob,
               errcode="M_FORBIDDEN")
    await call("rooms", "GET", "/rooms/{roomId}/joined_members", 403, room, user=bob,
               errcode="M_FORBIDDEN")
    state = await call("rooms", "GET", "/rooms/{roomId}/state", 200, room, user=alice)
    assert {e["type"] for e in state} >= {"m.room.create", "m.room.power_levels", "m.room.name"}
    for ev in state:
        spec.check_event(ev, require_known_type=True)
    await call("rooms", "GET", "/rooms/{roomId}/state", 403, room, user=bob,
               errcode="M_FORBIDDEN")
    path = "/rooms/{roomId}/state/{eventType}/{stateKey}"
    name = {**room, "eventType": "m.room.name", "stateKey": "x"}
    await call("room_state", "PUT", path, 200, name, user=alice, json={"name": "keyed"})
    assert await call("rooms", "GET", path, 200, name, user=alice) == {"name": "keyed"}
    await call("rooms", "GET", path, 404, {**name, "eventType": "m.room.avatar"}, user=alice,
               errcode="M_NOT_FOUND")
    await call("rooms", "GET", path, 403, name, user=bob, errcode="M_FORBIDDEN")
    put = await call("room_state", "PUT", path, 200, {**name, "eventType": "m.room.topic"},
                     user=alice, json={"topic": "new"})
    assert put["event_id"].startswith("$")
    await call("room_state", "PUT", path, 403, {**name, "eventType": "m.room.topic"}, user=bob,
               json={"topic": "x"}, errcode="M_FORBIDDEN")
    await call("room_state", "PUT", path, 400, {**name, "eventType": "m.room.canonical_alias"},
               user=alice, json={"alias": "#nowhere:test.local"}, errcode="M_BAD_ALIAS")


async def test_state_empty_key_without_trailing_slash(call: Any, register: Register,
                                                      create_room: CreateRoom) -> None:
    # "When an empty string, the trailing slash on this endpoint is optional."
    alice = await register("alice")
    room_id = await create_room(alice, name="Hall")
    path = "/rooms/{roomId}/state/{eventType}/{stateKey}"
    name = {"roomId": room_id, "eventType": "m.room.name", "stateKey": ""}
    bare = f"/rooms/{quote(room_id)}/state/m.room.name"
    await call("room_state", "PUT", path, 200, name, user=alice, json={"name": "Renamed"},
               url=bare)
    assert await call("rooms", "GET", path, 200, name, user=alice, url=bare) == {
        "name": "Renamed"}


async def test_state_empty_key_with_trailing_slash(call: Any, register: Register,
                                                   create_room: CreateRoom) -> None:
    alice = await register("alice")
    room = {"roomId": await create_room(alice, name="Hall")}
    path = "/rooms/{roomId}/state/{eventType}/{stateKey}"
    name = {**room, "eventType": "m.room.name", "stateKey": ""}
    await call("room_state", "PUT", path, 200, name, user=alice, json={"name": "Renamed"})
    assert await call("rooms", "GET", path, 200, name, user=alice) == {"name": "Renamed"}


async def test_joined_members(call: Any, register: Register, create_room: CreateRoom) -> None:
    alice = await register("alice")
    room = {"roomId": await create_room(alice)}
    joined = await call("rooms", "GET", "/rooms/{roomId}/joined_members", 200, room, user=alice)
    assert list(joined["joined"]) == [alice.user_id]


async def test_state_event_format_event(client: TestClient, register: Register,
                                        create_room: CreateRoom, spec: MatrixSpec) -> None:
    # The spec's 200 schema is oneOf [object, StateEvent], which a full event matches twice;
    # so ?format=event is checked as a client event of its type instead.
    alice = await register("alice")
    room_id = await create_room(alice, name="Hall")
    resp = await client.get(f"{V3}/rooms/{room_id}/state/m.room.name",
                            params={"format": "event"}, headers=alice.auth)
    assert resp.status == 200
    event = await resp.json()
    spec.check_event(event, require_known_type=True)
    assert event["state_key"] == "" and event["content"] == {"name": "Hall"}


async def test_send_redact_event(call: Any, register: Register, create_room: CreateRoom,
                                 spec: MatrixSpec) -> None:
    alice, bob = await register("alice"), await register("bob")
    room = {"roomId": await create_room(alice)}
    send = "/rooms/{roomId}/send/{eventType}/{txnId}"
    sent = await call("room_send", "PUT", send, 200,
                      {**room, "eventType": "m.room.message", "txnId": "1"}, user=alice,
                      json={"msgtype": "m.text", "body": "hi"})
    await call("room_send", "PUT", send, 400,
               {**room, "eventType": "m.room.redaction", "txnId": "2"}, user=alice,
               json={"redacts": sent["event_id"]}, errcode="M_INVALID_PARAM")
    await call("room_send", "PUT", send, 403,
               {**room, "eventType": "m.room.message", "txnId": "3"}, user=bob,
               json={"msgtype": "m.text", "body": "hi"}, errcode="M_FORBIDDEN")
    get = "/rooms/{roomId}/event/{eventId}"
    event = await call("rooms", "GET", get, 200, {**room, "eventId": sent["event_id"]},
                       user=alice)
    spec.check_event(event, require_known_type=True)
    await call("rooms", "GET", get, 404, {**room, "eventId": "$nope"}, user=alice,
               errcode="M_NOT_FOUND")
    await call("rooms", "GET", get, 404, {**room, "eventId": sent["event_id"]}, user=bob,
               errcode="M_NOT_FOUND")
    redaction = await call("redaction", "PUT", "/rooms/{roomId}/redact/{eventId}/{txnId}", 200,
                           {**room, "eventId": sent["event_id"], "txnId": "r1"}, user=alice,
                           json={"reason": "oops"})
    assert redaction["event_id"].startswith("$")
    redacted = await call("rooms", "GET", get, 200, {**room, "eventId": sent["event_id"]},
                          user=alice)
    assert redacted["content"] == {}
    spec.check_event(redacted)  # a redacted message has no body: only the client format holds
    because = redacted["unsigned"]["redacted_because"]
    spec.check_event(because, require_known_type=True)


# --- sync and filters ----------------------------------------------------------------------------


async def test_sync_initial_and_incremental(call: Any, client: TestClient, register: Register,
                                            create_room: CreateRoom, spec: MatrixSpec) -> None:
    alice, room_id, _ = await room_with_message(register, create_room, client)
    bob = await register("bob")
    await call("inviting", "POST", "/rooms/{roomId}/invite", 200, {"roomId": room_id},
               user=alice, json={"user_id": bob.user_id})
    first = await call("sync", "GET", "/sync", 200, user=alice)
    room = first["rooms"]["join"][room_id]
    assert [e["type"] for e in room["timeline"]["events"]][-1] == "m.room.member"
    for ev in room["timeline"]["events"] + room["state"]["events"]:
        spec.check_event(ev, with_room_id=False, require_known_type=True)
    invited = await call("sync", "GET", "/sync", 200, user=bob)
    assert room_id in invited["rooms"]["invite"]
    # incremental: one new message, then a leave seen by bob
    resp = await client.put(f"{V3}/rooms/{room_id}/send/m.room.message/t2", headers=alice.auth,
                            json={"msgtype": "m.notice", "body": "again"})
    assert resp.status == 200
    later = await call("sync", "GET", "/sync", 200, user=alice,
                       query={"since": first["next_batch"], "timeout": "0"})
    events = later["rooms"]["join"][room_id]["timeline"]["events"]
    assert [e["content"]["body"] for e in events] == ["again"]
    assert events[0]["unsigned"]["transaction_id"] == "t2"
    for ev in events:
        spec.check_event(ev, with_room_id=False, require_known_type=True)
    await call("joining", "POST", "/rooms/{roomId}/join", 200, {"roomId": room_id}, user=bob,
               json={})
    await call("leaving", "POST", "/rooms/{roomId}/leave", 200, {"roomId": room_id}, user=bob,
               json={})
    left = await call("sync", "GET", "/sync", 200, user=bob,
                      query={"since": invited["next_batch"]})
    for ev in left["rooms"]["leave"][room_id]["timeline"]["events"]:
        spec.check_event(ev, with_room_id=False, require_known_type=True)


async def test_sync_errors(call: Any, register: Register) -> None:
    alice = await register("alice")
    await call("sync", "GET", "/sync", 401, errcode="M_MISSING_TOKEN")
    await call("sync", "GET", "/sync", 400, user=alice, query={"since": "garbage"},
               errcode="M_INVALID_PARAM")
    await call("sync", "GET", "/sync", 400, user=alice, query={"filter": "{bad"},
               errcode="M_NOT_JSON")


async def test_filters(call: Any, register: Register) -> None:
    alice, bob = await register("alice"), await register("bob")
    me = {"userId": alice.user_id}
    definition = {"room": {"timeline": {"limit": 5, "types": ["m.room.message"]}}}
    created = await call("filter", "POST", "/user/{userId}/filter", 200, me, user=alice,
                         json=definition)
    got = await call("filter", "GET", "/user/{userId}/filter/{filterId}", 200,
                     {**me, "filterId": created["filter_id"]}, user=alice)
    assert got == definition
    await call("filter", "GET", "/user/{userId}/filter/{filterId}", 404,
               {**me, "filterId": "999"}, user=alice, errcode="M_NOT_FOUND")
    await call("filter", "POST", "/user/{userId}/filter", 403, me, user=bob, json={},
               errcode="M_FORBIDDEN")
    synced = await call("sync", "GET", "/sync", 200, user=alice,
                        query={"filter": created["filter_id"]})
    assert synced["next_batch"]
