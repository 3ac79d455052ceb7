"""A real application service built with mautrix-python against edgehs started as a process.

The registration is written by ``edgehs appservice new bridge --url ... --users ... --aliases
... -c edgehs.yaml`` before edgehs starts; the bridge is mautrix's ``AppService`` (its own
aiohttp server on a loopback port, ``IntentAPI``s for its virtual users). Normal users are
matrix-nio clients. https://spec.matrix.org/v1.19/application-service-api/
"""

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import nio
import pytest
from as_support import (
    BRIDGE_MARKS,
    BRIDGE_USERS,
    SERVER_NAME,
    Bridge,
    NioUser,
    appservice_new,
    call,
    load_registration,
)
from mautrix.errors import MatrixRequestError
from mautrix.types import RoomAlias, RoomCreatePreset, RoomDirectoryVisibility

pytestmark = BRIDGE_MARKS

USERS = BRIDGE_USERS
ALIASES = "#bridge_.*:" + re.escape(SERVER_NAME)
LAZY_ALIAS = f"#bridge_foo:{SERVER_NAME}"
REFUSED_ALIAS = f"#bridge_nothing:{SERVER_NAME}"  # in the namespace; the bridge says 404


class LazyRooms:
    """The bridge's alias query handler: creates ``#bridge_foo`` on demand, refuses others."""

    def __init__(self) -> None:
        self.bridge: Bridge | None = None
        self.asked: list[str] = []
        self.created: dict[str, str] = {}

    async def __call__(self, alias: RoomAlias) -> dict[str, Any] | None:
        self.asked.append(alias)
        if alias != LAZY_ALIAS or self.bridge is None:
            return None  # mautrix answers 404
        room_id = await self.bridge.bot.create_room(
            alias_localpart=alias[1:].split(":", 1)[0], preset=RoomCreatePreset.PUBLIC,
            visibility=RoomDirectoryVisibility.PRIVATE, name="Lazily bridged",
        )
        self.created[alias] = room_id
        # The spec's answer is {}; mautrix turns an empty (falsy) answer into 404.
        return {"room_id": room_id}


@pytest.fixture
def server_prepare(as_port: int) -> Callable[[Any], None]:
    """Write the bridge's registration with the CLI before edgehs starts."""
    def prepare(proc: Any) -> None:
        appservice_new(proc.config_path, "bridge", f"http://127.0.0.1:{as_port}",
                       "--users", USERS, "--aliases", ALIASES)
    return prepare


@pytest.fixture
def lazy_rooms() -> LazyRooms:
    return LazyRooms()


@pytest.fixture
async def bridge(server: Any, as_port: int, lazy_rooms: LazyRooms) -> AsyncIterator[Bridge]:
    registration = load_registration(server.data_dir / "appservices" / "bridge.yaml")
    made = Bridge(server.base_url, registration, as_port, query_alias=lazy_rooms)
    lazy_rooms.bridge = made
    try:
        await made.start()
        yield made
    finally:
        await made.stop()


async def text(client: nio.AsyncClient, room_id: str, body: str) -> str:
    resp = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body})
    assert isinstance(resp, nio.RoomSendResponse), f"send failed: {resp}"
    return str(resp.event_id)


async def bridged_room(nio_user: NioUser, bridge: Bridge,
                       ghost_localpart: str = "bridge_listener") -> tuple[nio.AsyncClient, str]:
    """Alice's public room with one of the bridge's virtual users joined: (alice, room id)."""
    alice = await nio_user("alice")
    created = await alice.room_create(name="Bridged", preset=nio.RoomPreset.public_chat)
    assert isinstance(created, nio.RoomCreateResponse), created
    ghost = bridge.intent(f"@{ghost_localpart}:{SERVER_NAME}")
    await ghost.ensure_registered()
    await ghost.ensure_joined(created.room_id)
    return alice, created.room_id


def assert_one_txn_per_event(bridge: Bridge) -> None:
    """Each transaction id always carries the same events, and each event one transaction id."""
    by_txn: dict[str, list[str]] = {}
    txn_of: dict[str, str] = {}
    for delivery in bridge.deliveries:
        if delivery.txn_id is None:
            continue
        first = by_txn.setdefault(delivery.txn_id, delivery.event_ids)
        assert first == delivery.event_ids, (
            f"txn {delivery.txn_id} was resent with other events: {first} vs "
            f"{delivery.event_ids}")
        for event_id in delivery.event_ids:
            assert txn_of.setdefault(event_id, delivery.txn_id) == delivery.txn_id, (
                f"{event_id} came in txn {txn_of[event_id]} and in txn {delivery.txn_id}")


