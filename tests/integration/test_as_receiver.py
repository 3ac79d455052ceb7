"""An old-style application service receiver, and bad input from and about application services.

The receiver is the 2015 Flask example's shape in aiohttp: ONE route, the unprefixed
``PUT /transactions/{txnId}``, the hs_token checked in ``?access_token=``, events recorded.
edgehs tries ``/_matrix/app/v1/transactions/{txnId}`` first and falls back to it on the 404.
Its registration is a YAML file written by hand and listed in edgehs.yaml.
"""

import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from as_support import (
    SERVER_NAME,
    add_registration_file,
    call,
    edgehs_cli,
    free_port,
    wait_until,
)

pytestmark = pytest.mark.integration

AS_TOKEN = "legacy-as-token-2015"
HS_TOKEN = "legacy-hs-token-2015"
V3 = "/_matrix/client/v3"
ESCAPED = re.escape(SERVER_NAME)


def registration(url: str) -> dict[str, Any]:
    return {
        "id": "receiver",
        "url": url,
        "as_token": AS_TOKEN,
        "hs_token": HS_TOKEN,
        "sender_localpart": "receiver",
        "namespaces": {
            "users": [{"regex": f"@legacy_.*:{ESCAPED}", "exclusive": True}],
            "aliases": [{"regex": f"#legacy_.*:{ESCAPED}", "exclusive": False}],
            "rooms": [],
        },
    }


