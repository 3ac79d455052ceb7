"""State resolution v1 (room version 1), v2 (room versions 2-11) and v2.1 (room version 12).

https://spec.matrix.org/v1.19/rooms/v1/#state-resolution (v1)
https://spec.matrix.org/v1.19/rooms/v11/#state-resolution (v2, unchanged since room v2)
https://spec.matrix.org/v1.19/rooms/v12/#state-resolution (v2.1, MSC4297)

:func:`resolve_state` is the entry point: it picks the algorithm from the room version.

Pure: the only input besides the state sets is ``fetch_events``, an async callback returning the
PDUs it knows for the ids asked (unknown ids are left out, and such events take no part). The
function is async only because that callback is.

v2.1 (``rv.state_res_v2_1``) differs from v2 in two places: the *full conflicted set* also holds
the *conflicted state subgraph* (events on ``auth_events`` paths between two conflicted events),
and the first iterative auth checks start from an empty state map instead of the unconflicted
state map (which step 5 still applies on top).

In v12 the create event is not listed in ``auth_events``; as Synapse does, it is treated as an
implicit auth event of every other event (its id is the room id with the ``$`` sigil), so the
sender's power and the auth checks can see it.

Rejected events: the caller's ``fetch_events`` decides what is returned. Events rejected for
failing auth against their own auth events should never appear in the state sets or their auth
chains; events rejected against the state at them take part as usual (spec, "Rejected events").
"""

import hashlib
import heapq
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence

from edgehs.errors import AuthError
from edgehs.protocol.auth_context import ThirdPartySignatureVerifier, reject_third_party_signatures
from edgehs.protocol.event_auth import auth_types_for_event, check_auth_rules
from edgehs.protocol.events import auth_event_ids
from edgehs.protocol.power_levels import CREATE_KEY, POWER_LEVELS_KEY, user_power_level
from edgehs.protocol.room_versions import RoomVersion
from edgehs.types import JsonDict, StateKey

FetchEvents = Callable[[Collection[str]], Awaitable[Mapping[str, JsonDict]]]


def is_power_event(event: JsonDict) -> bool:
    """A state event that may take away someone's ability to do something: power levels, join
    rules, or a ``leave``/``ban`` membership sent by someone other than its target."""
    key = (event.get("type"), event.get("state_key"))
    if key in (POWER_LEVELS_KEY, ("m.room.join_rules", "")):
        return True
    if event.get("type") == "m.room.member" and isinstance(event.get("state_key"), str):
        content = event.get("content")
        membership = content.get("membership") if isinstance(content, dict) else None
        return membership in ("leave", "ban") and event.get("sender") != event["state_key"]
    return False


def separate(
    state_sets: Sequence[Mapping[StateKey, str]],
) -> tuple[dict[StateKey, str], dict[StateKey, set[str]]]:
    """The unconflicted state map and the conflicted state set (grouped by key).

    A key is unconflicted when every state set has it with the same event.
    """
    unconflicted: dict[StateKey, str] = {}
    conflicted: dict[StateKey, set[str]] = {}
    for key in {key for state in state_sets for key in state}:
        values = {state[key] for state in state_sets if key in state}
        if len(values) == 1 and all(key in state for state in state_sets):
            unconflicted[key] = values.pop()
        else:
            conflicted[key] = values
    return unconflicted, conflicted


async def resolve_state(
    rv: RoomVersion,
    state_sets: Sequence[Mapping[StateKey, str]],
    fetch_events: FetchEvents,
    *,
    verify_signature: ThirdPartySignatureVerifier = reject_third_party_signatures,
) -> dict[StateKey, str]:
    """Resolve ``state_sets`` into one state map with the algorithm of room version ``rv``:
    v1 (:func:`resolve_state_v1`) unless ``rv.state_res_v2``, else v2 or, when
    ``rv.state_res_v2_1``, v2.1 (:func:`resolve_state_v2`)."""
    if not rv.state_res_v2:
        return await resolve_state_v1(
            rv, state_sets, fetch_events, verify_signature=verify_signature
        )
    return await resolve_state_v2(rv, state_sets, fetch_events, verify_signature=verify_signature)


