"""To-device messages for an application service's users, pushed in its transactions.

The registration (``edgehs appservice new ... --receive-ephemeral``) claims ``@bridge_.*``
exclusively; the bridge is mautrix-python's ``AppService`` with ``encryption_events`` on, so
its transaction handler parses the to-device list (``to_device``, or MSC2409's
``de.sorunome.msc2409.to_device``) into ``ASToDeviceEvent``s with ``to_user_id`` and
``to_device_id``. The sender is a matrix-nio client. Delivery goes through the durable outbox:
a bridge that is down receives the messages when it is back.
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
from mautrix.types import ASToDeviceEvent

pytestmark = BRIDGE_MARKS

USERS = BRIDGE_USERS


class E2eeBridge(Bridge):
    """The recording bridge, with mautrix's encryption events (to-device) switched on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.to_device: list[ASToDeviceEvent] = []

    async def start(self) -> None:
        await super().start()
        assert self.appservice is not None
        self.appservice.encryption_events = True
        self.appservice.to_device_handler = self._on_to_device  # type: ignore[assignment]

    async def _on_to_device(self, event: ASToDeviceEvent) -> None:
        self.to_device.append(event)

    def contents(self) -> list[tuple[str, str, str, Any]]:
        return [(e.to_user_id, e.to_device_id, str(e.sender), e.content)
                for e in self.to_device]


@pytest.fixture
def server_prepare(as_port: int) -> Callable[[Any], None]:
    def prepare(proc: Any) -> None:
        appservice_new(proc.config_path, "bridge", f"http://127.0.0.1:{as_port}",
                       "--users", USERS, "--receive-ephemeral")
    return prepare


@pytest.fixture
async def bridge(server: Any, as_port: int) -> AsyncIterator[E2eeBridge]:
    registration = load_registration(server.data_dir / "appservices" / "bridge.yaml")
    made = E2eeBridge(server.base_url, registration, as_port)
    try:
        await made.start()
        yield made
    finally:
        await made.stop()


async def ghost_device(bridge: E2eeBridge, http: aiohttp.ClientSession) -> str:
    """Register the ghost through mautrix and give it a device (AS login): its device id."""
    await bridge.intent(GHOST).ensure_registered()
    auth = {"Authorization": f"Bearer {bridge.registration.as_token}"}
    body = await call(http, "POST", "/_matrix/client/v3/login", headers=auth, json={
        "type": "m.login.application_service",
        "identifier": {"type": "m.id.user", "user": GHOST}})
    return str(body["device_id"])


async def send(client: nio.AsyncClient, user_id: str, device_id: str,
               content: dict[str, Any]) -> None:
    resp = await client.to_device(nio.ToDeviceMessage("org.example.secret", user_id, device_id,
                                                      content))
    assert isinstance(resp, nio.ToDeviceResponse), resp


async def test_to_device_reaches_the_bridge(bridge: E2eeBridge, nio_user: NioUser,
                                            http: aiohttp.ClientSession) -> None:
    device = await ghost_device(bridge, http)
    alice = await nio_user("alice")
    await send(alice, GHOST, device, {"n": 1})
    await send(alice, GHOST, "*", {"n": 2})
    await wait_until(lambda: len(bridge.to_device) >= 2,
                     lambda: f"the bridge got {bridge.contents()}")
    assert [(e.to_user_id, e.to_device_id, e.sender, str(e.type)) for e in bridge.to_device] == [
        (GHOST, device, alice.user_id, "org.example.secret")] * 2
    assert [e.content["n"] for e in bridge.to_device] == [1, 2]
    # Both names are in the transaction: the unprefixed one mautrix read, and MSC2409's.
    raw = next(d.body for d in bridge.deliveries if isinstance(d.body, dict)
               and "de.sorunome.msc2409.to_device" in d.body)
    assert raw["de.sorunome.msc2409.to_device"] == raw["to_device"]
    # Pushed, not kept: the ghost's device has nothing waiting in /sync.
    auth = {"Authorization": f"Bearer {bridge.registration.as_token}"}
    sync = await call(http, "GET", "/_matrix/client/v3/sync", headers=auth,
                      params={"user_id": GHOST, "device_id": device, "timeout": "0"})
    assert sync["to_device"]["events"] == []


async def test_bridge_down_then_up_gets_the_messages(bridge: E2eeBridge, nio_user: NioUser,
                                                     http: aiohttp.ClientSession) -> None:
    device = await ghost_device(bridge, http)
    alice = await nio_user("alice")
    await bridge.stop()
    for i in range(3):
        await send(alice, GHOST, device, {"n": i})
    await bridge.start()
    await wait_until(lambda: len(bridge.to_device) >= 3,
                     lambda: f"the bridge got {bridge.contents()}")
    assert [e.content["n"] for e in bridge.to_device] == [0, 1, 2]


async def test_ordinary_users_still_sync_theirs(bridge: E2eeBridge, nio_user: NioUser) -> None:
    alice = await nio_user("alice")
    bob = await nio_user("bob")
    await send(alice, bob.user_id, bob.device_id, {"n": 1})
    resp = await bob.sync(timeout=5000)
    assert isinstance(resp, nio.SyncResponse), resp
    assert [e.source["content"] for e in resp.to_device_events] == [{"n": 1}]
    assert bridge.to_device == []