async def test_ping_both_ways(bridge: Bridge, http: aiohttp.ClientSession) -> None:
    """AS -> POST /_matrix/client/v1/appservice/bridge/ping -> edgehs -> POST
    /_matrix/app/v1/ping on the bridge (mautrix checks the hs_token) -> 200 duration_ms."""
    assert bridge.appservice is not None
    await bridge.appservice.ping_self("ping-1")  # raises MatrixRequestError unless 200
    pings = [d for d in bridge.deliveries if d.path == "/_matrix/app/v1/ping"]
    assert [(d.method, d.body) for d in pings] == [("POST", {"transaction_id": "ping-1"})]

    auth = {"Authorization": f"Bearer {bridge.registration.as_token}"}
    body = await call(http, "POST", "/_matrix/client/v1/appservice/bridge/ping", json={},
                      headers=auth)
    assert isinstance(body["duration_ms"], int) and body["duration_ms"] >= 0, body

    await bridge.stop()  # nobody listens on the bridge's port any more
    await call(http, "POST", "/_matrix/client/v1/appservice/bridge/ping", 502,
               "M_CONNECTION_FAILED", json={"transaction_id": "ping-2"}, headers=auth)


async def test_virtual_user_registration(bridge: Bridge, nio_client: Callable[..., Any],
                                         http: aiohttp.ClientSession) -> None:
    ghost_id = f"@bridge_alice:{SERVER_NAME}"
    ghost = bridge.intent(ghost_id)
    await ghost.ensure_registered()  # m.login.application_service, inhibit_login
    assert (await ghost.whoami()).user_id == ghost_id  # masquerading as the new user works
    await ghost.set_displayname("Alice (bridged)")

    profile = await call(http, "GET", f"/_matrix/client/v3/profile/{ghost_id}")
    assert profile.get("displayname") == "Alice (bridged)", profile
    auth = {"Authorization": f"Bearer {bridge.registration.as_token}"}
    await call(http, "POST", "/_matrix/client/v3/register", 400, "M_USER_IN_USE",
               headers=auth, json={"type": "m.login.application_service",
                                   "username": "bridge_alice"})
    # The namespace is exclusive: people cannot take a bridge user name.
    reg = await nio_client().register("bridge_bob", "a password")
    assert isinstance(reg, nio.responses.RegisterErrorResponse), reg
    assert reg.status_code == "M_EXCLUSIVE", reg


async def test_masquerading_reaches_a_normal_user(bridge: Bridge, nio_user: NioUser) -> None:
    alice, room_id = await bridged_room(nio_user, bridge, "bridge_carol")
    ghost = bridge.intent(f"@bridge_carol:{SERVER_NAME}")
    event_id = await ghost.send_text(room_id, "hello from the bridge")

    seen: dict[str, Any] = {}
    for _ in range(6):
        resp = await alice.sync(timeout=5000, full_state=False)
        assert isinstance(resp, nio.SyncResponse), resp
        room = resp.rooms.join.get(room_id)
        for event in room.timeline.events if room else []:
            seen[event.event_id] = event.source
        if event_id in seen:
            break
    assert event_id in seen, f"alice never saw {event_id}: {list(seen)}"
    assert seen[event_id]["sender"] == f"@bridge_carol:{SERVER_NAME}"
    assert seen[event_id]["content"]["body"] == "hello from the bridge"


async def test_lazy_alias_creation(bridge: Bridge, lazy_rooms: LazyRooms,
                                   nio_user: NioUser) -> None:
    alice = await nio_user("alice")
    joined = await alice.join(LAZY_ALIAS)  # unknown: edgehs asks the bridge, then retries
    assert isinstance(joined, nio.JoinResponse), joined
    assert lazy_rooms.asked == [LAZY_ALIAS]
    assert joined.room_id == lazy_rooms.created[LAZY_ALIAS]
    resolved = await alice.room_resolve_alias(LAZY_ALIAS)
    assert isinstance(resolved, nio.RoomResolveAliasResponse), resolved
    assert resolved.room_id == joined.room_id
    assert lazy_rooms.asked == [LAZY_ALIAS], "a known alias must not be queried again"

    refused = await alice.join(REFUSED_ALIAS)
    assert isinstance(refused, nio.JoinError) and refused.status_code == "M_NOT_FOUND", refused
    outside = await alice.join(f"#elsewhere:{SERVER_NAME}")
    assert isinstance(outside, nio.JoinError) and outside.status_code == "M_NOT_FOUND", outside
    assert lazy_rooms.asked == [LAZY_ALIAS, REFUSED_ALIAS], "only namespaced aliases are asked"


