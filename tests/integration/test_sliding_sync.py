"""Simplified sliding sync (MSC4186) against edgehs as a process, the way Element X uses it.

No Python (PyPI) client speaks sliding sync, so the Element X side is raw HTTP with the request
bodies of matrix-rust-sdk's two connections: ``room-list`` (RoomListService: one list with
``timeline_limit`` 1 and the room summary's required_state, then a room subscription when a
room is opened) and ``encryption`` (EncryptionSyncService: to_device + e2ee only). The other
household member is a matrix-nio client. A real sliding sync client runs too: matrix-js-sdk's
``SlidingSync`` (what Element Web uses) in node, from tests/js/node_modules, its script written
by this test. https://github.com/matrix-org/matrix-spec-proposals/pull/4186
"""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import nio
import pytest
from js_support import JS_DIR, node_script, require_js

pytestmark = pytest.mark.integration

SERVER_NAME = "test.local"  # the integration fixtures' server name
PASSWORD = "eve's long household password"

SS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
NioUser = Callable[[str], Awaitable[nio.AsyncClient]]
Json = dict[str, Any]

ROOM_LIST_STATE = [
    ["m.room.encryption", ""], ["m.room.member", "$LAZY"], ["m.room.member", "$ME"],
    ["m.room.name", ""], ["m.room.canonical_alias", ""], ["m.room.power_levels", ""],
    ["org.matrix.msc3401.call.member", "*"], ["m.room.join_rules", ""],
    ["m.room.tombstone", ""], ["m.room.create", ""], ["m.room.history_visibility", ""],
    ["io.element.functional_members", ""], ["m.space.parent", "*"], ["m.room.topic", ""],
    ["m.room.avatar", ""],
]


def room_list_body(end: int, subscriptions: Json | None = None) -> Json:
    return {
        "conn_id": "room-list",
        "lists": {"room-list": {
            "ranges": [[0, end]], "timeline_limit": 1, "required_state": ROOM_LIST_STATE,
            "filters": {"not_room_types": ["m.space"]},
        }},
        "room_subscriptions": subscriptions or {},
        "extensions": {
            "account_data": {"enabled": True},
            "receipts": {"enabled": True, "rooms": ["*"]},
            "typing": {"enabled": True},
        },
    }


ENCRYPTION_BODY = {"conn_id": "encryption",
                   "extensions": {"to_device": {"enabled": True}, "e2ee": {"enabled": True}}}


