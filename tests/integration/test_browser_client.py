"""A real web client in a real browser against edgehs: Hydrogen (Element's lightweight web
client, from the npm package hydrogen-view-sdk, bundled by esbuild) in Debian's headless
Chromium, driven by playwright-core as ``node tests/js/browser.mjs``.

Hydrogen logs in with a password, shows the room list, accepts an invite, sends a message that a
matrix-nio user receives, and shows the nio user's answer. A screenshot of every step is saved
in tests/artifacts/browser-client/ (or $EDGEHS_ARTIFACTS), and the paths are printed.

Needs node, ``npm ci --prefix tests/js`` and /usr/bin/chromium (``make test`` and ``.ci/run``
install them); outside CI the test is skipped when one is missing, in CI (CI=true) it fails.
"""

import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nio
import pytest
from js_support import node_script, require_js
from test_e2ee_nio import (
    ENCRYPTION,
    MakeClient,
    e2e_user,  # noqa: F401  (fixture)
    receive,
    send_encrypted,
    tick,
)

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
ARTIFACTS = Path(os.environ.get("EDGEHS_ARTIFACTS",
                                Path(__file__).resolve().parents[1] / "artifacts"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PNG = b"\x89PNG\r\n\x1a\n"


def require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing; CI must run the browser test (apt-get install "
                    "chromium)")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")


async def nio_receives(client: nio.AsyncClient, room_id: str, event_id: str) -> nio.Event:
    for _ in range(10):
        resp = await client.sync(timeout=3000)
        assert isinstance(resp, nio.SyncResponse), resp
        room = resp.rooms.join.get(room_id)
        for event in room.timeline.events if room else []:
            if event.event_id == event_id:
                return event
    pytest.fail(f"nio never received {event_id}")


async def register(server: Any, name: str) -> str:
    registrar = nio.AsyncClient(server.base_url)
    try:
        reg = await registrar.register(name, PASSWORD, device_name="registration")
        assert isinstance(reg, nio.RegisterResponse), reg
    finally:
        await registrar.close()
    return str(reg.user_id)


class NioSide:
    """What the nio user does while Hydrogen runs: receive its message, answer it."""

    def __init__(self, client: nio.AsyncClient, room_id: str, encrypted: bool) -> None:
        self.client, self.room_id, self.encrypted = client, room_id, encrypted

    async def receive(self, event_id: str) -> nio.Event:
        if self.encrypted:
            return await receive(self.client, self.room_id, event_id)
        return await nio_receives(self.client, self.room_id, event_id)

    async def answer(self, body: str, hydrogen_user: str) -> str:
        if not self.encrypted:
            sent = await self.client.room_send(self.room_id, "m.room.message",
                                               {"msgtype": "m.text", "body": body})
            assert isinstance(sent, nio.RoomSendResponse), sent
            return str(sent.event_id)
        for _ in range(5):  # Hydrogen's device, through device_lists and /keys/query
            if list(self.client.device_store.active_user_devices(hydrogen_user)):
                break
            await tick(self.client, timeout=1000)
        assert list(self.client.device_store.active_user_devices(hydrogen_user)), \
            "nio never saw Hydrogen's device keys"
        return await send_encrypted(self.client, self.room_id, body)


async def run_hydrogen(server: Any, tmp_path: Path, nio_side: NioSide, user_id: str,
                       room_name: str, shots: Path) -> None:
    """Hydrogen logs in as USER_ID, accepts the invite to ROOM_NAME, sends, receives."""
    shutil.rmtree(shots, ignore_errors=True)
    from_browser, from_nio = "Hello from Hydrogen in Chromium", "Hi dave, nio here"
    screenshots: list[str] = []
    async with node_script(tmp_path, "browser.mjs", "--base-url", server.base_url, "--user",
                           user_id.split(":")[0][1:], "--room-name", room_name, "--send",
                           from_browser, "--expect", from_nio, "--artifacts", str(shots),
                           "--timeout", "150", env={"EDGEHS_PASSWORD": PASSWORD}) as browser:
        try:
            for step in ("logged_in", "room_open"):
                screenshots += (await browser.step(step))["screenshots"]
            sent = await browser.step("sent")
            screenshots += sent["screenshots"]
            assert sent["event_id"].startswith("$")

            got = await nio_side.receive(sent["event_id"])
            assert isinstance(got, nio.RoomMessageText), f"nio got no readable message: {got}"
            assert (got.sender, got.body) == (user_id, from_browser)
            assert got.decrypted == nio_side.encrypted

            answer = await nio_side.answer(from_nio, user_id)
            received = await browser.step("received")
            screenshots += received["screenshots"]
            assert received["event_id"] == answer
            await browser.step("done")
            assert await browser.proc.wait() == 0
        finally:
            print(f"browser screenshots in {shots}:\n" + "\n".join(sorted(
                str(p) for p in shots.glob("*.png"))))
    assert [Path(p).name for p in screenshots] == [
        "01-login.png", "02-room-list.png", "03-invite.png", "04-room.png", "05-sent.png",
        "06-received.png"]
    for path in screenshots:
        assert Path(path).read_bytes().startswith(PNG), path


async def test_hydrogen_in_chromium_sends_and_receives(
        nio_user: Callable[[str], Awaitable[nio.AsyncClient]], server: Any,
        tmp_path: Path) -> None:
    require_js()
    require_chromium()
    alice = await nio_user("alice")
    dave = await register(server, "dave")
    created = await alice.room_create(name="Household chat", invite=[dave])
    assert isinstance(created, nio.RoomCreateResponse), created
    first = await alice.sync(timeout=0)
    assert isinstance(first, nio.SyncResponse), first
    await run_hydrogen(server, tmp_path, NioSide(alice, created.room_id, encrypted=False), dave,
                       "Household chat", ARTIFACTS / "browser-client")


async def test_hydrogen_in_chromium_encrypted_room(e2e_user: MakeClient,  # noqa: F811
                                                   server: Any, tmp_path: Path) -> None:
    """The same in an encrypted room: Hydrogen (olm/megolm in the page) and matrix-nio
    (vodozemac) decrypt each other's messages; edgehs only carries ciphertext."""
    require_js()
    require_chromium()
    alice = await e2e_user("alice")
    dave = await register(server, "dave")
    created = await alice.room_create(name="Secret household chat", invite=[dave],
                                      initial_state=[ENCRYPTION])
    assert isinstance(created, nio.RoomCreateResponse), created
    await tick(alice)
    await run_hydrogen(server, tmp_path, NioSide(alice, created.room_id, encrypted=True), dave,
                       "Secret household chat", ARTIFACTS / "browser-client-encrypted")
