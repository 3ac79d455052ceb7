"""Push notifications over HTTP: push rules and pushers (the notifications list and the counts
in /sync are in test_push_notifications_api.py).

https://spec.matrix.org/v1.19/client-server-api/#push-notifications

Every endpoint: success with its response checked against the spec's schema, and bad input with
the exact errcode.
"""

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, User, count, expect, get_sync

from edgehs.api.keys import HS_KEY

RULES = f"{V3}/pushrules/global"
# Nothing listens there: deliveries the tests cause fail at once, without DNS or waiting.
GATEWAY = "http://127.0.0.1:9/_matrix/push/v1/notify"
PUSHER = {
    "kind": "http", "app_id": "org.example.app", "pushkey": "key-1",
    "app_display_name": "Example", "device_display_name": "Phone", "lang": "en",
    "data": {"url": GATEWAY, "format": "event_id_only"},
}


async def _json(resp: Any, status: int = 200) -> Any:
    body = await resp.json()
    assert resp.status == status, body
    return body


async def _rules(client: TestClient, user: User) -> dict[str, Any]:
    return dict(await _json(await client.get(f"{RULES}/", headers=user.auth)))


def _ids(ruleset: dict[str, Any], kind: str) -> list[str]:
    return [r["rule_id"] for r in ruleset[kind]]


async def _send(client: TestClient, user: User, room_id: str, txn: str,
                content: dict[str, Any] | None = None) -> str:
    resp = await client.put(f"{V3}/rooms/{room_id}/send/m.room.message/{txn}",
                            json=content or {"msgtype": "m.text", "body": txn},
                            headers=user.auth)
    return str((await _json(resp))["event_id"])


# --- reading rules -------------------------------------------------------------------------------

async def test_get_all_rules(client: TestClient, register: Any, spec: MatrixSpec) -> None:
    alice = await register("alice")
    resp = await client.get(f"{V3}/pushrules/", headers=alice.auth)
    body = await _json(resp)
    spec.check_response("pushrules", "GET", "/pushrules/", 200, body)
    assert _ids(body["global"], "override")[:2] == [".m.rule.master", ".m.rule.suppress_notices"]
    assert _ids(body["global"], "underride")[-1] == ".m.rule.encrypted"
    resp = await client.get(f"{RULES}/", headers=alice.auth)
    glob = await _json(resp)
    spec.check_response("pushrules", "GET", "/pushrules/global/", 200, glob)
    assert glob == body["global"]
    # the rules of one kind, as Synapse lists them (not in the spec's API)
    for kind in ("override", "content", "room", "sender", "underride"):
        resp = await client.get(f"{RULES}/{kind}/", headers=alice.auth)
        assert await _json(resp) == glob[kind]
    invite = next(r for r in glob["override"] if r["rule_id"] == ".m.rule.invite_for_me")
    assert invite["conditions"][2] == {"kind": "event_match", "key": "state_key",
                                       "pattern": alice.user_id}


async def test_get_one_rule_enabled_and_actions(client: TestClient, register: Any,
                                                spec: MatrixSpec) -> None:
    alice = await register("alice")
    path = "/pushrules/global/{kind}/{ruleId}"
    resp = await client.get(f"{RULES}/override/.m.rule.master", headers=alice.auth)
    rule = await _json(resp)
    spec.check_response("pushrules", "GET", path, 200, rule)
    assert rule == {"rule_id": ".m.rule.master", "default": True, "enabled": False,
                    "conditions": [], "actions": []}
    resp = await client.get(f"{RULES}/override/.m.rule.master/enabled", headers=alice.auth)
    body = await _json(resp)
    spec.check_response("pushrules", "GET", path + "/enabled", 200, body)
    assert body == {"enabled": False}
    resp = await client.get(f"{RULES}/underride/.m.rule.call/actions", headers=alice.auth)
    body = await _json(resp)
    spec.check_response("pushrules", "GET", path + "/actions", 200, body)
    assert body == {"actions": ["notify", {"set_tweak": "sound", "value": "ring"}]}


