"""Rooms of every stable room version, 1 to 12, through the client-server API.

https://spec.matrix.org/v1.19/rooms/ and
https://spec.matrix.org/v1.19/client-server-api/#mroom_versions-capability
"""

import re
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from support import V3, User, get_sync

from edgehs.api.keys import HS_KEY
from edgehs.protocol.events import auth_event_ids, prev_event_ids
from edgehs.protocol.room_versions import KNOWN_ROOM_VERSIONS

ALL = [str(n) for n in range(1, 13)]


async def ok(resp: Any) -> Any:
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def test_capabilities_list_every_stable_version(client: TestClient, register) -> None:
    alice = await register("alice")
    caps = await ok(await client.get(f"{V3}/capabilities", headers=alice.auth))
    versions = caps["capabilities"]["m.room_versions"]
    assert versions["default"] == "12"
    assert versions["available"] == {v: "stable" for v in ALL}
    assert list(KNOWN_ROOM_VERSIONS) == ALL


async def send(client: TestClient, user: User, room_id: str, txn: str,
               content: dict[str, Any]) -> str:
    resp = await client.put(f"{V3}/rooms/{room_id}/send/m.room.message/{txn}", json=content,
                            headers=user.auth)
    return str((await ok(resp))["event_id"])


@pytest.mark.parametrize("version", ALL)
async def test_a_room_of_each_version(client: TestClient, register, version: str) -> None:
    """Create, send, set state, redact, join a second user, read /sync and /messages."""
    alice, bob = await register("alice"), await register("bob")
    created = await ok(await client.post(
        f"{V3}/createRoom",
        json={"room_version": version, "preset": "public_chat", "name": f"v{version}"},
        headers=alice.auth,
    ))
    room_id = created["room_id"]
    create = await ok(await client.get(f"{V3}/rooms/{room_id}/state/m.room.create/",
                                       headers=alice.auth))
    assert create["room_version"] == version
    # Versions before 11 name the creator in the create event's content.
    assert ("creator" in create) == (int(version) < 11)

    first = await send(client, alice, room_id, "t1", {"msgtype": "m.text", "body": "hello"})
    resp = await client.put(f"{V3}/rooms/{room_id}/state/m.room.topic/",
                            json={"topic": f"topic v{version}"}, headers=alice.auth)
    topic_id = (await ok(resp))["event_id"]
    resp = await client.put(f"{V3}/rooms/{room_id}/redact/{quote(first, safe='')}/r1",
                            json={"reason": "oops"}, headers=alice.auth)
    redaction_id = (await ok(resp))["event_id"]
    await ok(await client.post(f"{V3}/join/{room_id}", json={}, headers=bob.auth))
    second = await send(client, bob, room_id, "t2", {"msgtype": "m.text", "body": "hi"})

    ids = [first, topic_id, redaction_id, second]
    if int(version) <= 2:  # chosen by the origin: $opaque:server_name
        assert all(re.fullmatch(r"\$[A-Za-z0-9]+:test\.local", e) for e in ids), ids
    elif version == "3":  # reference hash, standard base64 ('+', '/' possible)
        assert all(re.fullmatch(r"\$[A-Za-z0-9+/]{43}", e) for e in ids), ids
    else:  # reference hash, URL-safe base64
        assert all(re.fullmatch(r"\$[A-Za-z0-9_-]{43}", e) for e in ids), ids

    # The stored PDUs cite their parents in the version's format, and the DAG edges are read
    # back through them.
    hs = client.app[HS_KEY]
    stored = await hs.events.events.get_event(second)
    assert stored is not None
    pdu = stored.pdu
    if int(version) <= 2:
        assert all(isinstance(ref, list) and set(ref[1]) == {"sha256"}
                   for ref in pdu["prev_events"] + pdu["auth_events"])
    else:
        assert all(isinstance(ref, str) for ref in pdu["prev_events"] + pdu["auth_events"])
    assert len(auth_event_ids(pdu)) == (2 if version == "12" else 3)
    assert await hs.events.events.get_forward_extremities(room_id) == [second]

    sync = await get_sync(client, bob)
    timeline = sync["rooms"]["join"][room_id]["timeline"]["events"]
    assert timeline[-1]["event_id"] == second
    bob_join = timeline[-2]
    assert (bob_join["type"], bob_join["state_key"]) == ("m.room.member", bob.user_id)
    assert prev_event_ids(pdu) == [bob_join["event_id"]]
    messages = await ok(await client.get(
        f"{V3}/rooms/{room_id}/messages", params={"dir": "b", "limit": "50"},
        headers=alice.auth,
    ))
    by_id = {e["event_id"]: e for e in messages["chunk"]}
    assert set(ids) <= set(by_id)
    assert by_id[first]["content"] == {}  # redacted
    assert by_id[redaction_id]["redacts"] == first
    assert by_id[topic_id]["content"] == {"topic": f"topic v{version}"}
    members = await ok(await client.get(f"{V3}/rooms/{room_id}/joined_members",
                                        headers=alice.auth))
    assert set(members["joined"]) == {alice.user_id, bob.user_id}
    # The event id in paths: one event, its context, a receipt, a reply in a thread.
    quoted = quote(second, safe="")
    event = await ok(await client.get(f"{V3}/rooms/{room_id}/event/{quoted}",
                                      headers=alice.auth))
    assert event["content"]["body"] == "hi"
    context = await ok(await client.get(f"{V3}/rooms/{room_id}/context/{quoted}",
                                        headers=alice.auth))
    assert context["event"]["event_id"] == second
    await ok(await client.post(f"{V3}/rooms/{room_id}/receipt/m.read/{quoted}", json={},
                               headers=alice.auth))
    reply = await send(client, alice, room_id, "t3", {
        "msgtype": "m.text", "body": "in thread",
        "m.relates_to": {"rel_type": "m.thread", "event_id": second},
    })
    relations = await ok(await client.get(
        f"/_matrix/client/v1/rooms/{room_id}/relations/{quoted}", headers=alice.auth))
    assert [e["event_id"] for e in relations["chunk"]] == [reply]