async def resolve_state_v1(
    rv: RoomVersion,
    state_sets: Sequence[Mapping[StateKey, str]],
    fetch_events: FetchEvents,
    *,
    verify_signature: ThirdPartySignatureVerifier = reject_third_party_signatures,
) -> dict[StateKey, str]:
    """Resolve ``state_sets`` with the original algorithm of room version 1.

    https://spec.matrix.org/v1.19/rooms/v1/#state-resolution

    1. R is the union of the state sets without the conflicted keys.
    2. If the ``m.room.power_levels`` events conflict:
       1. assemble them into a list;
       2. sort it by ascending depth, then descending ``sha1(event_id)``;
       3. add the first event to R;
       4. for each later event: if it is allowed by the authorization rules in state R,
          update R with it and go on, else stop.
    3. The same for the ``m.room.join_rules`` events.
    4. The same for the ``m.room.member`` events (each conflicted state key on its own).
    5. For every other conflicted key, the event with the highest depth and then the lowest
       ``sha1(event_id)`` that passes the authorization rules in R.

    Events ``fetch_events`` does not know take no part.
    """
    unconflicted, conflicted = separate(state_sets)
    if not conflicted:
        return unconflicted
    graph = _EventGraph(rv, fetch_events)
    await graph.load(set[str]().union(*conflicted.values()))
    # 1
    resolved = dict(unconflicted)
    authorising = [POWER_LEVELS_KEY, ("m.room.join_rules", "")]  # 2, 3
    authorising += sorted(key for key in conflicted if key[0] == "m.room.member")  # 4
    for key in authorising:
        if key not in conflicted:
            continue
        events = [graph.events[e] for e in conflicted[key] if e in graph.events]
        events.sort(key=lambda event: (_depth(event), _negated(_sha1(event))))  # 2.1, 2.2
        for index, event in enumerate(events):
            # 2.3: the first is added; 2.4: each later one while the rules allow it
            if index == 0 or await _passes_auth(graph, event, resolved, verify_signature):
                resolved[key] = event["event_id"]
            else:
                break
    # 5
    for key in sorted(conflicted.keys() - set(authorising)):
        events = [graph.events[e] for e in conflicted[key] if e in graph.events]
        events.sort(key=lambda event: (-_depth(event), _sha1(event)))
        for event in events:
            if await _passes_auth(graph, event, resolved, verify_signature):
                resolved[key] = event["event_id"]
                break
    return resolved


def _depth(event: JsonDict) -> int:
    depth = event.get("depth")
    return depth if isinstance(depth, int) and not isinstance(depth, bool) else 0


def _sha1(event: JsonDict) -> bytes:
    return hashlib.sha1(str(event.get("event_id")).encode("utf-8")).digest()


def _negated(digest: bytes) -> bytes:
    """A key that sorts byte strings of one length in descending order."""
    return bytes(255 - byte for byte in digest)


async def resolve_state_v2(
    rv: RoomVersion,
    state_sets: Sequence[Mapping[StateKey, str]],
    fetch_events: FetchEvents,
    *,
    verify_signature: ThirdPartySignatureVerifier = reject_third_party_signatures,
) -> dict[StateKey, str]:
    """Resolve ``state_sets`` into one state map (v2, or v2.1 when ``rv.state_res_v2_1``).

    Definitions first: the unconflicted state map and the conflicted state set
    (:func:`separate`); the auth difference (events in some but not all of the state sets'
    full auth chains); v2.1: the conflicted state subgraph; the full conflicted set is the
    union of the conflicted state set, the auth difference and (v2.1) the subgraph.

    1. Take the power events in the full conflicted set, plus the events of their auth chains
       that are in the full conflicted set, and sort them by reverse topological power
       ordering.
    2. Apply the iterative auth checks to them, starting from the unconflicted state map (v2)
       or from an empty state map (v2.1), giving a partially resolved state.
    3. Order the remaining events of the full conflicted set by mainline ordering, based on the
       power levels event of the partially resolved state.
    4. Apply the iterative auth checks to them, on top of the partially resolved state.
    5. Replace any entry with the unconflicted state map's event for the key, if it has one.

    ``verify_signature`` is passed on to ``check_auth_rules`` for third-party invites.
    """
    unconflicted, conflicted = separate(state_sets)
    if not conflicted:
        return unconflicted
    graph = _EventGraph(rv, fetch_events)
    conflicted_ids = set[str]().union(*conflicted.values())
    chains = [await graph.auth_chain(state.values()) for state in state_sets]
    auth_difference = set[str]().union(*chains) - chains[0].intersection(*chains[1:])
    full_conflicted = conflicted_ids | auth_difference
    if rv.state_res_v2_1:
        full_conflicted |= await graph.conflicted_subgraph(conflicted_ids)
    await graph.load(full_conflicted)
    full_conflicted = {event_id for event_id in full_conflicted if event_id in graph.events}

    # 1
    power_events = {e for e in full_conflicted if is_power_event(graph.events[e])}
    power_events |= await graph.auth_chain(power_events) & full_conflicted
    sorted_power = await _reverse_topological_power_sort(graph, power_events)
    # 2
    base = {} if rv.state_res_v2_1 else dict(unconflicted)
    partial = await _iterative_auth_checks(graph, sorted_power, base, verify_signature)
    # 3
    leftover = full_conflicted - power_events
    ordered = await _mainline_sort(graph, leftover, partial.get(POWER_LEVELS_KEY))
    # 4
    resolved = await _iterative_auth_checks(graph, ordered, partial, verify_signature)
    # 5
    resolved.update(unconflicted)
    return resolved


