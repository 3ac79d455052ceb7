"""Seeded random bodies (a property test): never a 500, never a half-written row.

Moved from test_bad_input.py; the `env` and `spec` fixtures are in tests/api/conftest.py.
"""

import json
import random
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, Env, count

# --- random bodies: never a 500, never a half-written row -----------------------------------------
# hypothesis is not a dependency, so this is a seeded generator: valid bodies with one random
# change somewhere (a value replaced by random JSON, a key dropped or added), and wholly random
# bodies. Lone surrogates are left out: test_event_content_outside_canonical_json has them.

TEXT = "aZ09 _-:.@!#$*é中🎉\n\"\\/"
NAMES = ["name", "topic", "invite", "initial_state", "preset", "visibility", "room_version",
         "creation_content", "power_level_content_override", "is_direct", "room_alias_name",
         "type", "state_key", "content", "users", "events", "ban", "membership", "username",
         "password", "auth", "identifier", "user", "device_id", "inhibit_login", "room",
         "timeline", "state", "limit", "types", "not_types", "senders", "rooms", "msgtype",
         "body", "m.relates_to", "event_id", "rel_type", "join_rule", "alias", "alt_aliases"]
FUZZ_ROUNDS = 60


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.choice(["null", "bool", "int", "big", "float", "str", "str", "list", "dict"]
                      if depth < 3 else ["null", "bool", "int", "str"])
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, 1, -1, 50, 100, rng.randint(-1000, 1000)])
    if kind == "big":
        return rng.choice([2**53 - 1, -(2**53) + 1, 2**53, 2**63, -(2**64)])
    if kind == "float":
        return rng.choice([0.5, -1.25, 1e300])
    if kind == "str":
        return "".join(rng.choice(TEXT) for _ in range(rng.randint(0, 12)))
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(NAMES): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """``value`` with one random change somewhere inside it."""
    if isinstance(value, dict) and value and depth < 4 and rng.random() < 0.8:
        out, key, roll = dict(value), rng.choice(sorted(value)), rng.random()
        if roll < 0.6:
            out[key] = mutate(rng, value[key], depth + 1)
        elif roll < 0.8:
            del out[key]
        else:
            out[rng.choice(NAMES)] = random_json(rng)
        return out
    if isinstance(value, list) and value and depth < 4 and rng.random() < 0.7:
        out_list, i = list(value), rng.randrange(len(value))
        out_list[i] = mutate(rng, value[i], depth + 1)
        return out_list
    return random_json(rng)


STATE_BASES: dict[str, dict[str, Any]] = {
    "m.room.name": {"name": "n"}, "m.room.topic": {"topic": "t"},
    "m.room.join_rules": {"join_rule": "public"},
    "m.room.history_visibility": {"history_visibility": "shared"},
    "m.room.power_levels": {"users": {}, "users_default": 0, "events": {"m.room.name": 50},
                            "events_default": 0, "state_default": 50, "ban": 50, "kick": 50,
                            "redact": 50, "invite": 0, "notifications": {"room": 50}},
    "m.room.canonical_alias": {"alt_aliases": []}, "org.example.state": {"a": [1, {"b": 2}]},
}


def fuzz_target(name: str, env: Env, i: int) -> tuple[str, str, str, str, Any, tuple[str, ...]]:
    """(spec file, method, spec path, url, valid body, tables the request may write)."""
    room = env.path("/rooms/{room}")
    if name == "createRoom":
        return ("create_room", "POST", "/createRoom", f"{V3}/createRoom", {
            "name": "n", "topic": "t", "preset": "public_chat", "visibility": "private",
            "invite": ["@bob:test.local"], "is_direct": False, "room_version": "12",
            "room_alias_name": f"fz{i}", "creation_content": {"m.federate": True},
            "initial_state": [{"type": "m.room.guest_access", "state_key": "",
                               "content": {"guest_access": "can_join"}}],
            "power_level_content_override": {"events_default": 0, "events": {"m.x": 10}},
        }, ("rooms", "events", "room_aliases", "room_memberships"))
    if name == "send":
        return ("room_send", "PUT", "/rooms/{roomId}/send/{eventType}/{txnId}",
                f"{room}/send/m.room.message/fz{i}", {
                    "msgtype": "m.text", "body": "hi", "format": "org.matrix.custom.html",
                    "m.relates_to": {"rel_type": "m.annotation", "event_id": env.event_id,
                                     "key": "x"}}, ("events",))
    if name == "state":
        event_type = sorted(STATE_BASES)[i % len(STATE_BASES)]
        return ("room_state", "PUT", "/rooms/{roomId}/state/{eventType}/{stateKey}",
                f"{room}/state/{event_type}", STATE_BASES[event_type], ("events",))
    if name == "filter":
        return ("filter", "POST", "/user/{userId}/filter", env.path("/user/{me}/filter"), {
            "room": {"timeline": {"limit": 5, "types": ["m.room.*"], "not_senders": []},
                     "state": {"lazy_load_members": True}, "rooms": [env.room_id],
                     "include_leave": False},
            "account_data": {"types": ["m.*"]}, "presence": {"not_types": ["*"]},
            "event_fields": ["content.body"], "event_format": "client",
        }, ("filters",))
    if name == "login":
        return ("login", "POST", "/login", f"{V3}/login", {
            "type": "m.login.password", "password": "secret-pw", "device_id": "FUZZ",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "initial_device_display_name": "fuzz"}, ("devices", "access_tokens"))
    return ("registration", "POST", "/register", f"{V3}/register", {
        "username": f"fz{i}", "password": "pw", "auth": {"type": "m.login.dummy"},
        "inhibit_login": False, "device_id": "FUZZ", "initial_device_display_name": "fuzz",
    }, ("users", "devices", "access_tokens"))


@pytest.mark.parametrize("name", [
    pytest.param("createRoom"),
    "send",
    "state",
    "filter",
    "login",
    pytest.param("register"),
])
async def test_random_bodies(client: TestClient, env: Env, spec: MatrixSpec, name: str) -> None:
    rng = random.Random(f"edgehs-{name}")
    problems: list[str] = []
    statuses: list[int] = []
    for i in range(FUZZ_ROUNDS):
        api_file, method, spec_path, url, valid, tables = fuzz_target(name, env, i)
        body = random_json(rng) if i % 5 == 4 else mutate(rng, valid)
        before = [await count(client, t) for t in tables]
        resp = await client.request(method, url, json=body, headers=env.alice.auth)
        answer = await resp.json()
        statuses.append(resp.status)
        after = [await count(client, t) for t in tables]
        where = f"{method} {url} {json.dumps(body)[:300]} -> {resp.status} {answer}"
        if resp.status >= 500 or not 200 <= resp.status < 500:
            problems.append(f"server error: {where}")
        elif resp.status >= 400 and not str(answer.get("errcode", "")).startswith("M_"):
            problems.append(f"no errcode: {where}")
        elif resp.status >= 400 and after != before:
            problems.append(f"half-written {dict(zip(tables, after, strict=True))}: {where}")
        else:
            try:
                spec.check_response(api_file, method, spec_path, resp.status, answer)
            except AssertionError as exc:
                problems.append(f"off-spec: {where}: {exc}")
    assert not problems, "\n".join(problems)
    # not vacuous: both accepted and refused bodies were tried
    assert statuses.count(200) >= 5 and sum(400 <= s < 500 for s in statuses) >= 5, statuses
