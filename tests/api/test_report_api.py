"""Reporting content: events, rooms and users.

https://spec.matrix.org/v1.19/client-server-api/#reporting-content
"""

from typing import Any

from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, Env, expect

from edgehs.api.keys import HS_KEY
from edgehs.store.reports import Report

EVENT = "/rooms/{roomId}/report/{eventId}"


async def reports(client: TestClient) -> list[Report]:
    return await client.app[HS_KEY].reports.store.list()


async def test_report_event(client: TestClient, env: Env, spec: MatrixSpec) -> None:
    assert (await client.post(f"{V3}/join/{env.room_id}", headers=env.bob.auth,
                              json={})).status == 200
    url = f"{V3}/rooms/{env.room_id}/report/{env.event_id}"
    resp = await client.post(url, json={"reason": "rude", "score": -100}, headers=env.bob.auth)
    body = await resp.json()
    assert resp.status == 200 and body == {}
    spec.check_response("report_content", "POST", EVENT, 200, body)
    # An empty body is fine too (reason and score are optional).
    resp = await client.post(url, json={}, headers=env.bob.auth)
    assert resp.status == 200
    [second, first] = await reports(client)
    assert (first.reporter, first.room_id, first.event_id, first.reason, first.score) == (
        env.bob.user_id, env.room_id, env.event_id, "rude", -100)
    assert first.target_user_id is None and first.received_ts > 0
    assert second.reason is None and second.score is None


async def test_report_event_not_found(client: TestClient, env: Env, register: Any,
                                      create_room: Any, spec: MatrixSpec) -> None:
    carol = await register("carol")
    url = f"{V3}/rooms/{env.room_id}/report/{env.event_id}"
    # bob is not joined: 404, as for an unknown event
    body = await expect(await client.post(url, json={"reason": "x"}, headers=env.bob.auth),
                        404, "M_NOT_FOUND")
    spec.check_response("report_content", "POST", EVENT, 404, body)
    for room, event in ((env.room_id, "$unknown"), ("!nowhere:test.local", env.event_id)):
        resp = await client.post(f"{V3}/rooms/{room}/report/{event}", json={},
                                 headers=env.alice.auth)
        await expect(resp, 404, "M_NOT_FOUND")
    # an event of another room, through this room's URL
    other = await create_room(carol)
    resp = await client.put(f"{V3}/rooms/{other}/send/m.room.message/t1",
                            json={"msgtype": "m.text", "body": "x"}, headers=carol.auth)
    other_event = (await resp.json())["event_id"]
    resp = await client.post(f"{V3}/rooms/{env.room_id}/report/{other_event}", json={},
                             headers=env.alice.auth)
    await expect(resp, 404, "M_NOT_FOUND")
    # a redacted event
    resp = await client.put(f"{V3}/rooms/{env.room_id}/redact/{env.event_id}/r1", json={},
                            headers=env.alice.auth)
    assert resp.status == 200
    await expect(await client.post(url, json={}, headers=env.alice.auth), 404, "M_NOT_FOUND")
    assert await reports(client) == []


async def test_report_event_bad_input(client: TestClient, env: Env) -> None:
    url = f"{V3}/rooms/{env.room_id}/report/{env.event_id}"
    for body, errcode in (({"reason": 5}, "M_BAD_JSON"), ({"score": "bad"}, "M_BAD_JSON"),
                          ({"score": 5}, "M_INVALID_PARAM"), ({"score": -101}, "M_INVALID_PARAM")):
        await expect(await client.post(url, json=body, headers=env.alice.auth), 400, errcode)
    await expect(await client.post(url, data=b"{", headers=env.alice.auth), 400, "M_NOT_JSON")
    await expect(await client.post(url, data=b'{"reason": "\\ud800"}', headers=env.alice.auth),
                 400, "M_BAD_JSON")
    await expect(await client.post(url, json={}), 401, "M_MISSING_TOKEN")


async def test_report_room(client: TestClient, env: Env, spec: MatrixSpec) -> None:
    path = "/rooms/{roomId}/report"
    # the reporter need not be joined
    resp = await client.post(f"{V3}/rooms/{env.room_id}/report", json={"reason": ""},
                             headers=env.bob.auth)
    body = await resp.json()
    assert resp.status == 200 and body == {}
    spec.check_response("report_content", "POST", path, 200, body)
    [report] = await reports(client)
    assert (report.room_id, report.event_id, report.reason) == (env.room_id, None, "")
    body = await expect(await client.post(f"{V3}/rooms/!nope:test.local/report",
                                          json={"reason": "x"}, headers=env.bob.auth),
                        404, "M_NOT_FOUND")
    spec.check_response("report_content", "POST", path, 404, body)
    url = f"{V3}/rooms/{env.room_id}/report"
    await expect(await client.post(url, json={}, headers=env.bob.auth), 400, "M_MISSING_PARAM")
    await expect(await client.post(url, json={"reason": []}, headers=env.bob.auth), 400,
                 "M_BAD_JSON")


async def test_report_user(client: TestClient, env: Env, spec: MatrixSpec) -> None:
    path = "/users/{userId}/report"
    resp = await client.post(f"{V3}/users/{env.alice.user_id}/report",
                             json={"reason": "spam"}, headers=env.bob.auth)
    body = await resp.json()
    assert resp.status == 200 and body == {}
    spec.check_response("report_content", "POST", path, 200, body)
    [report] = await reports(client)
    assert (report.target_user_id, report.reporter, report.room_id) == (
        env.alice.user_id, env.bob.user_id, None)
    body = await expect(await client.post(f"{V3}/users/@ghost:test.local/report",
                                          json={"reason": "x"}, headers=env.bob.auth),
                        404, "M_NOT_FOUND")
    spec.check_response("report_content", "POST", path, 404, body)
    await expect(await client.post(f"{V3}/users/not-a-user/report", json={"reason": "x"},
                                   headers=env.bob.auth), 400, "M_INVALID_PARAM")
    await expect(await client.post(f"{V3}/users/{env.alice.user_id}/report", json={},
                                   headers=env.bob.auth), 400, "M_MISSING_PARAM")