class _EventGraph:
    """The events fetched so far and walks over their ``auth_events`` edges."""

    def __init__(self, rv: RoomVersion, fetch_events: FetchEvents) -> None:
        self.rv = rv
        self.events: dict[str, JsonDict] = {}
        self._fetch = fetch_events
        self._unknown: set[str] = set()

    async def load(self, event_ids: Iterable[str]) -> None:
        wanted = {e for e in event_ids if e not in self.events and e not in self._unknown}
        if not wanted:
            return
        found = await self._fetch(wanted)
        for event_id in wanted:
            event = found.get(event_id)
            if isinstance(event, dict):
                self.events[event_id] = event
            else:
                self._unknown.add(event_id)

    async def get(self, event_id: str) -> JsonDict | None:
        await self.load([event_id])
        return self.events.get(event_id)

    def auth_ids(self, event: JsonDict) -> list[str]:
        """The event's ``auth_events``, plus (v12) the implicit create event."""
        ids = auth_event_ids(event)
        room_id = event.get("room_id")
        implicit_create = self.rv.room_id_from_create_event and event.get("type") != "m.room.create"
        if implicit_create and isinstance(room_id, str) and room_id.startswith("!"):
            ids.append("$" + room_id[1:])
        return ids

    async def auth_events(self, event: JsonDict) -> dict[StateKey, JsonDict]:
        """The event's (known) auth events by ``(type, state_key)``."""
        ids = self.auth_ids(event)
        await self.load(ids)
        found: dict[StateKey, JsonDict] = {}
        for event_id in ids:
            auth_event = self.events.get(event_id)
            if auth_event is not None and isinstance(auth_event.get("state_key"), str):
                found[(auth_event["type"], auth_event["state_key"])] = auth_event
        return found

    async def auth_chain(self, event_ids: Iterable[str]) -> set[str]:
        """All events reachable from ``event_ids`` over ``auth_events`` (excluding the start)."""
        chain: set[str] = set()
        frontier = set(event_ids)
        while frontier:
            await self.load(frontier)
            next_frontier: set[str] = set()
            for event_id in frontier:
                event = self.events.get(event_id)
                if event is None:
                    continue
                for auth_id in self.auth_ids(event):
                    if auth_id not in chain:
                        chain.add(auth_id)
                        next_frontier.add(auth_id)
            frontier = next_frontier
        return chain

    async def conflicted_subgraph(self, conflicted: set[str]) -> set[str]:
        """v2.1: the events on ``auth_events`` paths from one conflicted event to another.

        Those reachable from a conflicted event (the auth chain of the conflicted set) that can
        themselves reach a conflicted event (walking the reversed edges back from it).
        """
        below = await self.auth_chain(conflicted)
        nodes = below | conflicted
        parents: dict[str, set[str]] = {}
        for event_id in nodes:
            event = self.events.get(event_id)
            for auth_id in self.auth_ids(event) if event is not None else []:
                if auth_id in nodes:
                    parents.setdefault(auth_id, set()).add(event_id)
        reaches_conflicted = set(conflicted)
        stack = list(conflicted)
        while stack:
            for parent in parents.get(stack.pop(), ()):
                if parent not in reaches_conflicted:
                    reaches_conflicted.add(parent)
                    stack.append(parent)
        return below & reaches_conflicted

    async def power_levels_parent(self, event: JsonDict) -> str | None:
        """The id of the ``m.room.power_levels`` event among the event's auth events."""
        auth_event = (await self.auth_events(event)).get(POWER_LEVELS_KEY)
        return None if auth_event is None else str(auth_event["event_id"])


async def _sender_power(graph: _EventGraph, event: JsonDict) -> int | float:
    """The sender's power level according to the event's own auth events."""
    auth_events = await graph.auth_events(event)
    create = auth_events.get(CREATE_KEY, {})
    levels: JsonDict | None = None
    if POWER_LEVELS_KEY in auth_events:
        content = auth_events[POWER_LEVELS_KEY].get("content")
        levels = content if isinstance(content, dict) else {}
    return user_power_level(str(event.get("sender")), levels, create, graph.rv)


