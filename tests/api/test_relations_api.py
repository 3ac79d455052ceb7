"""/relations and the server-side aggregations in unsigned.m.relations.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidrelationseventid
https://spec.matrix.org/v1.19/client-server-api/#aggregations-of-child-events
"""

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec

V3 = "/_matrix/client/v3"
V1 = "/_matrix/client/v1"


async def send(client: TestClient, user: Any, room_id: str, content: dict[str, Any], txn: str,
               event_type: str = "m.room.message") -> str:
    resp = await client.put(f"{V3}/rooms/{room_id}/send/{event_type}/{txn}", json=content,
                            headers=user.auth)
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["event_id"])


def text(body: str, **extra: Any) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body, **extra}


def edit_of(event_id: str, body: str) -> dict[str, Any]:
    return text(f"* {body}", **{"m.new_content": text(body),
                                "m.relates_to": {"rel_type": "m.replace", "event_id": event_id}})


def in_thread(root: str, body: str) -> dict[str, Any]:
    return text(body, **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}})


async def relations(client: TestClient, user: Any, room_id: str, path: str, status: int = 200,
                    **params: Any) -> dict[str, Any]:
    resp = await client.get(f"{V1}/rooms/{room_id}/relations/{path}", params=params,
                            headers=user.auth)
    body = await resp.json()
    assert resp.status == status, body
    return dict(body)


async def get_event(client: TestClient, user: Any, room_id: str, event_id: str
                    ) -> dict[str, Any]:
    resp = await client.get(f"{V3}/rooms/{room_id}/event/{event_id}", headers=user.auth)
    assert resp.status == 200
    return dict(await resp.json())


async def joined_room(client: TestClient, create_room, alice: Any, *others: Any) -> str:
    room_id = str(await create_room(alice, preset="public_chat"))
    for user in others:
        assert (await client.post(f"{V3}/join/{room_id}", headers=user.auth)).status == 200
    return room_id


async def test_edit_is_listed_and_aggregated(client: TestClient, register, create_room) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await joined_room(client, create_room, alice, bob)
    original = await send(client, alice, room_id, text("helo"), "t1")
    first = await send(client, alice, room_id, edit_of(original, "hallo"), "t2")
    second = await send(client, alice, room_id, edit_of(original, "hello"), "t3")
    # Bob's "edit" of Alice's message is not a valid replacement.
    hijack = await send(client, bob, room_id, edit_of(original, "hijacked"), "t4")

    all_children = await relations(client, alice, room_id, original)
    assert len(all_children["chunk"]) == 3
    edits = await relations(client, alice, room_id, f"{original}/m.replace/m.room.message",
                            limit=2)
    assert [e["event_id"] for e in edits["chunk"]] == [hijack, second]
    assert "next_batch" in edits and "prev_batch" not in edits
    none = await relations(client, alice, room_id, f"{original}/m.annotation")
    assert none["chunk"] == [] and "next_batch" not in none
    wrong_type = await relations(client, alice, room_id, f"{original}/m.replace/m.sticker")
    assert wrong_type["chunk"] == []

    bundled = (await get_event(client, bob, room_id, original))["unsigned"]["m.relations"]
    assert bundled["m.replace"]["event_id"] == second
    assert bundled["m.replace"]["content"]["m.new_content"]["body"] == "hello"
    # The event itself is not replaced (spec v1.7+).
    assert (await get_event(client, bob, room_id, original))["content"]["body"] == "helo"
    # An edit carries no aggregation of its own.
    assert "m.relations" not in (await get_event(client, bob, room_id, second))["unsigned"]

    # /messages bundles too; redacting the latest edit falls back to the one before.
    resp = await client.put(f"{V3}/rooms/{room_id}/redact/{second}/r1", json={},
                            headers=alice.auth)
    assert resp.status == 200
    page = await (await client.get(f"{V3}/rooms/{room_id}/messages", params={"dir": "b"},
                                   headers=alice.auth)).json()
    shown = next(e for e in page["chunk"] if e["event_id"] == original)
    assert shown["unsigned"]["m.relations"]["m.replace"]["event_id"] == first
    listed = await relations(client, alice, room_id, f"{original}/m.replace")
    assert second not in [e["event_id"] for e in listed["chunk"]]


