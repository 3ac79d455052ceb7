"""Register, create a room, send, sync: the spine through the in-process app."""

from aiohttp.test_utils import TestClient


async def test_register_create_send_sync(client: TestClient, register, create_room) -> None:
    alice = await register("alice")
    room_id = await create_room(alice, name="Hall", topic="chat")
    resp = await client.put(
        f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/t1",
        json={"msgtype": "m.text", "body": "hello"}, headers=alice.auth,
    )
    assert resp.status == 200
    event_id = (await resp.json())["event_id"]
    # Same txn id: same event.
    again = await client.put(
        f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/t1",
        json={"msgtype": "m.text", "body": "hello"}, headers=alice.auth,
    )
    assert (await again.json())["event_id"] == event_id
    sync = await (await client.get("/_matrix/client/v3/sync", headers=alice.auth)).json()
    timeline = sync["rooms"]["join"][room_id]["timeline"]["events"]
    assert timeline[-1]["event_id"] == event_id
    assert timeline[-1]["unsigned"]["transaction_id"] == "t1"