@dataclass
class Receiver:
    """What the receiver saw: (txnId, events) per accepted PUT, and every request's path."""

    transactions: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    requests: list[tuple[str, str, int]] = field(default_factory=list)

    def events(self, room_id: str) -> list[dict[str, Any]]:
        return [e for _, events in self.transactions for e in events
                if e.get("room_id") == room_id and e.get("type") == "m.room.message"]

    async def on_transaction(self, request: web.Request) -> web.Response:
        """PUT /transactions/{txnId} — the whole 2015 receiver."""
        if request.query.get("access_token") != HS_TOKEN:
            return web.json_response({"errcode": "M_FORBIDDEN"}, status=403)
        body = await request.json()
        self.transactions.append((request.match_info["txnId"], body["events"]))
        return web.json_response({})

    @web.middleware
    async def log(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:
            self.requests.append((request.method, request.path, exc.status))
            raise
        self.requests.append((request.method, request.path, response.status))
        return response


@pytest.fixture
def server_prepare(as_port: int) -> Callable[[Any], None]:
    def prepare(proc: Any) -> None:
        add_registration_file(proc.config_path, proc.data_dir / "receiver.yaml",
                              registration(f"http://127.0.0.1:{as_port}"))
    return prepare


@pytest.fixture
async def receiver(server: Any, as_port: int) -> AsyncIterator[Receiver]:
    seen = Receiver()
    app = web.Application(middlewares=[seen.log])
    app.router.add_put("/transactions/{txnId}", seen.on_transaction)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", as_port).start()
        yield seen
    finally:
        await runner.cleanup()


async def register(http: aiohttp.ClientSession, name: str) -> tuple[str, dict[str, str]]:
    """A normal user (UIA dummy stage): (user_id, auth headers)."""
    body = {"username": name, "password": "pw", "auth": {"type": "m.login.dummy"}}
    done = await call(http, "POST", f"{V3}/register", json=body)
    return done["user_id"], {"Authorization": f"Bearer {done['access_token']}"}


def as_auth(token: str = AS_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_old_receiver_gets_events_on_the_unprefixed_path(
    http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    """The room is interesting through its alias (aliases namespace, not exclusive)."""
    alice, auth = await register(http, "alice")
    created = await call(http, "POST", f"{V3}/createRoom", headers=auth,
                         json={"room_alias_name": "legacy_lobby", "preset": "public_chat"})
    room_id = created["room_id"]
    sent = []
    for i in range(5):
        done = await call(http, "PUT", f"{V3}/rooms/{room_id}/send/m.room.message/t{i}",
                          headers=auth, json={"msgtype": "m.text", "body": f"reading {i}"})
        sent.append(done["event_id"])

    await wait_until(lambda: len(receiver.events(room_id)) >= 5,
                     lambda: f"received {receiver.transactions}, requests {receiver.requests}")
    events = receiver.events(room_id)
    assert [e["event_id"] for e in events] == sent
    assert [e["content"]["body"] for e in events] == [f"reading {i}" for i in range(5)]
    assert all(e["sender"] == alice for e in events)
    # The v1 path was tried, answered 404 by this receiver, and the legacy path used instead.
    assert any(p.startswith("/_matrix/app/v1/transactions/") and s == 404
               for _, p, s in receiver.requests), receiver.requests
    assert all(re.fullmatch(r"/transactions/[^/]+", p)
               for _, p, s in receiver.requests if s == 200), receiver.requests
    txn_ids = [t for t, _ in receiver.transactions]
    assert len(set(txn_ids)) == len(txn_ids), f"a transaction was repeated: {txn_ids}"


async def test_wrong_tokens_are_refused(http: aiohttp.ClientSession, receiver: Receiver) -> None:
    whoami = f"{V3}/account/whoami"
    me = await call(http, "GET", whoami, headers=as_auth())
    assert me["user_id"] == f"@receiver:{SERVER_NAME}"
    await call(http, "GET", whoami, 401, "M_UNKNOWN_TOKEN", headers=as_auth("not-the-token"))
    # The hs_token authenticates edgehs to the service, never the service to edgehs.
    await call(http, "GET", whoami, 401, "M_UNKNOWN_TOKEN", headers=as_auth(HS_TOKEN))
    await call(http, "GET", whoami, 401, "M_UNKNOWN_TOKEN", headers=as_auth("nope"),
               params={"user_id": f"@legacy_bot:{SERVER_NAME}"})
    await call(http, "GET", f"{whoami}?access_token=nope", 401, "M_UNKNOWN_TOKEN")

    as_register = {"type": "m.login.application_service", "username": "legacy_bot"}
    await call(http, "POST", f"{V3}/register", 401, "M_UNKNOWN_TOKEN",
               headers=as_auth("nope"), json=as_register)
    await call(http, "POST", f"{V3}/register", 401, "M_MISSING_TOKEN", json=as_register)

    ping = "/_matrix/client/v1/appservice/receiver/ping"
    await call(http, "POST", ping, 401, "M_UNKNOWN_TOKEN", headers=as_auth("nope"), json={})
    await call(http, "POST", ping, 401, "M_MISSING_TOKEN", json={})
    _, alice_auth = await register(http, "alice")
    await call(http, "POST", ping, 403, "M_FORBIDDEN", headers=alice_auth, json={})
    await call(http, "POST", "/_matrix/client/v1/appservice/someone_else/ping", 403,
               "M_FORBIDDEN", headers=as_auth(), json={})
    assert receiver.transactions == []


async def test_masquerading_outside_the_namespace_is_refused(
    http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    alice, auth = await register(http, "alice")
    room_id = (await call(http, "POST", f"{V3}/createRoom", headers=auth,
                          json={"preset": "public_chat"}))["room_id"]
    whoami = f"{V3}/account/whoami"
    await call(http, "GET", whoami, 403, "M_FORBIDDEN", headers=as_auth(),
               params={"user_id": alice})
    await call(http, "PUT", f"{V3}/rooms/{room_id}/send/m.room.message/m1", 403, "M_FORBIDDEN",
               headers=as_auth(), params={"user_id": alice},
               json={"msgtype": "m.text", "body": "not alice"})
    # In the namespace but never registered: nobody to act as.
    await call(http, "GET", whoami, 403, "M_FORBIDDEN", headers=as_auth(),
               params={"user_id": f"@legacy_ghost:{SERVER_NAME}"})
    # Registering or logging in a user outside the namespace.
    await call(http, "POST", f"{V3}/register", 400, "M_EXCLUSIVE", headers=as_auth(),
               json={"type": "m.login.application_service", "username": "alice2"})
    await call(http, "POST", f"{V3}/login", 403, "M_FORBIDDEN", headers=as_auth(),
               json={"type": "m.login.application_service",
                     "identifier": {"type": "m.id.user", "user": alice}})
    # People cannot take a name in the exclusive users namespace.
    await call(http, "POST", f"{V3}/register", 400, "M_EXCLUSIVE", json={
        "username": "legacy_bob", "password": "pw", "auth": {"type": "m.login.dummy"}})

    # Inside the namespace, once registered, it works.
    await call(http, "POST", f"{V3}/register", headers=as_auth(),
               json={"type": "m.login.application_service", "username": "legacy_ghost"})
    me = await call(http, "GET", whoami, headers=as_auth(),
                    params={"user_id": f"@legacy_ghost:{SERVER_NAME}"})
    assert me["user_id"] == f"@legacy_ghost:{SERVER_NAME}"


# --- malformed registration files: `edgehs run` refuses to start ------------------------------

BASE = registration("http://127.0.0.1:9")

MALFORMED: dict[str, tuple[object, str]] = {
    # case: (the file's content, the field the message must name)
    "missing hs_token": ({k: v for k, v in BASE.items() if k != "hs_token"}, "hs_token"),
    "same tokens": ({**BASE, "hs_token": AS_TOKEN}, "hs_token"),
    "bad regex": ({**BASE, "namespaces": {"users": [{"regex": "@(", "exclusive": True}]}},
                  "namespaces.users[0].regex"),
    "exclusive not a bool": (
        {**BASE, "namespaces": {"aliases": [{"regex": "#x_.*", "exclusive": "maybe"}]}},
        "namespaces.aliases[0].exclusive"),
    "namespaces not a mapping": ({**BASE, "namespaces": ["users"]}, "namespaces"),
    "url not http": ({**BASE, "url": "ftp://example.org/as"}, "url"),
    "sender_localpart with a colon": ({**BASE, "sender_localpart": "a:b"}, "sender_localpart"),
    "rate_limited not a bool": ({**BASE, "rate_limited": "no thanks"}, "rate_limited"),
    "id missing": ({k: v for k, v in BASE.items() if k != "id"}, "id"),
}


@pytest.fixture(scope="module")
def config_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("template") / "data"
    done = edgehs_cli("generate-config", "--server-name", SERVER_NAME, "--data-dir", str(data),
                      "--listen", f"127.0.0.1:{free_port()}")
    assert done.returncode == 0, done.stderr
    return data


def refused_start(config_template: Path, tmp_path: Path,
                  files: dict[str, object]) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``edgehs run`` with these registration files (name -> content) listed; it must exit
    with code 2 before binding. Returns the finished process and the data dir."""
    data = tmp_path / "data"
    shutil.copytree(config_template, data)
    config = data / "edgehs.yaml"
    for name, content in files.items():
        add_registration_file(config, data / name, content)
    done = edgehs_cli("run", "-c", str(config))  # a bug (a server that runs) times out at 60 s
    assert done.returncode == 2, f"exit {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert "listening on" not in done.stderr + done.stdout
    return done, data


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_registration_stops_start_up(config_template: Path, tmp_path: Path,
                                               case: str) -> None:
    content, field_name = MALFORMED[case]
    done, data = refused_start(config_template, tmp_path, {"bad.yaml": content})
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("configuration error: "), done.stderr
    assert f"{data / 'bad.yaml'}: {field_name}: " in message, message


@pytest.mark.parametrize(("content", "words"), [
    ("id: [unclosed\n", "not valid YAML"),
    ("- just\n- a list\n", "must be a YAML mapping"),
], ids=["not yaml", "not a mapping"])
def test_unreadable_registration_stops_start_up(config_template: Path, tmp_path: Path,
                                                content: str, words: str) -> None:
    done, data = refused_start(config_template, tmp_path, {"bad.yaml": content})
    assert f"{data / 'bad.yaml'}: " in done.stderr and words in done.stderr, done.stderr


def test_duplicate_as_token_names_both_files(config_template: Path, tmp_path: Path) -> None:
    other = {**BASE, "id": "other", "hs_token": "another-hs-token"}
    done, data = refused_start(config_template, tmp_path, {"one.yaml": BASE, "two.yaml": other})
    assert f"{data / 'two.yaml'}: as_token: " in done.stderr, done.stderr
    assert str(data / "one.yaml") in done.stderr, done.stderr


def test_missing_registration_file_stops_start_up(config_template: Path,
                                                  tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(config_template, data)
    config = data / "edgehs.yaml"
    raw = yaml.safe_load(config.read_text())
    raw["app_service_config_files"] = ["appservices/absent.yaml"]  # relative to data_dir
    config.write_text(yaml.safe_dump(raw))
    done = edgehs_cli("run", "-c", str(config))
    assert done.returncode == 2, done.stderr
    assert f"{data / 'appservices' / 'absent.yaml'}: cannot read" in done.stderr, done.stderr
