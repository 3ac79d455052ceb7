"""The one persist step with events from a simulated remote server: forks, state resolution,
the membership index, outliers, rejection and soft failure, a room stored from a remote join,
and a seeded random DAG for every room version."""

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from remote_server import Dag, SimulatedServer, wire
from support import make_config

from edgehs.errors import MatrixError
from edgehs.homeserver import HomeServer
from edgehs.protocol.events import prev_event_ids
from edgehs.protocol.room_versions import KNOWN_ROOM_VERSIONS, get_room_version
from edgehs.protocol.signing import key_id, verify_key_base64
from edgehs.service.federation.ingest import Ingest
from edgehs.service.filters import SyncFilter
from edgehs.service.persist import EventContext
from edgehs.service.sync_token import SyncToken
from edgehs.types import JsonDict, StateMap

REMOTE = "remote.test"
BOB = f"@bob:{REMOTE}"
CAROL = f"@carol:{REMOTE}"


@dataclass
class World:
    server: HomeServer
    ingest: Ingest
    remote: SimulatedServer
    room_id: str
    alice: str


async def _world(tmp_path: Path, version: str) -> AsyncIterator[World]:
    server = HomeServer(make_config(tmp_path / "data"))
    await server.start()
    rv = get_room_version(version)
    remote = SimulatedServer(REMOTE, Dag(rv))
    local_key = (server.config.server_name, key_id(server.signing_key),
                 verify_key_base64(server.signing_key))

    async def lookup(name: str, kid: str) -> str | None:
        if (name, kid) == (REMOTE, remote.key_id):
            return remote.verify_key
        if (name, kid) == local_key[:2]:
            return local_key[2]
        return None

    ingest = Ingest(server.events, lookup)
    try:
        alice = await server.users.register("alice", None)
        room_id, _ = await server.rooms.create_room(
            alice, {"preset": "public_chat", "room_version": version})
        world = World(server, ingest, remote, room_id, alice)
        await learn(world)
        yield world
    finally:
        await ingest.close()
        await server.stop()


@pytest.fixture(params=sorted(KNOWN_ROOM_VERSIONS, key=int), ids=lambda v: f"v{v}")
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    async for w in _world(tmp_path, request.param):
        yield w


async def learn(world: World) -> None:
    """The remote server learns every event edgehs has in the room."""
    rows = await world.server.db.fetchall(
        "SELECT event_id FROM events WHERE room_id = ? ORDER BY depth, stream_ordering",
        (world.room_id,))
    pdus = await world.server.event_store.get_pdus(r[0] for r in rows)
    for row in rows:
        await world.remote.dag.add(dict(pdus[row[0]]))


async def deliver(world: World, pdu: JsonDict) -> str:
    outcome = await world.ingest.receive(wire(pdu, world.remote.dag.rv), world.remote)
    return outcome.event_id


async def current_state(world: World) -> StateMap:
    return await world.server.state_store.get_current_state_ids(world.room_id)


async def extremities(world: World) -> list[str]:
    return sorted(await world.server.event_store.get_forward_extremities(world.room_id))


async def check_graph(world: World, dag: Dag) -> None:
    """Every stored non-outlier's state before equals its recomputation, current state equals
    the resolution of the extremities, and the membership index agrees with current state."""
    server = world.server
    rows = await server.db.fetchall(
        "SELECT event_id FROM events WHERE room_id = ? AND outlier = 0 AND "
        "rejected_reason IS NULL ORDER BY depth", (world.room_id,))
    for (event_id,) in rows:
        pdu = (await server.event_store.get_pdus([event_id]))[event_id]
        await dag.add(dict(pdu))
        stored = await server.state_store.get_state_before(event_id)
        assert stored == await dag.state_before(pdu), event_id
    soft = {r[0] for r in await server.db.fetchall(
        "SELECT event_id FROM events WHERE room_id = ? AND soft_failed = 1", (world.room_id,))}
    ext = await extremities(world)
    assert ext == sorted(dag.extremities(soft))
    current = await current_state(world)
    assert current == await dag.resolve(ext)
    members = {k[1]: v for k, v in current.items() if k[0] == "m.room.member"}
    index = await server.db.fetchall(
        "SELECT user_id, event_id, membership FROM room_memberships WHERE room_id = ?",
        (world.room_id,))
    assert {r[0]: r[1] for r in index} == members
    pdus = await server.event_store.get_pdus(members.values())
    for user_id, _, membership in index:
        assert pdus[members[user_id]]["content"]["membership"] == membership
        assert await server.member_store.get_membership(world.room_id, user_id) is not None