def _ts(event: JsonDict) -> int:
    ts = event.get("origin_server_ts")
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else 0


async def _reverse_topological_power_sort(graph: _EventGraph, event_ids: set[str]) -> list[str]:
    """Kahn's algorithm over the ``auth_events`` DAG restricted to ``event_ids``, earliest
    first; among the events ready at each step the smallest by: sender's power level
    descending, then ``origin_server_ts`` ascending, then ``event_id`` ascending."""
    pending: dict[str, set[str]] = {}
    dependants: dict[str, set[str]] = {event_id: set() for event_id in event_ids}
    for event_id in event_ids:
        auth_ids = set(graph.auth_ids(graph.events[event_id])) & event_ids
        pending[event_id] = auth_ids
        for auth_id in auth_ids:
            dependants[auth_id].add(event_id)
    keys: dict[str, tuple[int | float, int, str]] = {}
    for event_id in event_ids:
        event = graph.events[event_id]
        keys[event_id] = (-(await _sender_power(graph, event)), _ts(event), event_id)
    ready = [keys[e] for e, auth_ids in pending.items() if not auth_ids]
    heapq.heapify(ready)
    ordered: list[str] = []
    while ready:
        event_id = heapq.heappop(ready)[2]
        ordered.append(event_id)
        for dependant in dependants[event_id]:
            pending[dependant].discard(event_id)
            if not pending[dependant]:
                heapq.heappush(ready, keys[dependant])
    return ordered


async def _iterative_auth_checks(
    graph: _EventGraph,
    event_ids: list[str],
    base: Mapping[StateKey, str],
    verify_signature: ThirdPartySignatureVerifier,
) -> dict[StateKey, str]:
    """Apply each state event in order if it passes the authorization rules against the state
    built so far; a key the rules need that the state lacks comes from the event's own auth
    events."""
    state = dict(base)
    for event_id in event_ids:
        event = graph.events[event_id]
        state_key = event.get("state_key")
        if not isinstance(state_key, str) or not isinstance(event.get("type"), str):
            continue
        if await _passes_auth(graph, event, state, verify_signature):
            state[(event["type"], state_key)] = event_id
    return state


async def _passes_auth(
    graph: _EventGraph,
    event: JsonDict,
    state: Mapping[StateKey, str],
    verify_signature: ThirdPartySignatureVerifier,
) -> bool:
    """Whether the state event ``event`` passes the authorization rules against ``state``; a
    key the rules need that the state lacks comes from the event's own auth events."""
    state_key = event.get("state_key")
    if not isinstance(state_key, str) or not isinstance(event.get("type"), str):
        return False
    auth_events = await graph.auth_events(event)
    content = event.get("content")
    needed = auth_types_for_event(
        event["type"],
        str(event.get("sender")),
        state_key,
        content if isinstance(content, dict) else {},
        graph.rv,
    )
    for key in [*needed, CREATE_KEY]:
        if key in state:
            state_event = await graph.get(state[key])
            if state_event is not None:
                auth_events[key] = state_event
    try:
        check_auth_rules(
            event,
            auth_events,
            graph.rv,
            auth_events_from_state=True,
            verify_signature=verify_signature,
        )
    except AuthError:
        return False
    return True


async def _mainline_sort(
    graph: _EventGraph, event_ids: set[str], power_levels_id: str | None
) -> list[str]:
    """Order events by their mainline position (the index in the mainline of
    ``power_levels_id`` of the first power levels event met walking their power levels auth
    events; infinite if none), greater positions first, then ``origin_server_ts``, then
    ``event_id``."""
    mainline: list[str] = []
    current = power_levels_id
    while current is not None and current not in mainline:
        mainline.append(current)
        event = await graph.get(current)
        current = None if event is None else await graph.power_levels_parent(event)
    position = {event_id: index for index, event_id in enumerate(mainline)}

    async def mainline_position(event: JsonDict) -> float:
        seen: set[str] = set()
        parent = await graph.power_levels_parent(event)
        while parent is not None and parent not in seen:
            if parent in position:
                return position[parent]
            seen.add(parent)
            parent_event = await graph.get(parent)
            parent = None if parent_event is None else await graph.power_levels_parent(parent_event)
        return float("inf")

    keys: dict[str, tuple[float, int, str]] = {}
    for event_id in event_ids:
        event = graph.events[event_id]
        keys[event_id] = (-(await mainline_position(event)), _ts(event), event_id)
    return sorted(event_ids, key=keys.__getitem__)
