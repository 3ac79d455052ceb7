"""Account data and tags checked against the spec's schemas, and the events /sync carries for
them, for typing and for receipts checked against ``event-schemas/schema/<type>.yaml``.

Ephemeral and account data events have no event_id/sender/origin_server_ts, so they are not
client events (``MatrixSpec.check_event``); their type's schema (core ``event.yaml``: type +
content, plus the content schema) is what the spec gives for them.
https://spec.matrix.org/v1.19/client-server-api/#client-config
"""

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, User

Register = Callable[[str], Awaitable[User]]
CreateRoom = Callable[..., Awaitable[str]]
GLOBAL = "/user/{userId}/account_data/{type}"
ROOM = "/user/{userId}/rooms/{roomId}/account_data/{type}"
TAGS = "/user/{userId}/rooms/{roomId}/tags"
TAG = "/user/{userId}/rooms/{roomId}/tags/{tag}"


@pytest.fixture
def call(client: TestClient, spec: MatrixSpec) -> Callable[..., Awaitable[Any]]:
    """``call(spec_file, METHOD, spec_path, status, params, user=, json=, data=, query=,
    errcode=, strict=)``: the request, its status (and errcode) asserted, its body validated
    against the spec's schema for that operation and status; returns the body. ``strict``
    is passed on (no undeclared top-level keys in a 2xx body)."""
    async def _call(api_file: str, method: str, path: str, status: int,
                    params: dict[str, str] | None = None, *, user: User | None = None,
                    json: Any = None, data: bytes | None = None,
                    query: dict[str, str] | None = None, errcode: str | None = None,
                    strict: bool = True) -> Any:
        url = V3 + path.format(**{k: quote(v, safe="") for k, v in (params or {}).items()})
        headers = user.auth if user is not None else {}
        resp = await client.request(method, url, json=json, data=data, params=query,
                                    headers=headers)
        body = await resp.json()
        assert resp.status == status, (method, url, body)
        if errcode is not None:
            assert body["errcode"] == errcode, body
        spec.check_response(api_file, method, path, resp.status, body, strict=strict)
        return body
    return _call


def check_plain_event(spec: MatrixSpec, event: dict[str, Any], *, known: bool = False) -> None:
    """An ephemeral or account data event against its type's schema (or, for a type the spec
    does not define, the core event schema). ``known``: the spec must define the type."""
    uri = spec.event_schema_uri(str(event.get("type")))
    if uri is None:
        assert not known, f"no event schema for {event.get('type')!r}"
        uri = spec.uri("event-schemas/schema/core-event-schema/event.yaml")
    errors = [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in spec.validator(uri).iter_errors(event)]
    assert not errors, (event, errors)


# --- account data and tags ------------------------------------------------------------------------


async def test_account_data(call: Any, register: Register, create_room: CreateRoom) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice)
    me = {"userId": alice.user_id, "type": "org.example.prefs"}
    here = {**me, "roomId": room_id}
    for api_path, params in ((GLOBAL, me), (ROOM, here)):
        assert await call("account-data", "PUT", api_path, 200, params, user=alice,
                          json={"theme": "dark"}) == {}
        # The 200 schema is a bare ``type: object``: the stored content, whatever its keys;
        # spec_schema's strict mode reads "no properties declared" as "no keys allowed".
        got = await call("account-data", "GET", api_path, 200, params, user=alice,
                         strict=False)
        assert got == {"theme": "dark"}
        await call("account-data", "GET", api_path, 404, {**params, "type": "org.example.unset"},
                   user=alice, errcode="M_NOT_FOUND")
        await call("account-data", "PUT", api_path, 403, params, user=bob, json={},
                   errcode="M_FORBIDDEN")
        await call("account-data", "GET", api_path, 403, params, user=bob,
                   errcode="M_FORBIDDEN")
        await call("account-data", "PUT", api_path, 400, params, user=alice, data=b"{x",
                   errcode="M_NOT_JSON")
        await call("account-data", "PUT", api_path, 400, params, user=alice, json=[1],
                   errcode="M_BAD_JSON")
        await call("account-data", "PUT", api_path, 405, {**params, "type": "m.fully_read"},
                   user=alice, json={"event_id": "$x"}, errcode="M_BAD_JSON")
        await call("account-data", "GET", api_path, 401, params, errcode="M_MISSING_TOKEN")
    await call("account-data", "GET", ROOM, 400, {**here, "roomId": "not-a-room"}, user=alice,
               errcode="M_INVALID_PARAM")
    await call("account-data", "PUT", ROOM, 400, {**here, "roomId": "#alias:test.local"},
               user=alice, json={}, errcode="M_INVALID_PARAM")