async def bob_joins(world: World) -> JsonDict:
    join = await world.remote.build(world.room_id, BOB, "m.room.member", {"membership": "join"},
                                    BOB)
    await deliver(world, join)
    return join


async def test_a_remote_event_on_the_head_is_stored_and_seen(world: World) -> None:
    join = await bob_joins(world)
    assert await extremities(world) == [join["event_id"]]
    assert (await current_state(world))[("m.room.member", BOB)] == join["event_id"]
    assert await world.server.member_store.get_membership(world.room_id, BOB) is not None
    await check_graph(world, Dag(world.remote.dag.rv))


async def test_a_fork_is_resolved_and_a_local_send_merges_it(world: World) -> None:
    await bob_joins(world)
    await learn(world)
    fork_point = world.remote.dag.extremities()
    await world.server.events.send(world.room_id, world.alice, "m.room.topic",
                                   {"topic": "local"}, "")
    remote_topic = await world.remote.build(world.room_id, BOB, "m.room.message",
                                            {"msgtype": "m.text", "body": "on the fork"},
                                            prev_events=fork_point)
    await deliver(world, remote_topic)
    assert len(await extremities(world)) == 2  # a fork, and no 500
    await check_graph(world, Dag(world.remote.dag.rv))
    merged = await world.server.events.send(world.room_id, world.alice, "m.room.message",
                                            {"msgtype": "m.text", "body": "merge"})
    assert sorted(prev_event_ids(merged.pdu)) == sorted(
        e for e in await world.server.event_store.get_forward_extremities(world.room_id)
        if e != merged.event_id) or await extremities(world) == [merged.event_id]
    assert await extremities(world) == [merged.event_id]
    await check_graph(world, Dag(world.remote.dag.rv))


async def test_resolution_brings_back_an_older_member_event(world: World) -> None:
    """Alice bans Bob on one fork while Bob changes his name on another: the resolution keeps
    the ban (power events first), and the membership index says "ban", not "join"."""
    await bob_joins(world)
    await learn(world)
    fork_point = world.remote.dag.extremities()
    ban = await world.server.events.send(world.room_id, world.alice, "m.room.member",
                                         {"membership": "ban"}, BOB)
    rename = await world.remote.build(world.room_id, BOB, "m.room.member",
                                      {"membership": "join", "displayname": "Bobby"}, BOB,
                                      prev_events=fork_point)
    outcome = await world.ingest.receive(wire(rename, world.remote.dag.rv), world.remote)
    assert outcome.soft_failed  # fine on its own fork, not against current state
    assert (await current_state(world))[("m.room.member", BOB)] == ban.event_id
    membership = await world.server.member_store.get_membership(world.room_id, BOB)
    assert membership is not None and membership[0] == "ban"
    await check_graph(world, Dag(world.remote.dag.rv))


async def test_a_fork_changing_a_member_updates_the_index_and_sync(world: World) -> None:
    """A member event that arrives on an older fork becomes current by resolution: the
    membership index and an incremental /sync both show it."""
    await bob_joins(world)
    await learn(world)
    fork_point = world.remote.dag.extremities()
    since = world.server.notifier.position
    await world.server.events.send(world.room_id, world.alice, "m.room.message",
                                   {"msgtype": "m.text", "body": "hello"})
    leave = await world.remote.build(world.room_id, BOB, "m.room.member", {"membership": "leave"},
                                     BOB, prev_events=fork_point)
    outcome = await world.ingest.receive(wire(leave, world.remote.dag.rv), world.remote)
    assert outcome.rejected is None and not outcome.soft_failed
    assert len(await extremities(world)) == 2
    membership = await world.server.member_store.get_membership(world.room_id, BOB)
    assert membership is not None and membership[0] == "leave"
    changed = await world.server.events.events.room_changes_after([world.room_id], since)
    assert world.room_id in changed
    await check_graph(world, Dag(world.remote.dag.rv))


