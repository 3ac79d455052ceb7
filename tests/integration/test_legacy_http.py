"""The 2015 examples, byte for byte: raw HTTP on the api/v1 and r0 prefixes, no Matrix library.

Microcontrollers still post ``curl -XPOST -d '{...}' .../api/v1/rooms/ROOM/send/m.room.message
?access_token=TOKEN``; what they send must reach a modern client (matrix-nio) like any event.
"""

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import nio
import pytest

pytestmark = pytest.mark.integration

V1 = "/_matrix/client/api/v1"
R0 = "/_matrix/client/r0"
PASSWORD = "pw-from-2015"
# What `curl -d` sends when no Content-Type is given.
CURL_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def call(http: aiohttp.ClientSession, method: str, path: str, expect: int = 200,
               **kwargs: Any) -> Any:
    async with http.request(method, path, **kwargs) as resp:
        text = await resp.text()
        try:
            body = json.loads(text)
        except ValueError:
            body = text
        assert resp.status == expect, f"{method} {path} -> {resp.status} {body}"
        assert resp.content_type == "application/json", f"{method} {path}: {resp.content_type}"
        return body


async def legacy_device(http: aiohttp.ClientSession, name: str) -> tuple[str, str]:
    """Register over r0 (the dummy flow after the 401 challenge), log in over api/v1 the 2015
    way (top-level "user"): (user_id, access_token)."""
    challenge = await call(http, "POST", f"{R0}/register", 401,
                           json={"username": name, "password": PASSWORD})
    assert "m.login.dummy" in challenge["flows"][0]["stages"], challenge
    await call(http, "POST", f"{R0}/register", json={
        "username": name, "password": PASSWORD,
        "auth": {"type": "m.login.dummy", "session": challenge.get("session")},
    })
    flows = await call(http, "GET", f"{V1}/login")
    assert {"type": "m.login.password"} in flows["flows"]
    login = await call(http, "POST", f"{V1}/login", data=json.dumps(
        {"type": "m.login.password", "user": name, "password": PASSWORD}), headers=CURL_FORM)
    assert login["user_id"] == f"@{name}:test.local"
    return login["user_id"], login["access_token"]


async def test_api_v1_post_send_reaches_nio(
    http: aiohttp.ClientSession, nio_user: Callable[[str], Awaitable[nio.AsyncClient]]
) -> None:
    user_id, token = await legacy_device(http, "keyboard")
    bob = await nio_user("bob")
    created = await call(http, "POST", f"{V1}/createRoom?access_token={token}",
                         data=json.dumps({"room_alias_name": "keys", "name": "Keys"}),
                         headers=CURL_FORM)
    room_id = created["room_id"]
    assert room_id.startswith("!")
    await call(http, "POST", f"{V1}/rooms/{room_id}/invite?access_token={token}",
               data=json.dumps({"user_id": bob.user_id}), headers=CURL_FORM)
    joined = await bob.join(room_id)
    assert isinstance(joined, nio.JoinResponse), joined
    first = await bob.sync(timeout=0)
    assert isinstance(first, nio.SyncResponse), first

    # The 2015 example, exactly.
    sent = await call(http, "POST",
                      f"{V1}/rooms/{room_id}/send/m.room.message?access_token={token}",
                      data='{"msgtype":"m.text","body":"hello"}', headers=CURL_FORM)
    event_id = sent["event_id"]
    assert event_id.startswith("$")
    # Two posts of the same body are two events (there is no transaction id to dedupe on).
    second = await call(http, "POST",
                        f"{V1}/rooms/{room_id}/send/m.room.message?access_token={token}",
                        data='{"msgtype":"m.text","body":"hello"}', headers=CURL_FORM)
    assert second["event_id"] != event_id

    resp = await bob.sync(timeout=5000)
    assert isinstance(resp, nio.SyncResponse), resp
    events = resp.rooms.join[room_id].timeline.events
    assert [e.event_id for e in events] == [event_id, second["event_id"]]
    hello = events[0]
    assert isinstance(hello, nio.RoomMessageText), hello
    assert hello.body == "hello" and hello.sender == user_id
    assert hello.source["content"] == {"msgtype": "m.text", "body": "hello"}
    assert "transaction_id" not in hello.source.get("unsigned", {})


