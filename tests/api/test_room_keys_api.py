"""Server-side key backups: versions, keys of all rooms / a room / a session, the replacement
rules, etag and count, and the spec's errcodes for bad input. Every response is checked
against key_backup.yaml.

https://spec.matrix.org/v1.19/client-server-api/#server-side-key-backups
"""

from typing import Any
from urllib.parse import quote

from aiohttp.test_utils import TestClient
from spec_schema import MatrixSpec
from support import V3, User

API = "key_backup"
ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
AUTH_DATA = {"public_key": "abcdefg",
             "signatures": {"@alice:test.local": {"ed25519:DEV": "sig"}}}
ROOM = "!room:test.local"
OTHER_ROOM = "!other:test.local"


def key(index: int = 0, forwarded: int = 0, verified: bool = False, tag: str = "a"
        ) -> dict[str, Any]:
    return {"first_message_index": index, "forwarded_count": forwarded, "is_verified": verified,
            "session_data": {"ephemeral": "eph", "ciphertext": tag, "mac": "mac"}}


class Backup:
    """Requests of one user, each response checked against the spec."""

    def __init__(self, client: TestClient, user: User, spec: MatrixSpec) -> None:
        self.client, self.user, self.spec = client, user, spec

    async def call(self, method: str, template: str, status: int = 200, body: Any = None,
                   v: str | None = None, raw: bytes | None = None,
                   **path: str) -> Any:
        """``v``: the ``?version=`` query; ``path``: the template's parameters."""
        url = V3 + template.format(**{k: quote(x, safe="") for k, x in path.items()})
        params = {"version": v} if v is not None else {}
        kwargs: dict[str, Any] = {"data": raw} if raw is not None else (
            {"json": body} if body is not None else {})
        resp = await self.client.request(method, url, params=params, headers=self.user.auth,
                                         **kwargs)
        data = await resp.json()
        assert resp.status == status, data
        self.spec.check_response(API, method, template, status, data)
        return data

    async def error(self, method: str, template: str, status: int, errcode: str,
                    **kwargs: Any) -> dict[str, Any]:
        data = await self.call(method, template, status, **kwargs)
        assert data["errcode"] == errcode, data
        assert isinstance(data["error"], str)
        return dict(data)

    async def create(self, auth_data: dict[str, Any] | None = None) -> str:
        data = await self.call("POST", "/room_keys/version", body={
            "algorithm": ALGORITHM, "auth_data": auth_data or AUTH_DATA})
        return str(data["version"])

    async def put_session(self, version: str, session: str, body: dict[str, Any],
                          room: str = ROOM) -> dict[str, Any]:
        return dict(await self.call("PUT", "/room_keys/keys/{roomId}/{sessionId}", body=body,
                                    v=version, roomId=room, sessionId=session))

    async def session(self, version: str, session: str, room: str = ROOM) -> dict[str, Any]:
        return dict(await self.call("GET", "/room_keys/keys/{roomId}/{sessionId}",
                                    v=version, roomId=room, sessionId=session))


async def test_versions_lifecycle(client: TestClient, register: Any, spec: MatrixSpec) -> None:
    alice = Backup(client, await register("alice"), spec)
    await alice.error("GET", "/room_keys/version", 404, "M_NOT_FOUND")
    v1 = await alice.create()
    info = await alice.call("GET", "/room_keys/version")
    assert info == {"algorithm": ALGORITHM, "auth_data": AUTH_DATA, "count": 0,
                    "etag": info["etag"], "version": v1}
    assert await alice.call("GET", "/room_keys/version/{version}", version=v1) == info
    # Only auth_data changes; a body version must be the path's.
    new_auth = {"public_key": "hijklmn"}
    assert await alice.call("PUT", "/room_keys/version/{version}", body={
        "algorithm": ALGORITHM, "auth_data": new_auth, "version": v1}, version=v1) == {}
    assert (await alice.call("GET", "/room_keys/version"))["auth_data"] == new_auth
    # A second backup becomes current; the first is still readable.
    v2 = await alice.create()
    assert int(v2) > int(v1)
    assert (await alice.call("GET", "/room_keys/version"))["version"] == v2
    assert (await alice.call("GET", "/room_keys/version/{version}",
                             version=v1))["version"] == v1
    # Delete: gone, deleting again succeeds, versions are not reused.
    assert await alice.call("DELETE", "/room_keys/version/{version}", version=v2) == {}
    assert await alice.call("DELETE", "/room_keys/version/{version}", version=v2) == {}
    await alice.error("GET", "/room_keys/version/{version}", 404, "M_NOT_FOUND",
                      version=v2)
    assert (await alice.call("GET", "/room_keys/version"))["version"] == v1
    v3 = await alice.create()
    assert int(v3) > int(v2)
    # Backups are per user.
    bob = Backup(client, await register("bob"), spec)
    await bob.error("GET", "/room_keys/version", 404, "M_NOT_FOUND")
    await bob.error("GET", "/room_keys/version/{version}", 404, "M_NOT_FOUND",
                    version=v3)