@pytest.mark.parametrize("suffix", ["", "/enabled", "/actions"])
async def test_get_missing_rule(client: TestClient, register: Any, spec: MatrixSpec,
                                suffix: str) -> None:
    alice = await register("alice")
    resp = await client.get(f"{RULES}/override/nope{suffix}", headers=alice.auth)
    body = await expect(resp, 404, "M_NOT_FOUND")
    spec.check_response("pushrules", "GET", "/pushrules/global/{kind}/{ruleId}" + suffix,
                        404, body)
    # a default rule under the wrong kind is not there either
    resp = await client.get(f"{RULES}/content/.m.rule.master{suffix}", headers=alice.auth)
    await expect(resp, 404, "M_NOT_FOUND")


async def test_unknown_kind(client: TestClient, register: Any) -> None:
    alice = await register("alice")
    for method in ("GET", "DELETE"):
        resp = await client.request(method, f"{RULES}/bogus/x", headers=alice.auth)
        await expect(resp, 400, "M_INVALID_PARAM")
    resp = await client.put(f"{RULES}/bogus/x", json={"actions": []}, headers=alice.auth)
    await expect(resp, 400, "M_INVALID_PARAM")
    resp = await client.get(f"{RULES}/bogus/", headers=alice.auth)
    await expect(resp, 400, "M_INVALID_PARAM")


async def test_needs_a_token(client: TestClient) -> None:
    resp = await client.get(f"{RULES}/")
    await expect(resp, 401, "M_MISSING_TOKEN")


# --- creating, ordering, deleting ----------------------------------------------------------------

async def test_put_rules_and_order(client: TestClient, register: Any, spec: MatrixSpec) -> None:
    alice = await register("alice")
    path = "/pushrules/global/{kind}/{ruleId}"
    for rule_id, query in (("a", ""), ("b", ""), ("c", "?before=a"), ("d", "?after=a")):
        resp = await client.put(f"{RULES}/content/{rule_id}{query}", headers=alice.auth,
                                json={"pattern": f"{rule_id}*", "actions": ["notify"]})
        body = await _json(resp)
        spec.check_response("pushrules", "PUT", path, 200, body)
        assert body == {}
    ruleset = await _rules(client, alice)
    assert _ids(ruleset, "content") == ["b", "c", "a", "d", ".m.rule.contains_user_name"]
    resp = await client.get(f"{RULES}/content/c", headers=alice.auth)
    assert await _json(resp) == {"rule_id": "c", "default": False, "enabled": True,
                                 "pattern": "c*", "actions": ["notify"]}
    # an update keeps its place and its enabled flag
    resp = await client.put(f"{RULES}/content/a/enabled", json={"enabled": False},
                            headers=alice.auth)
    await _json(resp)
    resp = await client.put(f"{RULES}/content/a", headers=alice.auth,
                            json={"pattern": "new", "actions": ["dont_notify"]})
    await _json(resp)
    resp = await client.get(f"{RULES}/content/a", headers=alice.auth)
    assert await _json(resp) == {"rule_id": "a", "default": False, "enabled": False,
                                 "pattern": "new", "actions": []}
    assert _ids(await _rules(client, alice), "content")[:4] == ["b", "c", "a", "d"]
    resp = await client.delete(f"{RULES}/content/c", headers=alice.auth)
    body = await _json(resp)
    spec.check_response("pushrules", "DELETE", path, 200, body)
    assert _ids(await _rules(client, alice), "content")[:3] == ["b", "a", "d"]
    resp = await client.delete(f"{RULES}/content/c", headers=alice.auth)
    await expect(resp, 404, "M_NOT_FOUND")