async def test_an_event_with_missing_prev_events_pulls_them_in(world: World) -> None:
    await bob_joins(world)
    first = await world.remote.build(world.room_id, BOB, "m.room.message",
                                     {"msgtype": "m.text", "body": "one"})
    second = await world.remote.build(world.room_id, BOB, "m.room.message",
                                      {"msgtype": "m.text", "body": "two"})
    await deliver(world, second)  # "one" was never sent: fetched as a missing event
    assert await world.server.event_store.get_event(first["event_id"]) is not None
    assert await extremities(world) == [second["event_id"]]
    await check_graph(world, Dag(world.remote.dag.rv))


async def test_an_unauthorised_event_is_rejected_and_never_shown(world: World) -> None:
    """Carol never joined: her message fails the auth rules, is stored as rejected, is no
    extremity and has no timeline place."""
    bad = await world.remote.build(world.room_id, CAROL, "m.room.message",
                                   {"msgtype": "m.text", "body": "let me in"})
    outcome = await world.ingest.receive(wire(bad, world.remote.dag.rv), world.remote)
    assert outcome.rejected is not None
    assert outcome.stored is not None and outcome.stored.stream_ordering < 0
    assert bad["event_id"] not in await extremities(world)
    timeline = await world.server.event_store.get_room_events(world.room_id, limit=50,
                                                              backwards=True)
    assert bad["event_id"] not in {e.event_id for e in timeline}


async def test_a_forged_signature_is_refused(world: World) -> None:
    join = await world.remote.build(world.room_id, BOB, "m.room.member", {"membership": "join"},
                                    BOB)
    forged = wire(join, world.remote.dag.rv)
    forged["content"] = {"membership": "join", "displayname": "changed after signing"}
    forged["hashes"] = {"sha256": "AAAA"}
    forged["origin_server_ts"] += 1  # covered by the signature
    with pytest.raises(MatrixError, match=r"(?i)signature"):
        await world.ingest.receive(forged, world.remote)
    assert await world.server.event_store.get_event(join["event_id"]) is None


async def test_a_room_is_stored_from_a_remote_join(tmp_path: Path) -> None:
    """A room that lives on the remote server: its state and auth chain as outliers, then the
    join event of a local user, in one step."""
    async for world in _world(tmp_path, "12"):
        host = SimulatedServer(REMOTE, Dag(get_room_version("12")))
        rv = host.dag.rv
        create = await host.build_create(BOB, rv)
        room_id = "!" + create["event_id"][1:]
        await host.build(room_id, BOB, "m.room.member", {"membership": "join"}, BOB)
        await host.build(room_id, BOB, "m.room.power_levels",
                         {"users": {}, "users_default": 0}, "")
        await host.build(room_id, BOB, "m.room.join_rules", {"join_rule": "public"}, "")
        state_before = await host.dag.resolve(host.dag.extremities())
        # The join is built from the host's template and signed by the joining server.
        joiner = SimulatedServer(world.server.config.server_name, host.dag,
                                 world.server.signing_key)
        join = await joiner.build(room_id, world.alice, "m.room.member", {"membership": "join"},
                                  world.alice)
        world.ingest.keys = _keys_with(world.ingest.keys, host)
        state = [wire(host.dag.pdus[e], rv) for e in state_before.values()]
        stored = await world.ingest.store_remote_join(room_id, state, state, wire(join, rv))
        assert stored.stream_ordering > 0
        assert await world.server.member_store.get_membership(room_id, world.alice) is not None
        assert await world.server.event_store.get_forward_extremities(room_id) == [
            join["event_id"]]
        outliers = await world.server.db.fetchval(
            "SELECT COUNT(*) FROM events WHERE room_id = ? AND outlier = 1", (room_id,))
        assert outliers == len(state)
        sent = await world.server.events.send(room_id, world.alice, "m.room.message",
                                              {"msgtype": "m.text", "body": "hi from the Pi"})
        assert prev_event_ids(sent.pdu) == [join["event_id"]]