async def test_session_id_with_slash(client: TestClient, register: Any,
                                     spec: MatrixSpec) -> None:
    """Megolm session ids are standard base64, so they may hold '/' (sent as %2F) and '+'."""
    alice = Backup(client, await register("alice"), spec)
    version = await alice.create()
    session = "ab/cd+ef/gh"
    assert (await alice.put_session(version, session, key()))["count"] == 1
    assert await alice.session(version, session) == key()
    listed = await alice.call("GET", "/room_keys/keys/{roomId}", v=version, roomId=ROOM)
    assert list(listed["sessions"]) == [session]


async def test_version_bad_input(client: TestClient, register: Any, spec: MatrixSpec) -> None:
    alice = Backup(client, await register("alice"), spec)
    post = "/room_keys/version"
    await alice.error("POST", post, 400, "M_NOT_JSON", raw=b"{nope")
    await alice.error("POST", post, 400, "M_BAD_JSON", raw=b"[1]")
    await alice.error("POST", post, 400, "M_MISSING_PARAM", body={"auth_data": {}})
    await alice.error("POST", post, 400, "M_MISSING_PARAM", body={"algorithm": ALGORITHM})
    await alice.error("POST", post, 400, "M_BAD_JSON", body={"algorithm": 5, "auth_data": {}})
    await alice.error("POST", post, 400, "M_INVALID_PARAM",
                      body={"algorithm": "", "auth_data": {}})
    await alice.error("POST", post, 400, "M_BAD_JSON",
                      body={"algorithm": ALGORITHM, "auth_data": "x"})
    v1 = await alice.create()
    put = "/room_keys/version/{version}"
    await alice.error("PUT", put, 400, "M_INVALID_PARAM", body={
        "algorithm": "org.example.other", "auth_data": {}}, version=v1)
    await alice.error("PUT", put, 400, "M_INVALID_PARAM", body={
        "algorithm": ALGORITHM, "auth_data": {}, "version": "99"}, version=v1)
    await alice.error("PUT", put, 400, "M_BAD_JSON", body={
        "algorithm": ALGORITHM, "auth_data": []}, version=v1)
    await alice.error("PUT", put, 404, "M_NOT_FOUND", body={
        "algorithm": ALGORITHM, "auth_data": {}}, **{"version": "99"})
    for unknown in ("99", "abc", "-1"):
        await alice.error("GET", put, 404, "M_NOT_FOUND", version=unknown)
        await alice.error("DELETE", put, 404, "M_NOT_FOUND", version=unknown)
    # Without a token.
    resp = await client.get(f"{V3}/room_keys/version")
    assert (resp.status, (await resp.json())["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_keys_all_room_session(client: TestClient, register: Any,
                                     spec: MatrixSpec) -> None:
    alice = Backup(client, await register("alice"), spec)
    version = await alice.create()
    empty = await alice.call("GET", "/room_keys/keys", v=version)
    assert empty == {"rooms": {}}
    assert await alice.call("GET", "/room_keys/keys/{roomId}", v=version,
                            roomId=ROOM) == {"sessions": {}}
    await alice.error("GET", "/room_keys/keys/{roomId}/{sessionId}", 404, "M_NOT_FOUND",
                      v=version, roomId=ROOM, sessionId="s0")
    etag0 = (await alice.call("GET", "/room_keys/version"))["etag"]

    # All rooms at once.
    result = await alice.call("PUT", "/room_keys/keys", v=version, body={"rooms": {
        ROOM: {"sessions": {"s1": key(tag="1"), "s2": key(tag="2")}},
        OTHER_ROOM: {"sessions": {"s3": key(tag="3")}}}})
    assert result["count"] == 3 and result["etag"] != etag0
    # One room, one session.
    result2 = await alice.call("PUT", "/room_keys/keys/{roomId}", v=version,
                               roomId=OTHER_ROOM, body={"sessions": {"s4": key(tag="4")}})
    assert result2["count"] == 4 and result2["etag"] != result["etag"]
    result3 = await alice.put_session(version, "s5", key(tag="5"))
    assert result3["count"] == 5

    everything = await alice.call("GET", "/room_keys/keys", v=version)
    assert everything == {"rooms": {
        ROOM: {"sessions": {"s1": key(tag="1"), "s2": key(tag="2"), "s5": key(tag="5")}},
        OTHER_ROOM: {"sessions": {"s3": key(tag="3"), "s4": key(tag="4")}}}}
    assert await alice.call("GET", "/room_keys/keys/{roomId}", v=version,
                            roomId=OTHER_ROOM) == everything["rooms"][OTHER_ROOM]
    assert await alice.session(version, "s2") == key(tag="2")
    info = await alice.call("GET", "/room_keys/version/{version}", version=version)
    assert (info["count"], info["etag"]) == (5, result3["etag"])

    # Deleting: one session, one room, everything; count and etag follow.
    deleted = await alice.call("DELETE", "/room_keys/keys/{roomId}/{sessionId}",
                               v=version, roomId=ROOM, sessionId="s1")
    assert deleted["count"] == 4 and deleted["etag"] != result3["etag"]
    await alice.error("GET", "/room_keys/keys/{roomId}/{sessionId}", 404, "M_NOT_FOUND",
                      v=version, roomId=ROOM, sessionId="s1")
    assert (await alice.call("DELETE", "/room_keys/keys/{roomId}", v=version,
                             roomId=OTHER_ROOM))["count"] == 2
    assert (await alice.call("DELETE", "/room_keys/keys", v=version))["count"] == 0
    assert await alice.call("GET", "/room_keys/keys", v=version) == {"rooms": {}}
    # Deleting a version deletes its keys; its key endpoints are then 404.
    await alice.put_session(version, "s9", key())
    await alice.call("DELETE", "/room_keys/version/{version}", version=version)
    for method, template in (("GET", "/room_keys/keys"), ("DELETE", "/room_keys/keys"),
                             ("GET", "/room_keys/keys/{roomId}"),
                             ("DELETE", "/room_keys/keys/{roomId}"),
                             ("GET", "/room_keys/keys/{roomId}/{sessionId}"),
                             ("DELETE", "/room_keys/keys/{roomId}/{sessionId}")):
        await alice.error(method, template, 404, "M_NOT_FOUND", v=version, roomId=ROOM,
                          sessionId="s9")
    await alice.error("PUT", "/room_keys/keys/{roomId}/{sessionId}", 404, "M_NOT_FOUND",
                      v=version, roomId=ROOM, sessionId="s9", body=key())


async def test_replacement_rules(client: TestClient, register: Any, spec: MatrixSpec) -> None:
    alice = Backup(client, await register("alice"), spec)
    version = await alice.create()
    first = await alice.put_session(version, "s", key(index=5, forwarded=2, tag="start"))

    async def offer(new: dict[str, Any], kept: dict[str, Any]) -> None:
        before = (await alice.call("GET", "/room_keys/version"))["etag"]
        result = await alice.put_session(version, "s", new)
        assert await alice.session(version, "s") == kept
        assert result["count"] == 1
        # The etag moves exactly when the stored key changed.
        assert (result["etag"] != before) == (kept is new)

    start = key(index=5, forwarded=2, tag="start")
    # Same is_verified: a higher first_message_index loses, a lower one wins.
    await offer(key(index=6, forwarded=0, tag="later"), start)
    lower = key(index=3, forwarded=9, tag="lower")
    await offer(lower, lower)
    # Same index: the lower forwarded_count wins; a tie keeps what is stored.
    fewer = key(index=3, forwarded=1, tag="fewer")
    await offer(fewer, fewer)
    await offer(key(index=3, forwarded=1, tag="tie"), fewer)
    # A verified key beats an unverified one, even with a worse index...
    verified = key(index=8, forwarded=4, verified=True, tag="verified")
    await offer(verified, verified)
    # ... and an unverified key never replaces a verified one.
    await offer(key(index=0, forwarded=0, verified=False, tag="unverified"), verified)
    better = key(index=1, forwarded=4, verified=True, tag="better")
    await offer(better, better)
    assert first["count"] == 1


async def test_wrong_version_and_bad_keys(client: TestClient, register: Any,
                                         spec: MatrixSpec) -> None:
    alice = Backup(client, await register("alice"), spec)
    session = "/room_keys/keys/{roomId}/{sessionId}"
    # No backup at all.
    await alice.error("PUT", session, 404, "M_NOT_FOUND", v="1", roomId=ROOM,
                      sessionId="s", body=key())
    old = await alice.create()
    current = await alice.create()
    for template, body in (("/room_keys/keys", {"rooms": {ROOM: {"sessions": {"s": key()}}}}),
                           ("/room_keys/keys/{roomId}", {"sessions": {"s": key()}}),
                           (session, key())):
        data = await alice.error("PUT", template, 403, "M_WRONG_ROOM_KEYS_VERSION",
                                 v=old, roomId=ROOM, sessionId="s", body=body)
        assert data["current_version"] == current
        await alice.error("PUT", template, 404, "M_NOT_FOUND", v="77", roomId=ROOM,
                          sessionId="s", body=body)
        await alice.error("PUT", template, 400, "M_MISSING_PARAM", roomId=ROOM,
                          sessionId="s", body=body)
    await alice.error("GET", "/room_keys/keys", 400, "M_MISSING_PARAM")
    await alice.error("DELETE", "/room_keys/keys/{roomId}", 400, "M_MISSING_PARAM",
                      roomId=ROOM)
    # Reading and deleting in a backup that is not current is allowed.
    assert await alice.call("GET", "/room_keys/keys", v=old) == {"rooms": {}}
    assert (await alice.call("DELETE", "/room_keys/keys", v=old))["count"] == 0

    bad_keys: list[tuple[Any, str]] = [
        ({**key(), "is_verified": "yes"}, "M_BAD_JSON"),
        ({**key(), "first_message_index": "1"}, "M_BAD_JSON"),
        ({**key(), "first_message_index": True}, "M_BAD_JSON"),
        ({**key(), "forwarded_count": -1}, "M_INVALID_PARAM"),
        ({**key(), "session_data": "ciphertext"}, "M_BAD_JSON"),
        ({k: v for k, v in key().items() if k != "forwarded_count"}, "M_BAD_JSON"),
    ]
    for body, errcode in bad_keys:
        await alice.error("PUT", session, 400, errcode, v=current, roomId=ROOM,
                          sessionId="s", body=body)
        await alice.error("PUT", "/room_keys/keys", 400, errcode, v=current,
                          body={"rooms": {ROOM: {"sessions": {"s": body}}}})
    await alice.error("PUT", session, 400, "M_NOT_JSON", v=current, roomId=ROOM,
                      sessionId="s", raw=b"not json")
    await alice.error("PUT", session, 400, "M_INVALID_PARAM", v=current,
                      roomId="not-a-room", sessionId="s", body=key())
    await alice.error("PUT", "/room_keys/keys", 400, "M_MISSING_PARAM", v=current,
                      body={})
    await alice.error("PUT", "/room_keys/keys", 400, "M_BAD_JSON", v=current,
                      body={"rooms": []})
    await alice.error("PUT", "/room_keys/keys", 400, "M_INVALID_PARAM", v=current,
                      body={"rooms": {"#alias:test.local": {"sessions": {}}}})
    await alice.error("PUT", "/room_keys/keys", 400, "M_MISSING_PARAM", v=current,
                      body={"rooms": {ROOM: {}}})
    await alice.error("PUT", "/room_keys/keys/{roomId}", 400, "M_BAD_JSON", v=current,
                      roomId=ROOM, body={"sessions": {"s": 5}})
    # Nothing of the refused uploads was stored.
    assert await alice.call("GET", "/room_keys/keys", v=current) == {"rooms": {}}
