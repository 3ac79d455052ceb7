"""The presence state machine with a fake clock and an in-memory store (no sockets, no DB).

https://spec.matrix.org/v1.19/client-server-api/#presence
"""

from typing import Any

from edgehs.service.notifier import Notifier
from edgehs.service.presence import ACTIVE_MS, IDLE_MS, OFFLINE_MS, PresenceService
from edgehs.store.presence import PresenceRow

ALICE, BOB, REMOTE = "@alice:home.lan", "@bob:home.lan", "@eve:elsewhere.example"


class FakeStore:
    def __init__(self, rows: list[PresenceRow] | None = None) -> None:
        self.rows = {r.user_id: r for r in rows or []}
        self.saves = 0

    async def load_all(self) -> list[PresenceRow]:
        return list(self.rows.values())

    async def save(self, row: PresenceRow) -> None:
        self.saves += 1
        self.rows[row.user_id] = row

    async def co_members(self, user_id: str) -> set[str]:
        return {ALICE, BOB}


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t

    def advance_ms(self, ms: int) -> None:
        self.t += ms / 1000


def make(rows: list[PresenceRow] | None = None, enabled: bool = True
         ) -> tuple[PresenceService, FakeStore, Clock, list[tuple[str, Any]]]:
    store, clock = FakeStore(rows), Clock()
    service = PresenceService("home.lan", store, Notifier(), enabled=enabled,  # type: ignore[arg-type]
                              clock=clock)
    heard: list[tuple[str, Any]] = []
    service.listeners.append(lambda user, event: heard.append((user, event)))
    return service, store, clock, heard


def state(service: PresenceService, user: str) -> str:
    return str(service.content(user)["presence"])


def test_sync_online_then_idle_then_offline() -> None:
    service, store, clock, heard = make()
    with service.syncing(ALICE, "online"):
        assert state(service, ALICE) == "online"
        assert service.content(ALICE)["currently_active"] is True
        clock.advance_ms(ACTIVE_MS + 1)
        service.sweep()  # still syncing: online, but no longer currently active
        assert service.content(ALICE)["currently_active"] is False
        clock.advance_ms(IDLE_MS)
        service.sweep()
        assert state(service, ALICE) == "unavailable"
        with service.syncing(ALICE, "online"):  # idle by the timer: polling is no activity
            assert state(service, ALICE) == "unavailable"
    clock.advance_ms(OFFLINE_MS - 1)
    service.sweep()
    assert state(service, ALICE) == "unavailable"  # syncs just stopped: grace period
    clock.advance_ms(2)
    service.sweep()
    assert state(service, ALICE) == "offline"
    assert [e["content"]["presence"] for _, e in heard] == [
        "online", "online", "unavailable", "offline"]
    assert store.saves == 0  # nothing of this is written


def test_activity_and_set_presence_values() -> None:
    service, _, _, _ = make()
    service.bump_active(ALICE)  # a script that only sends stays offline
    assert state(service, ALICE) == "offline"
    with service.syncing(ALICE, "unavailable"):
        assert state(service, ALICE) == "unavailable"
        service.bump_active(ALICE)
        assert state(service, ALICE) == "online"
    with service.syncing(BOB, "offline"):
        assert state(service, BOB) == "offline"
    service.on_edu("!r:home.lan", {"type": "m.typing", "content": {"user_ids": [BOB]}})
    service.on_edu("!r:home.lan", {"type": "m.receipt", "content": {
        "$e": {"m.read": {ALICE: {"ts": 1}}}}})
    service.bump_active(REMOTE)  # not ours: ignored
    assert state(service, REMOTE) == "offline"


async def test_explicit_changes_are_persisted_once() -> None:
    service, store, _, _ = make()
    await service.set_status(ALICE, "online", "at home")
    await service.set_status(ALICE, "online", "at home")
    assert store.saves == 1
    await service.set_status(ALICE, "unavailable", None)
    assert store.saves == 2 and store.rows[ALICE].presence == "unavailable"


async def test_restored_after_restart_and_in_initial_sync() -> None:
    row = PresenceRow(ALICE, "unavailable", "on holiday", 1_699_999_000_000)
    service, _, clock, _ = make([row])
    await service.load()
    assert service.content(ALICE)["status_msg"] == "on holiday"
    events = await service.sync_events(BOB, None)
    assert [(e["sender"], e["content"]["status_msg"]) for e in events] == [
        (ALICE, "on holiday")]
    assert await service.sync_events(BOB, service.serial) == []
    clock.advance_ms(OFFLINE_MS + 1)
    service.sweep()  # nobody synced since the restart
    assert state(service, ALICE) == "offline"
    assert service.content(ALICE)["status_msg"] == "on holiday"


async def test_disabled_does_nothing() -> None:
    service, store, _, heard = make(enabled=False)
    await service.set_status(ALICE, "online", "x")
    with service.syncing(ALICE, "online"):
        pass
    assert service.content(ALICE) == {"presence": "offline"}
    assert await service.sync_events(ALICE, None) == []
    assert store.saves == 0 and heard == [] and service.serial == 0