async def test_tags(call: Any, register: Register, create_room: CreateRoom) -> None:
    alice, bob = await register("alice"), await register("bob")
    room = {"userId": alice.user_id, "roomId": await create_room(alice)}
    assert await call("tags", "GET", TAGS, 200, room, user=alice) == {"tags": {}}
    assert await call("tags", "PUT", TAG, 200, {**room, "tag": "u.work"}, user=alice,
                      json={"order": 0.25}) == {}
    assert await call("tags", "PUT", TAG, 200, {**room, "tag": "m.favourite"}, user=alice,
                      json={}) == {}
    got = await call("tags", "GET", TAGS, 200, room, user=alice)
    assert got == {"tags": {"u.work": {"order": 0.25}, "m.favourite": {}}}
    assert await call("tags", "DELETE", TAG, 200, {**room, "tag": "u.work"}, user=alice) == {}
    assert await call("tags", "DELETE", TAG, 200, {**room, "tag": "u.work"}, user=alice) == {}
    # tags.yaml documents only 200s; errors fall back to the standard error schema.
    await call("tags", "GET", TAGS, 403, room, user=bob, errcode="M_FORBIDDEN")
    await call("tags", "PUT", TAG, 403, {**room, "tag": "u.x"}, user=bob, json={},
               errcode="M_FORBIDDEN")
    await call("tags", "DELETE", TAG, 403, {**room, "tag": "u.x"}, user=bob,
               errcode="M_FORBIDDEN")
    await call("tags", "PUT", TAG, 400, {**room, "tag": "u.x"}, user=alice,
               json={"order": "high"}, errcode="M_BAD_JSON")
    await call("tags", "PUT", TAG, 400, {**room, "tag": "u.x"}, user=alice,
               json={"order": 2}, errcode="M_INVALID_PARAM")
    await call("tags", "PUT", TAG, 400, {**room, "tag": "u.x"}, user=alice, data=b"nope",
               errcode="M_NOT_JSON")
    await call("tags", "GET", TAGS, 400, {**room, "roomId": alice.user_id}, user=alice,
               errcode="M_INVALID_PARAM")
    await call("tags", "GET", TAGS, 401, room, errcode="M_MISSING_TOKEN")


# --- the events /sync carries -------------------------------------------------------------------