def _keys_with(lookup, host: SimulatedServer):  # type: ignore[no-untyped-def]
    async def keys(name: str, kid: str) -> str | None:
        if (name, kid) == (host.name, host.key_id):
            return host.verify_key
        return await lookup(name, kid)
    return keys


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_dag(world: World, seed: int) -> None:
    """Two servers write forks and merges (messages, state, and a member who comes and goes);
    after each event the stored state before equals a recomputation, current state equals the
    resolution of the extremities, and the membership index agrees with current state."""
    rng = random.Random(seed)
    await bob_joins(world)
    levels = await world.server.events.current_state_event(world.room_id,
                                                           ("m.room.power_levels", ""))
    assert levels is not None
    await world.server.events.send(
        world.room_id, world.alice, "m.room.power_levels",
        {**levels["content"], "users": {**levels["content"]["users"], BOB: 50}}, "")
    await learn(world)
    held: list[JsonDict] = []
    check = Dag(world.remote.dag.rv)
    widest = 0
    for step in range(60):
        action = rng.random()
        if action < 0.35:
            kind = rng.choice(["m.room.message", "m.room.topic", "org.example.state"])
            key = None if kind == "m.room.message" else rng.choice(["", "a"]) if kind != \
                "m.room.topic" else ""
            await world.server.events.send(world.room_id, world.alice, kind,
                                           {"body": f"local {step}", "topic": str(step)}, key)
        elif action < 0.7:
            ext = world.remote.dag.extremities()
            prevs = rng.sample(ext, rng.randint(1, len(ext)))
            kind = rng.choice(["m.room.message", "m.room.topic", "org.example.state",
                               "m.room.member"])
            if kind == "m.room.member":  # Carol comes and goes, on whichever fork
                there = (await world.remote.dag.resolve(prevs)).get(("m.room.member", CAROL))
                joined = there is not None and world.remote.dag.pdus[there]["content"][
                    "membership"] == "join"
                held.append(await world.remote.build(
                    world.room_id, CAROL, kind, {"membership": "leave" if joined else "join"},
                    CAROL, prev_events=prevs))
            else:
                key = None if kind == "m.room.message" else ""
                held.append(await world.remote.build(
                    world.room_id, BOB, kind, {"body": f"remote {step}", "topic": f"r{step}"},
                    key, prev_events=prevs))
        elif action < 0.9 and held:
            pdu = held.pop(rng.randrange(len(held)))
            await deliver(world, pdu)
        else:
            await learn(world)
        await check_graph(world, check)
        widest = max(widest, len(await extremities(world)))
    assert widest > 1  # the walk made forks
    for pdu in held:
        await deliver(world, pdu)
    await check_graph(world, check)


class SlowOrigin:
    """An origin server that answers /get_missing_events only when told to."""

    def __init__(self, remote: SimulatedServer) -> None:
        self.remote = remote
        self.asked = asyncio.Event()
        self.answer = asyncio.Event()

    async def missing_events(self, room_id: str, earliest: Sequence[str],
                             latest: Sequence[str], limit: int) -> list[JsonDict]:
        self.asked.set()
        await self.answer.wait()
        return await self.remote.missing_events(room_id, earliest, latest, limit)

    async def event(self, room_id: str, event_id: str) -> JsonDict | None:
        return await self.remote.event(room_id, event_id)


async def test_local_sends_go_on_while_the_worker_fetches(world: World) -> None:
    """The room's worker waits for the origin (missing prev_events) without holding the room
    lock: a local send in the same room completes meanwhile, and the remote event lands after
    on a fork that the next local send merges."""
    await bob_joins(world)
    await world.remote.build(world.room_id, BOB, "m.room.message",
                             {"msgtype": "m.text", "body": "never sent"})
    second = await world.remote.build(world.room_id, BOB, "m.room.message",
                                      {"msgtype": "m.text", "body": "sent"})
    origin = SlowOrigin(world.remote)
    receiving = asyncio.create_task(
        world.ingest.receive(wire(second, world.remote.dag.rv), origin))
    await asyncio.wait_for(origin.asked.wait(), 10)
    local = await asyncio.wait_for(world.server.events.send(
        world.room_id, world.alice, "m.room.message", {"msgtype": "m.text", "body": "local"}),
        10)
    assert not receiving.done()
    origin.answer.set()
    outcome = await asyncio.wait_for(receiving, 10)
    assert outcome.rejected is None and not outcome.soft_failed
    assert await extremities(world) == sorted([local.event_id, second["event_id"]])
    await check_graph(world, Dag(world.remote.dag.rv))


