"""A 1:1 call's signalling between two matrix-nio clients through edgehs (a process).

The m.call.* events of VoIP version "1" are ordinary room events: alice invites, both trickle
ICE candidates, bob answers, alice selects bob's answer, bob hangs up. Each side must receive
the other's events in the order sent, through /sync, each matching the spec's event schema.
No TURN server is involved (the LAN setup of docs/calls.md): the candidates are host
candidates. https://spec.matrix.org/v1.19/client-server-api/#voice-over-ip
"""

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import nio
import pytest
from spec_schema import MatrixSpec

pytestmark = pytest.mark.integration

NioUser = Callable[[str], Awaitable[nio.AsyncClient]]
CALL_ID = "c1732543200"
SDP_TAIL = "s=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
OFFER_SDP = "v=0\r\no=- 1 2 IN IP4 192.168.1.20\r\n" + SDP_TAIL
ANSWER_SDP = "v=0\r\no=- 3 4 IN IP4 192.168.1.21\r\n" + SDP_TAIL


def host_candidate(ip: str, port: int) -> dict[str, Any]:
    return {"candidate": f"candidate:1 1 udp 2122260223 {ip} {port} typ host generation 0",
            "sdpMid": "0", "sdpMLineIndex": 0}


async def send(client: nio.AsyncClient, room_id: str, event_type: str,
               content: dict[str, Any]) -> str:
    resp = await client.room_send(room_id, event_type, content)
    assert isinstance(resp, nio.RoomSendResponse), f"{event_type}: {resp}"
    return str(resp.event_id)


async def call_events(client: nio.AsyncClient, room_id: str, since: str,
                      want: int, spec: MatrixSpec) -> tuple[list[dict[str, Any]], str]:
    """Long-poll until ``want`` m.call.* events from the other side arrived: (events, token)."""
    got: list[dict[str, Any]] = []
    for _ in range(20):
        resp = await client.sync(timeout=5000, since=since)
        assert isinstance(resp, nio.SyncResponse), resp
        since = resp.next_batch
        room = resp.rooms.join.get(room_id)
        for event in room.timeline.events if room else []:
            source = event.source
            if source["type"].startswith("m.call.") and source["sender"] != client.user_id:
                spec.check_event(source, with_room_id=False, require_known_type=True)
                got.append(source)
        if len(got) >= want:
            break
    return got, since


async def test_call_signalling_between_two_nio_clients(nio_user: NioUser,
                                                       http: aiohttp.ClientSession) -> None:
    spec = MatrixSpec.load()
    alice = await nio_user("alice")
    bob = await nio_user("bob")
    created = await alice.room_create(is_direct=True, invite=[bob.user_id],
                                      preset=nio.RoomPreset.trusted_private_chat)
    assert isinstance(created, nio.RoomCreateResponse), created
    room_id = created.room_id
    assert isinstance(await bob.join(room_id), nio.JoinResponse)
    a_since = (await alice.sync(timeout=0)).next_batch
    b_since = (await bob.sync(timeout=0)).next_batch

    # Without TURN configured, the clients get {} and use host candidates only.
    auth = {"Authorization": f"Bearer {alice.access_token}"}
    async with http.get("/_matrix/client/v3/voip/turnServer", headers=auth) as resp:
        assert resp.status == 200 and await resp.json() == {}

    common = {"call_id": CALL_ID, "version": "1"}
    a_party, b_party = "ALICEDEVICE", "BOBDEVICE"
    await send(alice, room_id, "m.call.invite", {**common, "party_id": a_party,
               "lifetime": 60000, "offer": {"type": "offer", "sdp": OFFER_SDP}})
    await send(alice, room_id, "m.call.candidates", {**common, "party_id": a_party,
               "candidates": [host_candidate("192.168.1.20", 50000)]})
    got, b_since = await call_events(bob, room_id, b_since, 2, spec)
    assert [(e["type"], e["content"]["party_id"]) for e in got] == [
        ("m.call.invite", a_party), ("m.call.candidates", a_party)]
    assert got[0]["content"]["offer"]["sdp"] == OFFER_SDP

    await send(bob, room_id, "m.call.candidates", {**common, "party_id": b_party,
               "candidates": [host_candidate("192.168.1.21", 50002)]})
    await send(bob, room_id, "m.call.answer", {**common, "party_id": b_party,
               "answer": {"type": "answer", "sdp": ANSWER_SDP}})
    got, a_since = await call_events(alice, room_id, a_since, 2, spec)
    assert [e["type"] for e in got] == ["m.call.candidates", "m.call.answer"]
    assert got[1]["content"]["answer"]["sdp"] == ANSWER_SDP

    await send(alice, room_id, "m.call.select_answer", {**common, "party_id": a_party,
               "selected_party_id": b_party})
    got, b_since = await call_events(bob, room_id, b_since, 1, spec)
    assert [(e["type"], e["content"]["selected_party_id"]) for e in got] == [
        ("m.call.select_answer", b_party)]

    await send(bob, room_id, "m.call.hangup", {**common, "party_id": b_party,
               "reason": "user_hangup"})
    got, a_since = await call_events(alice, room_id, a_since, 1, spec)
    assert [(e["type"], e["content"]["reason"]) for e in got] == [
        ("m.call.hangup", "user_hangup")]
    assert all(e["content"]["call_id"] == CALL_ID for e in got)