async def test_override_room_sender_and_underride(client: TestClient, register: Any) -> None:
    alice = await register("alice")
    cond = [{"kind": "event_match", "key": "content.body", "pattern": "beer"},
            {"kind": "room_member_count", "is": "<=10"}]
    for kind, rule_id, body in (
        ("override", "beer", {"conditions": cond, "actions": ["notify"]}),
        ("room", "!r:test.local", {"actions": ["dont_notify"]}),
        ("sender", "@spam:test.local", {"actions": []}),
        ("underride", "all", {"actions": ["notify"]}),
    ):
        resp = await client.put(f"{RULES}/{kind}/{rule_id}", json=body, headers=alice.auth)
        await _json(resp)
    ruleset = await _rules(client, alice)
    assert _ids(ruleset, "override")[:2] == [".m.rule.master", "beer"]
    assert ruleset["override"][1]["conditions"] == cond
    assert ruleset["room"] == [{"rule_id": "!r:test.local", "default": False, "enabled": True,
                                "actions": []}]
    assert _ids(ruleset, "sender") == ["@spam:test.local"]
    assert ruleset["underride"][0] == {"rule_id": "all", "default": False, "enabled": True,
                                       "conditions": [], "actions": ["notify"]}


@pytest.mark.parametrize(("url", "body", "status", "errcode"), [
    ("content/x", {"actions": ["notify"]}, 400, "M_MISSING_PARAM"),          # no pattern
    ("content/x", {"pattern": 3, "actions": []}, 400, "M_BAD_JSON"),
    ("override/x", {"conditions": []}, 400, "M_MISSING_PARAM"),              # no actions
    ("override/x", {"actions": "notify"}, 400, "M_BAD_JSON"),
    ("override/x", {"actions": ["explode"]}, 400, "M_INVALID_PARAM"),
    ("override/x", {"actions": [], "conditions": [{"key": "type"}]}, 400, "M_BAD_JSON"),
    ("override/x", {"actions": [], "conditions": "all"}, 400, "M_BAD_JSON"),
    ("override/.m.rule.master", {"actions": []}, 400, "M_INVALID_PARAM"),   # reserved
    ("override/.mine", {"actions": []}, 400, "M_INVALID_PARAM"),
    ("override/a%5Cb", {"actions": []}, 400, "M_INVALID_PARAM"),            # backslash
    ("override/x?before=nope", {"actions": []}, 400, "M_UNKNOWN"),
    ("override/x?after=.m.rule.master", {"actions": []}, 400, "M_UNKNOWN"),
])
async def test_put_rule_bad_input(client: TestClient, register: Any, spec: MatrixSpec, url: str,
                                  body: dict[str, Any], status: int, errcode: str) -> None:
    alice = await register("alice")
    resp = await client.put(f"{RULES}/{url}", json=body, headers=alice.auth)
    error = await expect(resp, status, errcode)
    spec.check_response("pushrules", "PUT", "/pushrules/global/{kind}/{ruleId}", status, error)


async def test_put_rule_body_must_be_json(client: TestClient, register: Any) -> None:
    alice = await register("alice")
    resp = await client.put(f"{RULES}/override/x", data=b"{nope", headers=alice.auth)
    await expect(resp, 400, "M_NOT_JSON")
    resp = await client.put(f"{RULES}/override/x", data=b"", headers=alice.auth)
    await expect(resp, 400, "M_NOT_JSON")


async def test_cannot_delete_default_rules(client: TestClient, register: Any) -> None:
    alice = await register("alice")
    resp = await client.delete(f"{RULES}/override/.m.rule.master", headers=alice.auth)
    await expect(resp, 404, "M_NOT_FOUND")


# --- enabled and actions -------------------------------------------------------------------------

async def test_enable_and_actions_of_default_rules(client: TestClient, register: Any,
                                                   spec: MatrixSpec) -> None:
    alice = await register("alice")
    path = "/pushrules/global/{kind}/{ruleId}"
    resp = await client.put(f"{RULES}/override/.m.rule.master/enabled", json={"enabled": True},
                            headers=alice.auth)
    body = await _json(resp)
    spec.check_response("pushrules", "PUT", path + "/enabled", 200, body)
    resp = await client.put(f"{RULES}/underride/.m.rule.message/actions",
                            json={"actions": ["notify", {"set_tweak": "sound", "value": "x"}]},
                            headers=alice.auth)
    body = await _json(resp)
    spec.check_response("pushrules", "PUT", path + "/actions", 200, body)
    ruleset = await _rules(client, alice)
    assert ruleset["override"][0]["enabled"] is True
    message = next(r for r in ruleset["underride"] if r["rule_id"] == ".m.rule.message")
    assert message["actions"] == ["notify", {"set_tweak": "sound", "value": "x"}]
    assert message["default"] is True and message["enabled"] is True
    # enabling again keeps the changed actions
    resp = await client.put(f"{RULES}/underride/.m.rule.message/enabled",
                            json={"enabled": False}, headers=alice.auth)
    await _json(resp)
    resp = await client.get(f"{RULES}/underride/.m.rule.message", headers=alice.auth)
    rule = await _json(resp)
    assert rule["enabled"] is False and rule["actions"][0] == "notify"


