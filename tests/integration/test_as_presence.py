"""m.presence to an application service with ``receive_ephemeral``, end to end.

The registration (``edgehs appservice new ... --receive-ephemeral``) claims ``@bridge_.*``; the
bridge is mautrix-python's ``AppService`` with ``ephemeral_events`` on, so it parses the
transaction's ``ephemeral`` list into ``PresenceEvent``s. It receives the presence of the users
who share a room with its virtual users (and of its own users), not of anyone else.
https://spec.matrix.org/v1.19/application-service-api/#pushing-ephemeral-data
"""

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import nio
import pytest
from as_support import (
    BRIDGE_MARKS,
    BRIDGE_USERS,
    GHOST,
    Bridge,
    NioUser,
    appservice_new,
    call,
    load_registration,
    wait_until,
)
from mautrix.types import Event, PresenceEvent

pytestmark = BRIDGE_MARKS

USERS = BRIDGE_USERS


class PresenceBridge(Bridge):
    """The recording bridge with mautrix's ephemeral events switched on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.presence: list[PresenceEvent] = []

    async def start(self) -> None:
        await super().start()
        assert self.appservice is not None
        self.appservice.ephemeral_events = True

    async def _on_event(self, event: Event) -> None:
        if isinstance(event, PresenceEvent):
            self.presence.append(event)
        elif hasattr(event, "event_id"):
            await super()._on_event(event)

    def states(self, user_id: str) -> list[tuple[str, str | None]]:
        return [(str(e.content.presence), e.content.status_msg) for e in self.presence
                if e.sender == user_id]


@pytest.fixture
def server_prepare(as_port: int) -> Callable[[Any], None]:
    def prepare(proc: Any) -> None:
        appservice_new(proc.config_path, "bridge", f"http://127.0.0.1:{as_port}",
                       "--users", USERS, "--receive-ephemeral")
    return prepare


@pytest.fixture
async def bridge(server: Any, as_port: int) -> AsyncIterator[PresenceBridge]:
    registration = load_registration(server.data_dir / "appservices" / "bridge.yaml")
    made = PresenceBridge(server.base_url, registration, as_port)
    try:
        await made.start()
        yield made
    finally:
        await made.stop()


async def test_presence_reaches_the_appservice(nio_user: NioUser, bridge: PresenceBridge,
                                               http: aiohttp.ClientSession) -> None:
    alice = await nio_user("alice")
    carol = await nio_user("carol")  # shares no room with the bridge's users
    created = await alice.room_create(name="Bridged", preset=nio.RoomPreset.public_chat)
    assert isinstance(created, nio.RoomCreateResponse), created
    ghost = bridge.intent(GHOST)
    await ghost.ensure_registered()
    await ghost.ensure_joined(created.room_id)

    # alice comes online by syncing; then sets a status explicitly.
    assert isinstance(await alice.sync(timeout=0), nio.SyncResponse)
    await wait_until(lambda: ("online", None) in bridge.states(alice.user_id),
                     lambda: f"bridge saw {bridge.presence}")
    assert isinstance(await carol.set_presence("online", "not bridged"), nio.PresenceSetResponse)
    assert isinstance(await alice.set_presence("unavailable", "afk"), nio.PresenceSetResponse)
    await wait_until(lambda: ("unavailable", "afk") in bridge.states(alice.user_id),
                     lambda: f"bridge saw {bridge.presence}")
    # carol's change came before alice's second one, through the same ordered outbox: had it
    # been queued for the bridge, it would have arrived by now.
    assert bridge.states(carol.user_id) == []

    # The bridge's own virtual user, set by masquerading: the bridge owns the user.
    auth = {"Authorization": f"Bearer {bridge.registration.as_token}"}
    await call(http, "PUT", f"/_matrix/client/v3/presence/{GHOST}/status",
               params={"user_id": GHOST}, headers=auth,
               json={"presence": "online", "status_msg": "bridging"})
    await wait_until(lambda: ("online", "bridging") in bridge.states(GHOST),
                     lambda: f"bridge saw {bridge.presence}")
    # Each presence event came in a transaction's ephemeral list, in the spec's format.
    raw = [e for d in bridge.deliveries if isinstance(d.body, dict)
           for e in d.body.get("ephemeral", []) if e.get("type") == "m.presence"]
    assert raw and all(set(e) == {"type", "sender", "content"} for e in raw), raw