async def test_fifty_messages_arrive_in_order(bridge: Bridge, nio_user: NioUser) -> None:
    alice, room_id = await bridged_room(nio_user, bridge)
    sent = [await text(alice, room_id, f"ordered {i}") for i in range(50)]
    bodies = await bridge.wait_for_bodies(room_id, 50)
    assert bodies == [f"ordered {i}" for i in range(50)]
    assert [r.event_id for r in bridge.messages(room_id)] == sent
    assert all(r.sender == alice.user_id for r in bridge.messages(room_id))
    puts = [d for d in bridge.deliveries if d.txn_id is not None]
    assert puts and all(d.path.startswith("/_matrix/app/v1/transactions/") for d in puts)
    assert_one_txn_per_event(bridge)
    assert len({d.txn_id for d in puts}) == len(puts), "nothing needed a resend"


async def test_bridge_down_then_up_loses_nothing(bridge: Bridge, nio_user: NioUser) -> None:
    alice, room_id = await bridged_room(nio_user, bridge)
    await text(alice, room_id, "while up")
    await bridge.wait_for_bodies(room_id, 1)

    await bridge.stop()
    sent = [await text(alice, room_id, f"while down {i}") for i in range(20)]
    await asyncio.sleep(1.5)  # edgehs has failed at least twice and is backing off
    assert bridge.bodies(room_id) == ["while up"]
    await bridge.start()  # same port, a fresh AppService

    bodies = await bridge.wait_for_bodies(room_id, 21)
    assert bodies == ["while up", *(f"while down {i}" for i in range(20))]
    assert [r.event_id for r in bridge.messages(room_id)][1:] == sent
    assert_one_txn_per_event(bridge)


async def test_edgehs_restart_with_backlog_loses_nothing(server: Any, bridge: Bridge,
                                                         nio_user: NioUser) -> None:
    alice, room_id = await bridged_room(nio_user, bridge)
    expected = [f"before {i}" for i in range(5)]
    for body in expected:
        await text(alice, room_id, body)
    await bridge.wait_for_bodies(room_id, 5)

    await bridge.stop()
    backlog = [f"backlog {i}" for i in range(20)]
    for body in backlog:
        await text(alice, room_id, body)
    await asyncio.sleep(0.5)
    assert bridge.bodies(room_id) == expected, "the bridge was down: nothing new arrived"
    await server.stop()  # SIGTERM with deliveries pending: still a clean exit 0
    await server.start()
    # The first transaction after the restart is handled but its 200 is "lost": edgehs must
    # resend it under the same txnId, and mautrix must drop the duplicate.
    bridge.lose_answers = 1
    await bridge.start()
    after = [f"after {i}" for i in range(5)]
    for body in after:
        await text(alice, room_id, body)

    expected += backlog + after
    bodies = await bridge.wait_for_bodies(room_id, len(expected))
    await asyncio.sleep(0.3)  # anything extra (a duplicate) would show up now
    assert bridge.bodies(room_id) == expected
    assert bodies == expected
    assert_one_txn_per_event(bridge)
    txn_ids = [d.txn_id for d in bridge.deliveries if d.txn_id is not None]
    resent = {t for t in txn_ids if txn_ids.count(t) > 1}
    assert len(resent) == 1, f"exactly the lost answer is resent: {txn_ids}"


async def test_as_token_outside_the_namespace_is_refused(bridge: Bridge,
                                                         nio_user: NioUser) -> None:
    """mautrix surfaces edgehs's refusals as MatrixRequestError with the errcode."""
    await nio_user("alice")
    with pytest.raises(MatrixRequestError) as refused:
        await bridge.intent(f"@alice:{SERVER_NAME}").whoami()
    assert (refused.value.http_status, refused.value.errcode) == (403, "M_FORBIDDEN")
    with pytest.raises(MatrixRequestError) as unknown:
        await bridge.intent(f"@bridge_never_registered:{SERVER_NAME}").whoami()
    assert (unknown.value.http_status, unknown.value.errcode) == (403, "M_FORBIDDEN")
