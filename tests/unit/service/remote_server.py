"""A simulated remote homeserver for tests of the event graph: its own signing key, its own
view of a room's DAG, and signed PDUs built on whichever events it chooses (forks).

:class:`Dag` recomputes, with the pure protocol functions only, the state before and after
every event it is given: the reference the stored state is compared with.
"""

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from signedjson.types import SigningKey

from edgehs.protocol.event_auth import auth_types_for_event
from edgehs.protocol.events import (
    compute_event_id,
    event_reference,
    new_legacy_event_id,
    prev_event_ids,
    sign_event,
)
from edgehs.protocol.room_versions import RoomVersion
from edgehs.protocol.signing import generate_signing_key, key_id, verify_key_base64
from edgehs.protocol.state_res import resolve_state
from edgehs.types import JsonDict, StateMap

CREATE_KEY = ("m.room.create", "")


class Dag:
    """Every event of one room seen so far, with its state recomputed from the DAG."""

    def __init__(self, rv: RoomVersion) -> None:
        self.rv = rv
        self.pdus: dict[str, JsonDict] = {}
        self.after: dict[str, StateMap] = {}

    async def fetch(self, ids: Collection[str]) -> Mapping[str, JsonDict]:
        return {i: self.pdus[i] for i in ids if i in self.pdus}

    async def resolve(self, event_ids: Iterable[str]) -> StateMap:
        """The state after ``event_ids`` together: theirs, or its resolution."""
        states = {frozenset(self.after[e].items()): self.after[e] for e in event_ids}
        if len(states) == 1:
            return dict(next(iter(states.values())))
        return await resolve_state(self.rv, list(states.values()), self.fetch)

    async def state_before(self, pdu: JsonDict) -> StateMap:
        prevs = prev_event_ids(pdu)
        return await self.resolve(prevs) if prevs else {}

    async def add(self, pdu: JsonDict) -> None:
        """Learn ``pdu`` (with its ``event_id``); its prev events must be known."""
        if pdu["event_id"] in self.pdus:
            return
        before = await self.state_before(pdu)
        self.pdus[pdu["event_id"]] = pdu
        after = dict(before)
        if "state_key" in pdu:
            after[(pdu["type"], pdu["state_key"])] = pdu["event_id"]
        self.after[pdu["event_id"]] = after

    def extremities(self, hidden: Collection[str] = ()) -> list[str]:
        """The events no other event points at (``hidden`` events, soft-failed ones, neither
        count nor point)."""
        shown = set(self.pdus) - set(hidden)
        referenced = {p for e in shown for p in prev_event_ids(self.pdus[e])}
        return sorted(shown - referenced)


class SimulatedServer:
    """A remote server taking part in one room: it signs what it builds with its own key."""

    def __init__(self, name: str, dag: Dag, key: SigningKey | None = None) -> None:
        self.name = name
        self.dag = dag  # what this server has seen of the room
        self.key = key or generate_signing_key("sim")
        self._clock = 1_700_000_000_000

    @property
    def key_id(self) -> str:
        return key_id(self.key)

    @property
    def verify_key(self) -> str:
        return verify_key_base64(self.key)

    async def build(self, room_id: str, sender: str, event_type: str, content: JsonDict,
                    state_key: str | None = None,
                    prev_events: Sequence[str] | None = None, **extra: Any) -> JsonDict:
        """A signed PDU on ``prev_events`` (default: this server's extremities), with auth
        events chosen from the state before it as a server would; learnt by this server."""
        rv = self.dag.rv
        prevs = list(prev_events or self.dag.extremities())
        before = await self.dag.resolve(prevs)
        keys = auth_types_for_event(event_type, sender, state_key, content, rv)
        auth = sorted(before[k] for k in {*keys, CREATE_KEY} if k in before
                      and not (k == CREATE_KEY and rv.room_id_from_create_event))
        self._clock += 1
        pdu: JsonDict = {
            "room_id": room_id, "sender": sender, "type": event_type, "content": content,
            "origin_server_ts": self._clock,
            "prev_events": [event_reference(self.dag.pdus[p], rv) for p in prevs],
            "auth_events": [event_reference(self.dag.pdus[a], rv) for a in auth],
            "depth": max(int(self.dag.pdus[p]["depth"]) for p in prevs) + 1, **extra,
        }
        if state_key is not None:
            pdu["state_key"] = state_key
        signed = self._sign(pdu)
        await self.dag.add(signed)
        return signed

    async def build_create(self, sender: str, rv: RoomVersion) -> JsonDict:
        """The m.room.create event of a room this server hosts."""
        content: JsonDict = {"room_version": rv.identifier}
        if not rv.implicit_room_creator:
            content["creator"] = sender
        pdu: JsonDict = {"sender": sender, "type": "m.room.create", "state_key": "",
                         "content": content, "origin_server_ts": self._clock,
                         "prev_events": [], "auth_events": [], "depth": 1}
        if not rv.room_id_from_create_event:
            pdu["room_id"] = f"!hosted:{self.name}"
        signed = self._sign(pdu)
        await self.dag.add(signed)
        return signed

    def _sign(self, pdu: JsonDict) -> JsonDict:
        rv = self.dag.rv
        if rv.event_id_in_pdu:  # v1/v2: the origin picks the id and signs it
            return sign_event({**pdu, "event_id": new_legacy_event_id(self.name)}, self.name,
                              self.key, rv)
        signed = sign_event(pdu, self.name, self.key, rv)
        signed["event_id"] = compute_event_id(signed, rv)
        return signed

    # --- RemoteEvents: what the receiving server may ask for ------------------------------

    async def missing_events(self, room_id: str, earliest: Sequence[str], latest: Sequence[str],
                             limit: int) -> list[JsonDict]:
        """Events before ``latest`` back to ``earliest``, newest first (/get_missing_events)."""
        out: list[JsonDict] = []
        seen = set(earliest)
        todo = [p for e in latest if e in self.dag.pdus for p in prev_event_ids(self.dag.pdus[e])]
        while todo and len(out) < limit:
            event_id = todo.pop(0)
            if event_id in seen or event_id not in self.dag.pdus:
                continue
            seen.add(event_id)
            out.append(wire(self.dag.pdus[event_id], self.dag.rv))
            todo += prev_event_ids(self.dag.pdus[event_id])
        return out

    async def event(self, room_id: str, event_id: str) -> JsonDict | None:
        pdu = self.dag.pdus.get(event_id)
        return None if pdu is None else wire(pdu, self.dag.rv)


def wire(pdu: JsonDict, rv: RoomVersion) -> JsonDict:
    """The PDU as it travels: from room version 3 on, without its event id."""
    if rv.event_id_in_pdu:
        return dict(pdu)
    return {k: v for k, v in pdu.items() if k != "event_id"}