@pytest.mark.parametrize("version", ["5", "6"])
async def test_floats_refused_from_v6_only(client: TestClient, register, version: str) -> None:
    """Room v6 requires strict canonical JSON; earlier versions accept floats in events."""
    alice = await register("alice")
    created = await ok(await client.post(f"{V3}/createRoom", json={"room_version": version},
                                         headers=alice.auth))
    resp = await client.put(f"{V3}/rooms/{created['room_id']}/send/m.room.message/f",
                            json={"msgtype": "m.text", "body": "x", "n": 1.5},
                            headers=alice.auth)
    if version == "6":
        assert resp.status == 400
        assert (await resp.json())["errcode"] == "M_BAD_JSON"
    else:
        await ok(resp)


@pytest.mark.parametrize(("old", "new"), [("1", "12"), ("2", "3"), ("5", "1"), ("10", "4")])
async def test_upgrades_between_versions(client: TestClient, register, old: str,
                                         new: str) -> None:
    alice = await register("alice")
    created = await ok(await client.post(
        f"{V3}/createRoom", json={"room_version": old, "preset": "public_chat"},
        headers=alice.auth,
    ))
    upgraded = await ok(await client.post(f"{V3}/rooms/{created['room_id']}/upgrade",
                                          json={"new_version": new}, headers=alice.auth))
    new_room = upgraded["replacement_room"]
    create = await ok(await client.get(f"{V3}/rooms/{new_room}/state/m.room.create/",
                                       headers=alice.auth))
    assert create["room_version"] == new
    assert create["predecessor"]["room_id"] == created["room_id"]
    await send(client, alice, new_room, "after", {"msgtype": "m.text", "body": "moved"})


@pytest.mark.parametrize("version", ["9", "10"])
async def test_string_power_levels_before_v10_only(client: TestClient, register,
                                                   version: str) -> None:
    """Before v10 power levels may be integer strings; the room keeps working with them."""
    alice, bob = await register("alice"), await register("bob")
    created = await ok(await client.post(
        f"{V3}/createRoom", json={"room_version": version, "preset": "public_chat"},
        headers=alice.auth,
    ))
    room_id = created["room_id"]
    await ok(await client.post(f"{V3}/join/{room_id}", json={}, headers=bob.auth))
    levels = await ok(await client.get(f"{V3}/rooms/{room_id}/state/m.room.power_levels/",
                                       headers=alice.auth))
    levels["users"] = {alice.user_id: "100", bob.user_id: "50"}
    levels["events_default"] = "10"
    resp = await client.put(f"{V3}/rooms/{room_id}/state/m.room.power_levels/", json=levels,
                            headers=alice.auth)
    if version == "10":
        assert resp.status == 403
        assert (await resp.json())["errcode"] == "M_FORBIDDEN"
        return
    await ok(resp)
    await send(client, bob, room_id, "b1", {"msgtype": "m.text", "body": "@room hi"})
    await get_sync(client, alice)


async def test_upgrade_from_string_power_levels(client: TestClient, register) -> None:
    """A v9 room whose power levels hold integer strings upgrades to a v10+ room, where
    power levels must be integers."""
    alice = await register("alice")
    created = await ok(await client.post(
        f"{V3}/createRoom", json={"room_version": "9", "preset": "public_chat"},
        headers=alice.auth,
    ))
    room_id = created["room_id"]
    levels = await ok(await client.get(f"{V3}/rooms/{room_id}/state/m.room.power_levels/",
                                       headers=alice.auth))
    levels["users"] = {alice.user_id: "100", "@carol:test.local": "20"}
    levels["events"] = {**levels["events"], "m.room.topic": "40"}
    levels["kick"] = "60"
    await ok(await client.put(f"{V3}/rooms/{room_id}/state/m.room.power_levels/", json=levels,
                              headers=alice.auth))
    for new in ("10", "11"):
        upgraded = await ok(await client.post(f"{V3}/rooms/{room_id}/upgrade",
                                              json={"new_version": new}, headers=alice.auth))
        new_levels = await ok(await client.get(
            f"{V3}/rooms/{upgraded['replacement_room']}/state/m.room.power_levels/",
            headers=alice.auth))
        assert new_levels["users"]["@carol:test.local"] == 20
        assert new_levels["events"]["m.room.topic"] == 40
        assert new_levels["kick"] == 60
        room_id = upgraded["replacement_room"]