async def test_r0_prefix_requests(
    http: aiohttp.ClientSession, nio_user: Callable[[str], Awaitable[nio.AsyncClient]]
) -> None:
    user_id, token = await legacy_device(http, "lamp")
    auth = {"Authorization": f"Bearer {token}"}
    who = await call(http, "GET", f"{R0}/account/whoami", headers=auth)
    assert who["user_id"] == user_id
    room_id = (await call(http, "POST", f"{R0}/createRoom", json={"preset": "public_chat"},
                          headers=auth))["room_id"]
    put = await call(http, "PUT", f"{R0}/rooms/{room_id}/send/m.room.message/txn1",
                     json={"msgtype": "m.text", "body": "r0 hello"}, headers=auth)
    again = await call(http, "PUT", f"{R0}/rooms/{room_id}/send/m.room.message/txn1",
                       json={"msgtype": "m.text", "body": "r0 hello"}, headers=auth)
    assert again["event_id"] == put["event_id"], "the same txn id must give the same event"
    await call(http, "PUT", f"{R0}/rooms/{room_id}/state/m.room.topic",
               json={"topic": "lights"}, headers=auth)
    topic = await call(http, "GET", f"{R0}/rooms/{room_id}/state/m.room.topic", headers=auth)
    assert topic == {"topic": "lights"}
    rooms = await call(http, "GET", f"{R0}/joined_rooms", headers=auth)
    assert rooms["joined_rooms"] == [room_id]
    sync = await call(http, "GET", f"{R0}/sync?access_token={token}")
    timeline = sync["rooms"]["join"][room_id]["timeline"]["events"]
    assert put["event_id"] in [e["event_id"] for e in timeline]

    # A nio client joins the public room and sees the r0 event.
    bob = await nio_user("bob")
    joined = await bob.join(room_id)
    assert isinstance(joined, nio.JoinResponse), joined
    resp = await bob.sync(timeout=0)
    assert isinstance(resp, nio.SyncResponse), resp
    events = resp.rooms.join[room_id].timeline.events
    got = next(e for e in events if e.event_id == put["event_id"])
    assert isinstance(got, nio.RoomMessageText) and got.body == "r0 hello"
    assert bob.rooms[room_id].topic == "lights"


async def test_legacy_errors_keep_the_matrix_shape(http: aiohttp.ClientSession) -> None:
    _, token = await legacy_device(http, "sensor")
    room_id = (await call(http, "POST", f"{V1}/createRoom?access_token={token}",
                          data="{}", headers=CURL_FORM))["room_id"]
    send = f"{V1}/rooms/{room_id}/send/m.room.message"
    body = '{"msgtype":"m.text","body":"hello"}'
    missing = await call(http, "POST", send, 401, data=body, headers=CURL_FORM)
    assert missing["errcode"] == "M_MISSING_TOKEN"
    wrong = await call(http, "POST", f"{send}?access_token=nope", 401, data=body,
                       headers=CURL_FORM)
    assert wrong["errcode"] == "M_UNKNOWN_TOKEN"
    broken = await call(http, "POST", f"{send}?access_token={token}", 400,
                        data='{"msgtype":"m.text",', headers=CURL_FORM)
    assert broken["errcode"] == "M_NOT_JSON"
    unknown = await call(http, "POST",
                         f"{V1}/rooms/!nowhere:test.local/send/m.room.message"
                         f"?access_token={token}", 404, data=body, headers=CURL_FORM)
    assert unknown["errcode"] == "M_NOT_FOUND"
    nothing = await call(http, "GET", f"{V1}/no/such/endpoint", 404)
    assert nothing["errcode"] == "M_UNRECOGNIZED"


async def test_api_v1_initial_sync_then_event_stream_sees_nio(
    http: aiohttp.ClientSession, nio_user: Callable[[str], Awaitable[nio.AsyncClient]]
) -> None:
    """The 2015 client loop: GET /initialSync, then long-poll GET /events from its ``end``."""
    import asyncio

    user_id, token = await legacy_device(http, "display")
    bob = await nio_user("bob")
    room_id = (await call(http, "POST", f"{V1}/createRoom?access_token={token}",
                          data='{"preset":"public_chat"}', headers=CURL_FORM))["room_id"]
    joined = await bob.join(room_id)
    assert isinstance(joined, nio.JoinResponse), joined
    snapshot = await call(http, "GET", f"{V1}/initialSync?limit=5&access_token={token}")
    room = next(r for r in snapshot["rooms"] if r["room_id"] == room_id)
    assert room["membership"] == "join"
    assert bob.user_id in [e["state_key"] for e in room["state"] if e["type"] == "m.room.member"]

    poll = asyncio.ensure_future(call(
        http, "GET", f"{V1}/events?from={snapshot['end']}&timeout=10000&access_token={token}"))
    await asyncio.sleep(0.2)
    sent = await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hi"})
    assert isinstance(sent, nio.RoomSendResponse), sent
    token_now, messages = snapshot["end"], []
    body = await asyncio.wait_for(poll, 15)
    for _ in range(5):
        messages += [e for e in body["chunk"] if e.get("type") == "m.room.message"]
        if messages:
            break
        token_now = body["end"]
        body = await call(http, "GET",
                          f"{V1}/events?from={token_now}&timeout=5000&access_token={token}")
    assert [(e["event_id"], e["room_id"], e["content"]["body"]) for e in messages] == [
        (sent.event_id, room_id, "hi")]
    assert messages[0]["user_id"] == messages[0]["sender"] == bob.user_id
    assert user_id != bob.user_id
