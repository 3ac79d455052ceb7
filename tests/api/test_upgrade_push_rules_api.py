"""Joining the replacement of an upgraded room copies the user's push rules about the old room
(a room rule, or a rule with a room_id condition), as Synapse does.

https://spec.matrix.org/v1.19/client-server-api/#room-upgrades
https://spec.matrix.org/v1.19/client-server-api/#push-rules
"""

from typing import Any
from urllib.parse import quote

from aiohttp.test_utils import TestClient
from support import V3, User


async def _put_rule(client: TestClient, user: User, kind: str, rule_id: str,
                    body: dict[str, Any]) -> None:
    resp = await client.put(f"{V3}/pushrules/global/{kind}/{quote(rule_id)}", json=body,
                            headers=user.auth)
    assert resp.status == 200, await resp.text()


async def _rules(client: TestClient, user: User, kind: str) -> dict[str, Any]:
    resp = await client.get(f"{V3}/pushrules/global/", headers=user.auth)
    assert resp.status == 200, await resp.text()
    return {r["rule_id"]: r for r in (await resp.json())[kind]}


async def test_push_rules_follow_the_upgrade(client: TestClient, register: Any,
                                             create_room: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    old = await create_room(alice, preset="public_chat", room_version="11")
    resp = await client.post(f"{V3}/join/{old}", json={}, headers=bob.auth)
    assert resp.status == 200
    condition = {"kind": "event_match", "key": "room_id", "pattern": old}
    for user in (alice, bob):
        await _put_rule(client, user, "room", old, {"actions": ["notify"]})
    await _put_rule(client, bob, "override", "quiet-old", {
        "actions": [], "conditions": [condition]})
    await _put_rule(client, bob, "override", "other", {"actions": [], "conditions": [
        {"kind": "event_match", "key": "room_id", "pattern": "!elsewhere:test.local"}]})
    resp = await client.post(f"{V3}/rooms/{old}/upgrade", json={"new_version": "12"},
                             headers=alice.auth)
    assert resp.status == 200, await resp.text()
    new = (await resp.json())["replacement_room"]
    # The upgrading user joined the new room by creating it.
    assert new in await _rules(client, alice, "room")
    assert new not in await _rules(client, bob, "room")
    resp = await client.post(f"{V3}/join/{new}", json={}, headers=bob.auth)
    assert resp.status == 200
    room_rules = await _rules(client, bob, "room")
    assert room_rules[new]["actions"] == ["notify"] and old in room_rules
    override = await _rules(client, bob, "override")
    assert override[new]["conditions"] == [{**condition, "pattern": new}]
    assert {"quiet-old", "other"} <= override.keys()
    assert sum(1 for r in override.values() if not r["default"]) == 3