@pytest.mark.parametrize(("suffix", "body", "status", "errcode"), [
    ("enabled", {}, 400, "M_MISSING_PARAM"),
    ("enabled", {"enabled": "yes"}, 400, "M_BAD_JSON"),
    ("actions", {}, 400, "M_MISSING_PARAM"),
    ("actions", {"actions": {}}, 400, "M_BAD_JSON"),
    ("actions", {"actions": ["explode"]}, 400, "M_INVALID_PARAM"),
])
async def test_enabled_actions_bad_input(client: TestClient, register: Any, suffix: str,
                                         body: dict[str, Any], status: int,
                                         errcode: str) -> None:
    alice = await register("alice")
    resp = await client.put(f"{RULES}/override/.m.rule.master/{suffix}", json=body,
                            headers=alice.auth)
    await expect(resp, status, errcode)


@pytest.mark.parametrize(("suffix", "body"), [
    ("enabled", {"enabled": True}), ("actions", {"actions": []}),
])
async def test_enabled_actions_missing_rule(client: TestClient, register: Any, spec: MatrixSpec,
                                            suffix: str, body: dict[str, Any]) -> None:
    alice = await register("alice")
    resp = await client.put(f"{RULES}/room/!nope:test.local/{suffix}", json=body,
                            headers=alice.auth)
    error = await expect(resp, 404, "M_NOT_FOUND")
    spec.check_response("pushrules", "PUT", "/pushrules/global/{kind}/{ruleId}/" + suffix,
                        404, error)


async def test_rule_changes_reach_sync_as_account_data(client: TestClient, register: Any
                                                       ) -> None:
    alice = await register("alice")
    initial = await get_sync(client, alice)
    [rules] = [e for e in initial["account_data"]["events"] if e["type"] == "m.push_rules"]
    assert rules["content"]["global"] == await _rules(client, alice)
    resp = await client.put(f"{RULES}/sender/@bob:test.local", json={"actions": []},
                            headers=alice.auth)
    await _json(resp)
    sync = await get_sync(client, alice, initial["next_batch"])
    [rules] = [e for e in sync["account_data"]["events"] if e["type"] == "m.push_rules"]
    assert _ids(rules["content"]["global"], "sender") == ["@bob:test.local"]
    # still there on a later initial sync, and only once
    again = await get_sync(client, alice)
    assert [e["type"] for e in again["account_data"]["events"]].count("m.push_rules") == 1


# --- pushers ------------------------------------------------------------------------------------

async def test_pushers(client: TestClient, register: Any, spec: MatrixSpec) -> None:
    alice, bob = await register("alice"), await register("bob")
    resp = await client.get(f"{V3}/pushers", headers=alice.auth)
    body = await _json(resp)
    spec.check_response("pusher", "GET", "/pushers", 200, body)
    assert body == {"pushers": []}
    resp = await client.post(f"{V3}/pushers/set", json=PUSHER, headers=alice.auth)
    body = await _json(resp)
    spec.check_response("pusher", "POST", "/pushers/set", 200, body)
    resp = await client.get(f"{V3}/pushers", headers=alice.auth)
    body = await _json(resp)
    spec.check_response("pusher", "GET", "/pushers", 200, body)
    assert body["pushers"] == [{k: v for k, v in PUSHER.items() if k != "append"}]
    # update in place (same app_id + pushkey)
    resp = await client.post(f"{V3}/pushers/set", headers=alice.auth,
                             json={**PUSHER, "device_display_name": "New phone",
                                   "profile_tag": "t"})
    await _json(resp)
    [pusher] = (await _json(await client.get(f"{V3}/pushers", headers=alice.auth)))["pushers"]
    assert pusher["device_display_name"] == "New phone" and pusher["profile_tag"] == "t"
    # bob takes the same pushkey: with append it is shared, without it alice loses hers
    resp = await client.post(f"{V3}/pushers/set", json={**PUSHER, "append": True},
                             headers=bob.auth)
    await _json(resp)
    assert await count(client, "pushers") == 2
    resp = await client.post(f"{V3}/pushers/set", json=PUSHER, headers=bob.auth)
    await _json(resp)
    assert (await _json(await client.get(f"{V3}/pushers", headers=alice.auth)))["pushers"] == []
    # kind null deletes
    resp = await client.post(f"{V3}/pushers/set", headers=bob.auth,
                             json={"kind": None, "app_id": PUSHER["app_id"],
                                   "pushkey": PUSHER["pushkey"]})
    await _json(resp)
    assert await count(client, "pushers") == 0


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in PUSHER.items() if k != key}