async def test_thread_pagination_and_summary(client: TestClient, register, create_room
                                             ) -> None:
    alice, bob, carol = await register("alice"), await register("bob"), await register("carol")
    room_id = await joined_room(client, create_room, alice, bob, carol)
    root = await send(client, alice, room_id, text("root"), "t0")
    replies = [
        await send(client, alice, room_id, in_thread(root, "one"), "t1"),
        await send(client, bob, room_id, in_thread(root, "two"), "t2"),
        await send(client, alice, room_id, in_thread(root, "three"), "t3"),
    ]
    reaction = await send(client, bob, room_id, {"m.relates_to": {
        "rel_type": "m.annotation", "event_id": replies[0], "key": "+1"}}, "t4",
        event_type="m.reaction")
    late_edit = await send(client, alice, room_id, edit_of(replies[2], "three!"), "t5")

    page1 = await relations(client, alice, room_id, f"{root}/m.thread", limit=2)
    assert [e["event_id"] for e in page1["chunk"]] == [replies[2], replies[1]]
    page2 = await relations(client, alice, room_id, f"{root}/m.thread", limit=2,
                            **{"from": page1["next_batch"]})
    assert [e["event_id"] for e in page2["chunk"]] == [replies[0]]
    assert "next_batch" not in page2 and page2["prev_batch"] == page1["next_batch"]
    forward = await relations(client, alice, room_id, f"{root}/m.thread", dir="f")
    assert [e["event_id"] for e in forward["chunk"]] == replies
    upto = await relations(client, alice, room_id, f"{root}/m.thread",
                           to=page1["next_batch"])
    assert [e["event_id"] for e in upto["chunk"]] == [replies[2], replies[1]]

    # recurse reaches the reaction on a thread reply and the edit of the last reply.
    flat = await relations(client, alice, room_id, root)
    assert reaction not in [e["event_id"] for e in flat["chunk"]]
    assert "recursion_depth" not in flat
    deep = await relations(client, alice, room_id, root, recurse="true")
    assert {reaction, late_edit} <= {e["event_id"] for e in deep["chunk"]}
    assert deep["recursion_depth"] >= 2
    only_reactions = await relations(client, alice, room_id, f"{root}/m.annotation",
                                     recurse="true")
    assert [e["event_id"] for e in only_reactions["chunk"]] == [reaction]
    shallow = await relations(client, alice, room_id, root, recurse="false")
    assert shallow["recursion_depth"] == 1

    for viewer, participated in ((bob, True), (carol, False)):
        thread = (await get_event(client, viewer, room_id, root))["unsigned"]["m.relations"][
            "m.thread"]
        assert thread["count"] == 3
        assert thread["current_user_participated"] is participated
        latest = thread["latest_event"]
        assert latest["event_id"] == replies[2]
        assert latest["unsigned"]["m.relations"]["m.replace"]["event_id"] == late_edit

    # /sync timelines carry the aggregation as well.
    sync = await (await client.get(f"{V3}/sync", headers=carol.auth)).json()
    events = sync["rooms"]["join"][room_id]["timeline"]["events"]
    shown = next(e for e in events if e["event_id"] == root)
    assert shown["unsigned"]["m.relations"]["m.thread"]["count"] == 3


async def test_references_are_aggregated(client: TestClient, register, create_room) -> None:
    alice = await register("alice")
    room_id = await joined_room(client, create_room, alice)
    parent = await send(client, alice, room_id, text("parent"), "t0")
    ref = await send(client, alice, room_id, {"m.relates_to": {
        "rel_type": "m.reference", "event_id": parent}}, "t1", event_type="m.key.verification.done")
    bundled = (await get_event(client, alice, room_id, parent))["unsigned"]["m.relations"]
    assert bundled == {"m.reference": {"chunk": [{"event_id": ref}]}}


