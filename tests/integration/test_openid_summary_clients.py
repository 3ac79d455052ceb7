"""OpenID and room summaries through third-party clients, against edgehs as a process.

- matrix-nio's ``get_openid_token`` gets a token; the token is exchanged over plain HTTP at
  ``GET /_matrix/federation/v1/openid/userinfo`` (what an Element Call focus or a widget host
  does) for the user id, and refused once the server has restarted (tokens live in memory).
- matrix-js-sdk's ``getRoomSummary`` (MSC3266's unstable path, as Element Web calls it) and
  ``getOpenIdToken`` run in node (``tests/js/summary.mjs``); the stable v1.15 path is checked
  over plain HTTP.

https://spec.matrix.org/v1.19/client-server-api/#openid
https://spec.matrix.org/v1.19/server-server-api/#openid
https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1room_summaryroomidoralias

The node half needs node and ``npm ci --prefix tests/js``; outside CI it is skipped when either
is missing, in CI (CI=true) it fails instead.
"""

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import nio
import pytest
from js_support import node_script, require_js
from spec_schema import MatrixSpec

pytestmark = pytest.mark.integration

NioUser = Callable[[str], Awaitable[nio.AsyncClient]]
USERINFO = "/_matrix/federation/v1/openid/userinfo"
SUMMARY = "/room_summary/{roomIdOrAlias}"
PASSWORD = "correct horse battery staple"


def check_userinfo(spec: MatrixSpec, status: int, body: Any) -> None:
    spec.check_response("openid", "GET", "/openid/userinfo", status, body, api="server-server")


async def test_nio_openid_token_exchanged_over_http(nio_user: NioUser, server: Any,
                                                    http: aiohttp.ClientSession) -> None:
    spec = MatrixSpec.load()
    alice = await nio_user("alice")
    resp = await alice.get_openid_token(alice.user_id)
    assert isinstance(resp, nio.GetOpenIDTokenResponse), resp
    assert (resp.token_type, resp.matrix_server_name, resp.expires_in) == (
        "Bearer", "test.local", 3600)

    async with http.get(USERINFO, params={"access_token": resp.access_token}) as got:
        body = await got.json()
        assert (got.status, body) == (200, {"sub": alice.user_id})
        check_userinfo(spec, 200, body)
    async with http.get(USERINFO, params={"access_token": "forged"}) as got:
        body = await got.json()
        assert (got.status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
        check_userinfo(spec, 401, body)

    # Only for yourself: nio reports the spec's 403.
    other = await alice.get_openid_token("@bob:test.local")
    assert isinstance(other, nio.GetOpenIDTokenError), other
    assert (other.status_code, other.transport_response.status) == ("M_FORBIDDEN", 403)

    # Tokens live in memory: a restart invalidates them, the access token survives.
    await server.restart()
    async with http.get(USERINFO, params={"access_token": resp.access_token}) as got:
        assert (got.status, (await got.json())["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    again = await alice.get_openid_token(alice.user_id)
    assert isinstance(again, nio.GetOpenIDTokenResponse), again
    async with http.get(USERINFO, params={"access_token": again.access_token}) as got:
        assert await got.json() == {"sub": alice.user_id}


def ok(steps: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    got = steps[name]
    assert got["ok"], f"{name} failed: {got}"
    return dict(got["body"])


async def test_js_sdk_room_summary_and_openid(server: Any, tmp_path: Path,
                                              http: aiohttp.ClientSession) -> None:
    require_js()
    spec = MatrixSpec.load()
    for name in ("sumalice", "sumbob"):
        registrar = nio.AsyncClient(server.base_url)
        try:
            reg = await registrar.register(name, PASSWORD, device_name="registration")
            assert isinstance(reg, nio.RegisterResponse), reg
        finally:
            await registrar.close()
    steps: dict[str, dict[str, Any]] = {}
    async with node_script(tmp_path, "summary.mjs", "--base-url", server.base_url,
                           "--alice", "sumalice", "--bob", "sumbob",
                           env={"EDGEHS_PASSWORD": PASSWORD}) as js:
        got = await js.step("setup")
        while got["step"] != "done":
            steps[got["step"]] = got
            got = await js.step()
    setup = steps["setup"]

    lobby = ok(steps, "summary_alias")
    spec.check_response("room_summary", "GET", SUMMARY, 200, lobby)
    assert (lobby["room_id"], lobby["name"], lobby["topic"], lobby["canonical_alias"]) == (
        setup["lobby"], "JS lobby", "come in", setup["alias"])
    assert (lobby["join_rule"], lobby["num_joined_members"], lobby["membership"]) == (
        "public", 1, "leave")
    invited = ok(steps, "summary_invite")
    spec.check_response("room_summary", "GET", SUMMARY, 200, invited)
    assert (invited["room_id"], invited["name"], invited["membership"]) == (
        setup["secret"], "JS secret", "invite")
    anonymous = ok(steps, "summary_anonymous")
    spec.check_response("room_summary", "GET", SUMMARY, 200, anonymous)
    assert anonymous["room_id"] == setup["lobby"] and "membership" not in anonymous
    for name in ("summary_hidden", "summary_unknown_alias"):
        got = steps[name]
        assert (got["ok"], got["status"], got["errcode"]) == (False, 404, "M_NOT_FOUND"), got

    token = ok(steps, "openid")
    spec.check_response("openid", "POST", "/user/{userId}/openid/request_token", 200, token)
    async with http.get(USERINFO, params={"access_token": token["access_token"]}) as resp:
        assert await resp.json() == {"sub": "@sumbob:test.local"}

    # The stable v1.15 path answers what the unstable one did.
    async with http.get(f"/_matrix/client/v1/room_summary/{setup['lobby']}") as resp:
        body = await resp.json()
        assert resp.status == 200, body
        spec.check_response("room_summary", "GET", SUMMARY, 200, body)
        assert body == anonymous