@pytest.mark.parametrize(("body", "errcode"), [
    (_without("kind"), "M_MISSING_PARAM"),
    (_without("app_id"), "M_MISSING_PARAM"),
    (_without("pushkey"), "M_MISSING_PARAM"),
    ({**PUSHER, "pushkey": None}, "M_MISSING_PARAM"),
    ({**PUSHER, "app_id": 5}, "M_BAD_JSON"),
    (_without("lang"), "M_MISSING_PARAM"),
    (_without("data"), "M_MISSING_PARAM"),
    (_without("app_display_name"), "M_MISSING_PARAM"),
    ({**PUSHER, "data": {}}, "M_MISSING_PARAM"),
    ({**PUSHER, "data": {"url": "https://push.example.org/notify"}}, "M_INVALID_PARAM"),
    ({**PUSHER, "data": {"url": "ftp://x/_matrix/push/v1/notify"}}, "M_INVALID_PARAM"),
    ({**PUSHER, "data": {"url": GATEWAY, "format": "full"}}, "M_INVALID_PARAM"),
    ({**PUSHER, "data": {"url": 5}}, "M_BAD_JSON"),
    ({**PUSHER, "data": "x"}, "M_BAD_JSON"),
    ({**PUSHER, "kind": "email"}, "M_INVALID_PARAM"),
    ({**PUSHER, "kind": 1}, "M_BAD_JSON"),
    ({**PUSHER, "pushkey": "k" * 513}, "M_INVALID_PARAM"),
    ({**PUSHER, "app_id": "a" * 65}, "M_INVALID_PARAM"),
    ({**PUSHER, "lang": 7}, "M_BAD_JSON"),
    ({**PUSHER, "append": "yes"}, "M_BAD_JSON"),
])
async def test_set_pusher_bad_input(client: TestClient, register: Any, spec: MatrixSpec,
                                    body: dict[str, Any], errcode: str) -> None:
    alice = await register("alice")
    resp = await client.post(f"{V3}/pushers/set", json=body, headers=alice.auth)
    error = await expect(resp, 400, errcode)
    spec.check_response("pusher", "POST", "/pushers/set", 400, error)
    assert await count(client, "pushers") == 0


async def test_pusher_rows_queued_in_the_event_transaction(client: TestClient, register: Any,
                                                           create_room: Any) -> None:
    alice, bob = await register("alice"), await register("bob")
    room_id = await create_room(alice, preset="public_chat")
    await _json(await client.post(f"{V3}/join/{room_id}", json={}, headers=bob.auth))
    resp = await client.post(f"{V3}/pushers/set", json=PUSHER, headers=bob.auth)
    await _json(resp)
    before = await count(client, "push_notifications")
    event_id = await _send(client, alice, room_id, "queued")
    assert await count(client, "push_notifications") == before + 1
    db = client.app[HS_KEY].db
    [(destination, kind, payload)] = await db.fetchall(
        "SELECT destination, kind, payload FROM outbox WHERE destination LIKE 'push:%'")
    pusher_id = await db.fetchval("SELECT id FROM pushers")
    assert (destination, kind) == (f"push:{pusher_id}", "push")
    assert json.loads(payload)["event_id"] == event_id