async def test_sync_ephemeral_and_account_data_events(call: Any, client: TestClient,
                                                      register: Register,
                                                      create_room: CreateRoom,
                                                      spec: MatrixSpec) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    await call("joining", "POST", "/rooms/{roomId}/join", 200, {"roomId": room_id}, user=bob,
               json={})
    sent = await call("room_send", "PUT", "/rooms/{roomId}/send/{eventType}/{txnId}", 200,
                      {"roomId": room_id, "eventType": "m.room.message", "txnId": "t1"},
                      user=alice, json={"msgtype": "m.text", "body": "hi"})
    event_id = sent["event_id"]
    first = await call("sync", "GET", "/sync", 200, user=bob)
    since = first["next_batch"]
    room = {"roomId": room_id}
    await call("typing", "PUT", "/rooms/{roomId}/typing/{userId}", 200,
               {**room, "userId": alice.user_id}, user=alice,
               json={"typing": True, "timeout": 30000})
    await call("read_markers", "POST", "/rooms/{roomId}/read_markers", 200, room, user=bob,
               json={"m.fully_read": event_id, "m.read.private": event_id})
    await call("receipts", "POST", "/rooms/{roomId}/receipt/{receiptType}/{eventId}", 200,
               {**room, "receiptType": "m.read", "eventId": event_id}, user=alice,
               json={"thread_id": "main"})
    mine = {"userId": bob.user_id, "roomId": room_id}
    await call("tags", "PUT", TAG, 200, {**mine, "tag": "m.lowpriority"}, user=bob,
               json={"order": 0.5})
    await call("account-data", "PUT", GLOBAL, 200, {"userId": bob.user_id, "type": "m.direct"},
               user=bob, json={alice.user_id: [room_id]})
    await call("account-data", "PUT", GLOBAL, 200,
               {"userId": bob.user_id, "type": "org.example.prefs"}, user=bob,
               json={"theme": "dark"})
    await call("account-data", "PUT", ROOM, 200, {**mine, "type": "org.example.note"},
               user=bob, json={"note": "x"})
    # Incremental, then initial: both carry the same kinds of events.
    for query in ({"since": since, "timeout": "0"}, {}):
        synced = await call("sync", "GET", "/sync", 200, user=bob, query=query)
        joined = synced["rooms"]["join"][room_id]
        ephemeral = joined["ephemeral"]["events"]
        room_data = joined["account_data"]["events"]
        global_data = synced["account_data"]["events"]
        for ev in ephemeral:
            check_plain_event(spec, ev, known=True)
        for ev in room_data + global_data:
            check_plain_event(spec, ev)
        kinds = {ev["type"] for ev in ephemeral}
        assert kinds == {"m.typing", "m.receipt"}, ephemeral
        [typing] = [ev for ev in ephemeral if ev["type"] == "m.typing"]
        assert typing["content"] == {"user_ids": [alice.user_id]}
        receipts: dict[str, Any] = {}
        for ev in ephemeral:
            if ev["type"] == "m.receipt":
                receipts.update(ev["content"][event_id])
        assert receipts["m.read"][alice.user_id]["thread_id"] == "main"
        assert bob.user_id in receipts["m.read.private"]
        room_types = {ev["type"]: ev for ev in room_data}
        assert {"m.tag", "m.fully_read", "org.example.note"} <= set(room_types)
        for known in ("m.tag", "m.fully_read"):
            check_plain_event(spec, room_types[known], known=True)
        assert room_types["m.fully_read"]["content"] == {"event_id": event_id}
        assert room_types["m.tag"]["content"] == {"tags": {"m.lowpriority": {"order": 0.5}}}
        global_types = {ev["type"] for ev in global_data}
        assert {"m.direct", "org.example.prefs"} <= global_types
        check_plain_event(spec, next(ev for ev in global_data if ev["type"] == "m.direct"),
                          known=True)


def test_plain_event_check_rejects_wrong_events(spec: MatrixSpec) -> None:
    check_plain_event(spec, {"type": "m.typing", "content": {"user_ids": ["@a:b"]}}, known=True)
    bad = [
        {"type": "m.typing", "content": {"user_ids": ["a:b"]}},
        {"type": "m.typing", "content": {}},
        {"type": "m.receipt", "content": {"not-an-event-id": {}}},
        {"type": "m.fully_read", "content": {"event_id": 5}},
        {"type": "m.tag", "content": {"tags": {"u.x": {"order": "high"}}}},
        {"type": "org.example.x"},
    ]
    for event in bad:
        with pytest.raises(AssertionError):
            check_plain_event(spec, event)
    with pytest.raises(AssertionError, match="no event schema"):
        check_plain_event(spec, {"type": "org.example.x", "content": {}}, known=True)