async def test_former_member_sees_relations_until_leave(client: TestClient, register,
                                                        create_room) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await joined_room(client, create_room, alice, bob)
    root = await send(client, alice, room_id, text("root"), "t0")
    early = await send(client, alice, room_id, in_thread(root, "early"), "t1")
    assert (await client.post(f"{V3}/rooms/{room_id}/leave", headers=bob.auth)).status == 200
    late = await send(client, alice, room_id, in_thread(root, "late"), "t2")
    body = await relations(client, bob, room_id, root)
    assert [e["event_id"] for e in body["chunk"]] == [early]
    # An event after the leave is not found for bob.
    body = await relations(client, bob, room_id, late, 404)
    assert body["errcode"] == "M_NOT_FOUND"


@pytest.mark.parametrize(("suffix", "params", "status", "errcode"), [
    ("", {"dir": "x"}, 400, "M_INVALID_PARAM"),
    ("", {"limit": "many"}, 400, "M_INVALID_PARAM"),
    ("", {"limit": "-3"}, 400, "M_INVALID_PARAM"),
    ("", {"recurse": "maybe"}, 400, "M_INVALID_PARAM"),
    ("", {"from": "bogus"}, 400, "M_INVALID_PARAM"),
    ("/m.thread", {"to": "bogus"}, 400, "M_INVALID_PARAM"),
])
async def test_relations_bad_input(client: TestClient, register, create_room, suffix: str,
                                   params: dict[str, str], status: int, errcode: str) -> None:
    alice = await register("alice")
    room_id = await joined_room(client, create_room, alice)
    root = await send(client, alice, room_id, text("root"), "t0")
    body = await relations(client, alice, room_id, root + suffix, status, **params)
    assert body["errcode"] == errcode


async def test_relations_unknown_forbidden_unauthenticated(client: TestClient, register,
                                                           create_room) -> None:
    alice, eve = await register("alice"), await register("eve")
    room_id = await joined_room(client, create_room, alice)
    other = await joined_room(client, create_room, alice)
    root = await send(client, alice, room_id, text("root"), "t0")
    assert (await relations(client, alice, room_id, "$unknown", 404))["errcode"] == "M_NOT_FOUND"
    assert (await relations(client, alice, other, root, 404))["errcode"] == "M_NOT_FOUND"
    assert (await relations(client, eve, room_id, root, 403))["errcode"] == "M_FORBIDDEN"
    resp = await client.get(f"{V1}/rooms/{room_id}/relations/{root}")
    assert resp.status == 401 and (await resp.json())["errcode"] == "M_MISSING_TOKEN"
    # /relations is a v1-only endpoint.
    resp = await client.get(f"{V3}/rooms/{room_id}/relations/{root}", headers=alice.auth)
    assert resp.status == 404 and (await resp.json())["errcode"] == "M_UNRECOGNIZED"


async def test_relations_match_the_spec_schema(client: TestClient, register, create_room
                                               ) -> None:
    spec = MatrixSpec.load()
    alice = await register("alice")
    room_id = await joined_room(client, create_room, alice)
    root = await send(client, alice, room_id, text("root"), "t0")
    await send(client, alice, room_id, in_thread(root, "one"), "t1")
    await send(client, alice, room_id, in_thread(root, "two"), "t2")
    await send(client, alice, room_id, edit_of(root, "root!"), "t3")
    for path, template, params in (
        (root, "/rooms/{roomId}/relations/{eventId}", {"limit": "1", "recurse": "true"}),
        (f"{root}/m.thread", "/rooms/{roomId}/relations/{eventId}/{relType}", {}),
        (f"{root}/m.thread/m.room.message",
         "/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}", {}),
    ):
        body = await relations(client, alice, room_id, path, **params)
        spec.check_response("relations", "GET", template, 200, body)
        for event in body["chunk"]:
            spec.check_event(event)
    missing = await relations(client, alice, room_id, "$nope", 404)
    spec.check_response("relations", "GET", "/rooms/{roomId}/relations/{eventId}", 404, missing)
    bundled = await get_event(client, alice, room_id, root)
    spec.check_event(bundled)
    spec.check_event(bundled["unsigned"]["m.relations"]["m.replace"])
    spec.check_event(bundled["unsigned"]["m.relations"]["m.thread"]["latest_event"])
