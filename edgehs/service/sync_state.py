"""The ``state`` section of a /sync room, and the lazy-loaded members each device was sent.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3sync
https://spec.matrix.org/v1.19/client-server-api/#lazy-loading-room-members

Three cases, as Synapse computes them:

- the room is new to the client (initial sync, ``full_state``, joined since ``since``): the
  state at the start of the timeline;
- an incremental sync whose timeline is ``limited`` (a gap): what changed between the state at
  ``since`` and the current state, plus the state at the start of the timeline that differs
  from ``since``. With lazy-loading, the members of the timeline's senders at its start are
  added even when they did not change (the client may never have been sent them), while
  every other change in the gap (joins, leaves) is still sent;
- an incremental sync without a gap: nothing, or with lazy-loading the members of the
  timeline's senders at its start.

Events already in the timeline are never repeated in ``state``. With lazy-loading and without
``include_redundant_members``, a member event this device was already sent, in a response it
has acknowledged (by syncing from a later token), is left out (:class:`LazyMembers`).
"""

from collections import OrderedDict
from collections.abc import Iterable

from edgehs.types import StateKey, StateMap

MEMBER = "m.room.member"
StateItems = list[tuple[StateKey, str]]  # (type, state_key) and event id, in sending order


def full_state(start: StateMap, in_timeline: set[str], lazy: set[str] | None) -> StateItems:
    """The state at the start of the timeline; ``lazy``: the members to keep (None: all)."""
    return [(k, v) for k, v in start.items() if v not in in_timeline
            and (lazy is None or k[0] != MEMBER or k[1] in lazy)]


def gappy_state(start: StateMap, end: StateMap, previous: StateMap, in_timeline: set[str],
                lazy: set[str] | None) -> StateItems:
    """(start | end) - previous - timeline; with ``lazy`` (the timeline's senders) the
    start keeps only their members, which are then sent even if unchanged since ``since``."""
    if lazy is not None:
        start = {k: v for k, v in start.items() if k[0] != MEMBER or k[1] in lazy}
    known = set(previous.values())
    if lazy is not None:
        known -= {v for k, v in start.items() if k[0] == MEMBER}
    out: dict[str, StateKey] = {}
    for k, v in (*start.items(), *end.items()):
        if v not in known and v not in in_timeline:
            out.setdefault(v, k)
    return [(k, v) for v, k in out.items()]


def senders_state(start: StateMap, in_timeline: set[str], senders: set[str]) -> StateItems:
    """The members of ``senders`` at the start of the timeline (lazy-loading, no gap)."""
    return [((MEMBER, s), start[(MEMBER, s)]) for s in sorted(senders)
            if (MEMBER, s) in start and start[(MEMBER, s)] not in in_timeline]


class LazyMembers:
    """Per device: the member events sent with lazy-loading, each with the stream position of
    the response that carried it. An entry counts as known to the device once it syncs from
    that position or a later one, so a lost response (retried from the same token) is sent
    again. In memory and bounded: forgetting only means a member event is sent twice."""

    def __init__(self, max_devices: int = 1000, max_members: int = 20000) -> None:
        self.max_devices = max_devices
        self.max_members = max_members
        self._devices: OrderedDict[tuple[str, str | None],
                                   OrderedDict[tuple[str, str], tuple[str, int]]] = OrderedDict()

    def _device(self, user_id: str, device_id: str | None
                ) -> OrderedDict[tuple[str, str], tuple[str, int]]:
        key = (user_id, device_id)
        sent = self._devices.get(key)
        if sent is None:
            sent = self._devices[key] = OrderedDict()
            while len(self._devices) > self.max_devices:
                self._devices.popitem(last=False)
        self._devices.move_to_end(key)
        return sent

    def reset(self, user_id: str, device_id: str | None) -> None:
        """An initial sync: the client starts from nothing."""
        self._devices.pop((user_id, device_id), None)

    def known(self, user_id: str, device_id: str | None, room_id: str, member: str,
              event_id: str, since: int) -> bool:
        sent = self._devices.get((user_id, device_id))
        entry = sent.get((room_id, member)) if sent is not None else None
        return entry is not None and entry[0] == event_id and entry[1] <= since

    def record(self, user_id: str, device_id: str | None, room_id: str,
               members: Iterable[tuple[str, str]], position: int) -> None:
        """``members``: (user id, member event id) sent in the response at ``position``."""
        sent = self._device(user_id, device_id)
        for member, event_id in members:
            old = sent.get((room_id, member))
            if old is not None and old[0] == event_id:
                position_sent = min(old[1], position)
            else:
                position_sent = position
            sent[(room_id, member)] = (event_id, position_sent)
            sent.move_to_end((room_id, member))
        while len(sent) > self.max_members:
            sent.popitem(last=False)