class ElementX:
    """The HTTP side of an Element X session: login, /versions, the two connections."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.auth: dict[str, str] = {}
        self.user_id = self.device_id = ""

    async def login(self, name: str) -> None:
        resp = await self.http.post("/_matrix/client/v3/register", json={
            "username": name, "password": PASSWORD, "auth": {"type": "m.login.dummy"}})
        assert resp.status == 200, await resp.text()
        resp = await self.http.post("/_matrix/client/v3/login", json={
            "type": "m.login.password", "password": PASSWORD,
            "identifier": {"type": "m.id.user", "user": name},
            "initial_device_display_name": "Element X"})
        body = await resp.json()
        assert resp.status == 200, body
        self.auth = {"Authorization": f"Bearer {body['access_token']}"}
        self.user_id, self.device_id = body["user_id"], body["device_id"]

    async def sync(self, body: Json, pos: str | None = None, timeout: int = 0) -> Json:
        params = {"timeout": str(timeout), **({"pos": pos} if pos else {})}
        resp = await self.http.post(SS, json=body, params=params, headers=self.auth)
        data = await resp.json()
        assert resp.status == 200, data
        return dict(data)


async def nio_ok(resp: Any, kind: type) -> Any:
    assert isinstance(resp, kind), resp
    return resp


async def test_element_x_session(http: aiohttp.ClientSession, nio_user: NioUser) -> None:
    versions = await (await http.get("/_matrix/client/versions")).json()
    assert versions["unstable_features"]["org.matrix.simplified_msc3575"] is True
    ex = ElementX(http)
    await ex.login("eve")
    mum = await nio_user("mum")
    rooms = []
    for i in range(3):
        created = await nio_ok(await mum.room_create(name=f"family {i}", invite=[ex.user_id]),
                               nio.RoomCreateResponse)
        rooms.append(created.room_id)
    # Invites show up with their stripped state.
    first = await ex.sync(room_list_body(19))
    assert first["lists"]["room-list"]["count"] == 3
    assert all("invite_state" in first["rooms"][r] for r in rooms)
    for r in rooms:
        resp = await http.post(f"/_matrix/client/v3/join/{r}", json={}, headers=ex.auth)
        assert resp.status == 200
    await nio_ok(await mum.room_send(rooms[0], "m.room.message",
                                     {"msgtype": "m.text", "body": "dinner at 7"}),
                 nio.RoomSendResponse)
    joined = await ex.sync(room_list_body(19), first["pos"])
    assert next(iter(joined["rooms"])) == rooms[0]  # newest activity first
    top = joined["rooms"][rooms[0]]
    assert top["initial"] is True and top["name"] == "family 0"
    assert top["timeline"][-1]["content"]["body"] == "dinner at 7"
    assert top["joined_count"] == 2 and top["bump_stamp"] > 0
    # Opening the room: a subscription with a longer timeline, on the same connection.
    opened = await ex.sync(room_list_body(19, {rooms[0]: {
        "timeline_limit": 20, "required_state": [["*", "*"]]}}), joined["pos"])
    room = opened["rooms"][rooms[0]]
    # The timeline grows to the subscription's limit; only state not sent yet comes down
    # (mum's member event came with the list, as the sender of its timeline event).
    assert room["expanded_timeline"] is room["unstable_expanded_timeline"] is True
    assert "initial" not in room
    assert room["timeline"][0]["type"] == "m.room.create" and room["limited"] is False
    assert ("m.room.member", f"@mum:{SERVER_NAME}") in {
        (e["type"], e["state_key"]) for e in top["required_state"]}
    assert {e["type"] for e in room["required_state"]} == {"m.room.guest_access"}
    # Long-poll: a message from the nio client wakes the waiting request.
    poll = asyncio.create_task(ex.sync(room_list_body(19), opened["pos"], timeout=20000))
    await asyncio.sleep(0.3)
    assert not poll.done()
    await nio_ok(await mum.room_send(rooms[2], "m.room.message",
                                     {"msgtype": "m.text", "body": "who took the remote?"}),
                 nio.RoomSendResponse)
    woken = await asyncio.wait_for(poll, 15)
    assert list(woken["rooms"]) == [rooms[2]]
    assert woken["rooms"][rooms[2]]["timeline"][-1]["content"]["body"] == "who took the remote?"
    assert woken["rooms"][rooms[2]]["num_live"] == 1
    # The encryption connection: to-device messages, key counts; acknowledged by `since`.
    await nio_ok(await mum.to_device(nio.ToDeviceMessage(
        "org.example.hello", ex.user_id, ex.device_id, {"hi": 1})), nio.ToDeviceResponse)
    enc = await ex.sync(ENCRYPTION_BODY)
    to_device = enc["extensions"]["to_device"]
    assert [m["content"] for m in to_device["events"]] == [{"hi": 1}]
    assert "device_one_time_keys_count" in enc["extensions"]["e2ee"]
    ack = {"conn_id": "encryption", "extensions": {
        "to_device": {"enabled": True, "since": to_device["next_batch"]},
        "e2ee": {"enabled": True}}}
    again = await ex.sync(ack, enc["pos"])
    assert again["extensions"]["to_device"]["events"] == []


async def test_unknown_pos_after_restart(http: aiohttp.ClientSession, server: Any) -> None:
    ex = ElementX(http)
    await ex.login("eve")
    first = await ex.sync(room_list_body(19))
    await server.restart()
    async with aiohttp.ClientSession(base_url=server.base_url) as fresh:
        resp = await fresh.post(SS, json=room_list_body(19), params={"pos": first["pos"]},
                                headers=ex.auth)
        body = await resp.json()
        assert (resp.status, body["errcode"]) == (400, "M_UNKNOWN_POS")
        # The client starts over without a pos.
        resp = await fresh.post(SS, json=room_list_body(19), headers=ex.auth)
        assert resp.status == 200


# matrix-js-sdk's SlidingSync driving a MatrixClient (SlidingSyncSdk), reporting "EDGEHS-JS"
# steps on stdout: rooms (after the first response), received (EXPECT arrived in ROOM after
# subscribing to it), sent (SEND, from the client).
JS_SCRIPT = """
import * as sdk from "MODULES/matrix-js-sdk/lib/index.js";
import { SlidingSync, SlidingSyncEvent, SlidingSyncState }
    from "MODULES/matrix-js-sdk/lib/sliding-sync.js";