async def test_backfilled_events_keep_the_head_and_never_look_new(world: World) -> None:
    """Events persisted as backfill take negative positions and change neither the forward
    extremities nor current state; /sync's stream queries do not see them."""
    join = await bob_joins(world)
    before = await world.server.state_store.get_state_after(join["event_id"])
    assert before is not None
    old = await world.remote.build(world.room_id, BOB, "m.room.message",
                                   {"msgtype": "m.text", "body": "history"},
                                   prev_events=[join["event_id"]])
    head = await extremities(world)
    state = await current_state(world)
    since = world.server.notifier.position
    events = world.server.events
    rv = world.remote.dag.rv
    async with events.room_lock(world.room_id):
        [stored] = await events.persister.persist(
            world.room_id, rv, [EventContext(old, before, backfilled=True)])
    assert stored.stream_ordering < 0
    assert await extremities(world) == head
    assert await current_state(world) == state
    assert not await world.server.event_store.rooms_with_events_after([world.room_id], since)
    live = await world.server.event_store.get_room_events(world.room_id, limit=50,
                                                          backwards=True)
    assert old["event_id"] not in {e.event_id for e in live}
    page = await world.server.event_store.get_room_events_topo(
        world.room_id, after=(0, -(2**62)), upto=(2**62, 2**62), limit=50, backwards=True)
    order = [e.event_id for e in page]
    assert order.index(old["event_id"]) < order.index(join["event_id"])  # by depth


async def test_an_incremental_sync_sends_state_a_resolution_brought_back(world: World) -> None:
    """Bob (power 50) changes the topic; on a fork from before it, Carol (power 100) takes
    Bob's power away. The resolution drops Bob's topic and brings the older one back: no
    timeline event carries it, and the incremental /sync still sends it as state."""
    server, events = world.server, world.server.events
    await bob_joins(world)
    await deliver(world, await world.remote.build(world.room_id, CAROL, "m.room.member",
                                                  {"membership": "join"}, CAROL))
    old_topic = await events.send(world.room_id, world.alice, "m.room.topic",
                                  {"topic": "old"}, "")
    levels = await events.current_state_event(world.room_id, ("m.room.power_levels", ""))
    assert levels is not None
    users = {**levels["content"]["users"], BOB: 50, CAROL: 100}
    await events.send(world.room_id, world.alice, "m.room.power_levels",
                      {**levels["content"], "users": users}, "")
    await learn(world)
    fork_point = world.remote.dag.extremities()
    await deliver(world, await world.remote.build(world.room_id, BOB, "m.room.topic",
                                                  {"topic": "Bob's"}, ""))
    flt = SyncFilter.parse({})
    first = await server.sync.sync(world.alice, None, None, flt, 0)
    demote = await world.remote.build(
        world.room_id, CAROL, "m.room.power_levels",
        {**levels["content"], "users": {**users, BOB: 0}}, "", prev_events=fork_point)
    outcome = await world.ingest.receive(wire(demote, world.remote.dag.rv), world.remote)
    assert outcome.rejected is None and not outcome.soft_failed
    assert (await current_state(world))[("m.room.topic", "")] == old_topic.event_id
    second = await server.sync.sync(world.alice, None, SyncToken.parse(first["next_batch"]),
                                    flt, 0)
    room = second["rooms"]["join"][world.room_id]
    assert [e["event_id"] for e in room["timeline"]["events"]] == [demote["event_id"]]
    assert old_topic.event_id in {e["event_id"] for e in room["state"]["events"]}
    await check_graph(world, Dag(world.remote.dag.rv))