import { logger } from "MODULES/matrix-js-sdk/lib/logger.js";

logger.setLevel("warn");
for (const m of ["log", "info", "debug", "trace"]) {
    console[m] = (...p) => process.stderr.write(p.map(String).join(" ") + "\\n");
}
const [baseUrl, user, room, expect, send] = process.argv.slice(2);
const report = (step, f = {}) =>
    process.stdout.write("EDGEHS-JS " + JSON.stringify({ step, ...f }) + "\\n");
setTimeout(() => { report("error", { message: "timed out" }); process.exit(1); }, 60000);

const login = await sdk.createClient({ baseUrl }).loginRequest({
    type: "m.login.password", identifier: { type: "m.id.user", user },
    password: process.env.EDGEHS_PASSWORD });
const client = sdk.createClient({ baseUrl, accessToken: login.access_token,
                                  userId: login.user_id, deviceId: login.device_id });
const lists = new Map([["all", { ranges: [[0, 19]], timeline_limit: 1,
    required_state: [["m.room.name", ""], ["m.room.create", ""], ["m.room.member", "$ME"]] }]]);
const ss = new SlidingSync(baseUrl, lists,
    { timeline_limit: 10, required_state: [["*", "*"]] }, client, 10000);
let reported = false;
ss.on(SlidingSyncEvent.Lifecycle, (state, resp, err) => {
    if (err) report("error", { message: String(err) });
    if (state !== SlidingSyncState.Complete || reported || !resp) return;
    reported = true;
    const rooms = client.getRooms().map((r) => ({ room_id: r.roomId, name: r.name }));
    report("rooms", { rooms, count: resp.lists.all.count });
    ss.modifyRoomSubscriptions(new Set([room]));
});
client.on(sdk.RoomEvent.Timeline, async (event, r) => {
    if (r?.roomId !== room || event.getContent().body !== expect) return;
    report("received", { event_id: event.getId() });
    const sent = await client.sendTextMessage(room, send);
    report("sent", { event_id: sent.event_id });
    ss.stop();
    client.stopClient();
    process.exit(0);
});
await client.startClient({ slidingSync: ss });
"""


async def test_matrix_js_sdk_sliding_sync(http: aiohttp.ClientSession, nio_user: NioUser,
                                          server: Any, tmp_path: Path) -> None:
    require_js()
    ex = ElementX(http)
    await ex.login("juno")
    mum = await nio_user("mum")
    rooms = []
    for name in ("kitchen", "garden"):
        created = await nio_ok(await mum.room_create(name=name, invite=[ex.user_id]),
                               nio.RoomCreateResponse)
        rooms.append(created.room_id)
        resp = await http.post(f"/_matrix/client/v3/join/{created.room_id}", json={},
                               headers=ex.auth)
        assert resp.status == 200
    script = tmp_path / "sliding_sync_js.mjs"
    script.write_text(JS_SCRIPT.replace("MODULES", str(JS_DIR / "node_modules")))
    expect, reply = "is anyone home?", "yes, from matrix-js-sdk's sliding sync"
    # node_script runs JS_DIR / script: an absolute path stays itself.
    async with node_script(tmp_path, str(script), server.base_url, "juno", rooms[0], expect,
                           reply, env={"EDGEHS_PASSWORD": PASSWORD}) as js:
        listed = await js.step("rooms")
        assert listed["count"] == 2
        assert {(r["room_id"], r["name"]) for r in listed["rooms"]} == {
            (rooms[0], "kitchen"), (rooms[1], "garden")}
        await asyncio.sleep(0.5)  # let the subscription request go out
        await nio_ok(await mum.room_send(rooms[0], "m.room.message",
                                         {"msgtype": "m.text", "body": expect}),
                     nio.RoomSendResponse)
        await js.step("received")
        sent = await js.step("sent")
    messages = await nio_ok(await mum.room_messages(rooms[0], start="", limit=5),
                            nio.RoomMessagesResponse)
    bodies = {e.source["event_id"]: e.source["content"].get("body") for e in messages.chunk}
    assert bodies.get(sent["event_id"]) == reply
