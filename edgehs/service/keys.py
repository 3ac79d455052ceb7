"""End-to-end encryption keys: upload, query, claim, and who changed their device list.

https://spec.matrix.org/v1.19/client-server-api/#end-to-end-encryption

Device keys, one-time keys and fallback keys of the requester's device are stored in one
transaction; a change of the device keys also adds a ``device_list_changes`` row at the next
position of the shared stream, which wakes /sync: every user sharing a room with the device's
owner then sees the owner in ``device_lists.changed``. Users of other servers are reported
under ``failures``: edgehs does not federate yet.
"""

from typing import Any

import aiosqlite

from edgehs.errors import Codes, MatrixError
from edgehs.service.events import EventService
from edgehs.store.db import Database
from edgehs.store.keys import (
    KeyStore,
    SignatureRow,
    add_device_list_change,
    add_one_time_keys,
    claim_key,
    put_device_keys,
    put_fallback_key,
)
from edgehs.store.rooms import MemberStore
from edgehs.types import JsonDict

DEFAULT_OTK_ALGORITHM = "signed_curve25519"  # always counted, 0 included (clients rely on it)
FALLBACK_UNSTABLE = "org.matrix.msc2732.fallback_keys"
NO_FEDERATION = {"status": 503, "message": "This server does not federate yet"}


def is_user_id(value: object) -> bool:
    if not isinstance(value, str) or not value.startswith("@"):
        return False
    local, sep, server = value[1:].partition(":")
    return bool(local and sep and server)


def check_signatures(value: object, where: str) -> dict[str, dict[str, str]]:
    """``signatures`` must be ``{user id: {key id: signature}}`` (400 M_BAD_JSON otherwise)."""
    if not isinstance(value, dict) or not all(
        isinstance(sigs, dict) and all(isinstance(s, str) for s in sigs.values())
        for sigs in value.values()
    ):
        raise MatrixError(400, Codes.BAD_JSON,
                          f"{where}.signatures must be an object of user ids to objects of "
                          "key ids to signatures")
    return value


def check_string_map(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise MatrixError(400, Codes.BAD_JSON, f"{where} must be an object of strings")
    return value


def parse_device_keys(raw: object, user_id: str, device_id: str) -> JsonDict:
    """The uploaded ``device_keys``: DeviceKeys with the requester's ids, keys named
    ``<algorithm>:<device id>`` and a signature by the device itself."""
    if not isinstance(raw, dict):
        raise MatrixError(400, Codes.BAD_JSON, "device_keys must be an object")
    for name, kind in (("user_id", str), ("device_id", str), ("algorithms", list),
                       ("keys", dict), ("signatures", dict)):
        if not isinstance(raw.get(name), kind):
            raise MatrixError(400, Codes.BAD_JSON,
                              f"device_keys.{name} is missing or not of type {kind.__name__}")
    if raw["user_id"] != user_id or raw["device_id"] != device_id:
        raise MatrixError(400, Codes.INVALID_PARAM,
                          "device_keys must be for the user and device of the access token")
    if not all(isinstance(a, str) for a in raw["algorithms"]):
        raise MatrixError(400, Codes.BAD_JSON, "device_keys.algorithms must be strings")
    keys = check_string_map(raw["keys"], "device_keys.keys")
    if any(name.partition(":")[2] != device_id for name in keys):
        raise MatrixError(400, Codes.INVALID_PARAM,
                          "device_keys.keys must be named <algorithm>:<device id>")
    signatures = check_signatures(raw["signatures"], "device_keys")
    if f"ed25519:{device_id}" not in signatures.get(user_id, {}):
        raise MatrixError(400, Codes.INVALID_PARAM,
                          "device_keys must be signed by the device's ed25519 key")
    return raw


def parse_key_map(raw: object, where: str) -> list[tuple[str, str, Any]]:
    """One-time or fallback keys: ``{"<algorithm>:<key id>": key string | key object}`` as
    (algorithm, key id, key)."""
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise MatrixError(400, Codes.BAD_JSON, f"{where} must be an object")
    out = []
    for name, value in raw.items():
        algorithm, sep, key_id = name.partition(":")
        if not (algorithm and sep and key_id):
            raise MatrixError(400, Codes.INVALID_PARAM,
                              f"{where}: {name!r} is not named <algorithm>:<key id>")
        if isinstance(value, dict):
            if not isinstance(value.get("key"), str):
                raise MatrixError(400, Codes.BAD_JSON, f"{where}.{name}.key must be a string")
            check_signatures(value.get("signatures"), f"{where}.{name}")
        elif not isinstance(value, str):
            raise MatrixError(400, Codes.BAD_JSON,
                              f"{where}.{name} must be a key string or a key object")
        out.append((algorithm, key_id, value))
    return out


def merge_signatures(obj: JsonDict, rows: list[SignatureRow]) -> JsonDict:
    """A copy of ``obj`` with the stored signatures added."""
    if not rows:
        return obj
    sigs = {u: dict(s) for u, s in obj.get("signatures", {}).items()}
    for row in rows:
        sigs.setdefault(row.signer_user_id, {})[row.signer_key_id] = row.signature
    return {**obj, "signatures": sigs}


def master_public_key(key: JsonDict | None) -> str | None:
    if key is None:
        return None
    [name] = key["keys"]
    return str(name).partition(":")[2]


class KeyService:
    def __init__(self, server_name: str, db: Database, store: KeyStore, members: MemberStore,
                 events: EventService) -> None:
        self.server_name = server_name
        self.db = db
        self.store = store
        self.members = members
        self.events = events  # run_write: a write at a position of the shared stream

    def is_local(self, user_id: str) -> bool:
        return user_id.partition(":")[2] == self.server_name

    # --- POST /keys/upload ------------------------------------------------------------------

    async def upload(self, user_id: str, device_id: str, body: JsonDict) -> dict[str, int]:
        """Store the device's keys; the one-time key counts after the upload."""
        device_keys = None
        if body.get("device_keys") is not None:
            device_keys = parse_device_keys(body["device_keys"], user_id, device_id)
        one_time = parse_key_map(body.get("one_time_keys"), "one_time_keys")
        fallback_raw = body.get("fallback_keys", body.get(FALLBACK_UNSTABLE))
        fallback = parse_key_map(fallback_raw, "fallback_keys")
        algorithms = [a for a, _, _ in fallback]
        if len(set(algorithms)) != len(algorithms):
            raise MatrixError(400, Codes.INVALID_PARAM,
                              "fallback_keys may hold one key per algorithm")

        async def write(conn: aiosqlite.Connection, position: int | None) -> None:
            changed = device_keys is not None and await put_device_keys(
                conn, user_id, device_id, device_keys)
            conflicts = await add_one_time_keys(conn, user_id, device_id, one_time)
            if conflicts:
                raise MatrixError(400, Codes.INVALID_PARAM,
                                  f"One-time keys already uploaded with other keys: "
                                  f"{', '.join(conflicts)}")
            for algorithm, key_id, value in fallback:
                await put_fallback_key(conn, user_id, device_id, algorithm, key_id, value)
            if changed and position is not None:
                await add_device_list_change(conn, user_id, position)

        if device_keys is not None:
            await self.events.run_write(write)  # notifies: the device list changed
        elif one_time or fallback:
            async def run(conn: aiosqlite.Connection) -> None:
                await write(conn, None)
            await self.db.write(run)
        return await self.one_time_key_counts(user_id, device_id)

    async def one_time_key_counts(self, user_id: str, device_id: str) -> dict[str, int]:
        counts = await self.store.count_one_time_keys(user_id, device_id)
        return {DEFAULT_OTK_ALGORITHM: 0, **counts}

    async def unused_fallback_types(self, user_id: str, device_id: str) -> list[str]:
        return await self.store.unused_fallback_algorithms(user_id, device_id)

    # --- POST /keys/query -------------------------------------------------------------------

    async def query(self, requester: str, wanted: dict[str, list[str]]) -> JsonDict:
        """Device keys and cross-signing keys of local users; the user-signing key only of
        the requester, and signatures by others only as far as the requester made them."""
        out: JsonDict = {"device_keys": {}, "failures": {}, "master_keys": {},
                         "self_signing_keys": {}, "user_signing_keys": {}}
        local = [u for u in wanted if self.is_local(u)]
        for user_id in wanted:
            if not self.is_local(user_id):
                out["failures"][user_id.partition(":")[2]] = NO_FEDERATION
        cross = await self.store.get_cross_signing_keys(local)
        signatures = await self.store.get_signatures(local)
        # One query for every user who wants all devices (the usual case: a room's members).
        everything = await self.store.get_device_keys_of_users(
            [u for u in local if not wanted[u]])
        for user_id in local:
            if wanted[user_id]:
                devices = await self.store.get_device_keys(user_id, wanted[user_id])
            else:
                devices = everything.get(user_id, {})
            visible = [s for s in signatures if s.target_user_id == user_id
                       and s.signer_user_id in (user_id, requester)]
            out["device_keys"][user_id] = {
                device_id: {
                    **merge_signatures(keys, [s for s in visible if s.target_key_id == device_id
                                              and s.signer_user_id == user_id]),
                    "unsigned": {"device_display_name": name} if name else {},
                } for device_id, (keys, name) in devices.items()
            }
            mine = cross.get(user_id, {})
            master = mine.get("master")
            if master is not None:
                pub = master_public_key(master)
                out["master_keys"][user_id] = merge_signatures(
                    master, [s for s in visible if s.target_key_id == pub])
            if "self_signing" in mine:
                out["self_signing_keys"][user_id] = mine["self_signing"]
            if "user_signing" in mine and user_id == requester:
                out["user_signing_keys"][user_id] = mine["user_signing"]
        return out

    # --- POST /keys/claim -------------------------------------------------------------------

    async def claim(self, wanted: dict[str, dict[str, str]]) -> JsonDict:
        """One key per (user, device, algorithm): a one-time key (never handed out twice),
        else the device's fallback key."""
        local = {u: d for u, d in wanted.items() if self.is_local(u)}
        failures = {u.partition(":")[2]: NO_FEDERATION for u in wanted if not self.is_local(u)}

        async def run(conn: aiosqlite.Connection) -> dict[str, dict[str, JsonDict]]:
            claimed: dict[str, dict[str, JsonDict]] = {}
            for user_id, devices in local.items():
                for device_id, algorithm in devices.items():
                    found = await claim_key(conn, user_id, device_id, algorithm)
                    if found is not None:
                        claimed.setdefault(user_id, {})[device_id] = {found[0]: found[1]}
            return claimed

        claimed = await self.db.write(run) if local else {}
        return {"one_time_keys": claimed, "failures": failures}

    # --- device lists: /sync's device_lists and GET /keys/changes ----------------------------

    async def device_list_changes(self, user_id: str, after: int, upto: int
                                  ) -> tuple[list[str], list[str]]:
        """(changed, left) for ``user_id`` between two positions of the shared stream.

        changed: users sharing a room with ``user_id`` whose device list or cross-signing keys
        changed, users who newly share a room (they joined, or ``user_id`` joined theirs), and
        ``user_id`` itself when its own keys changed. left: users with whom ``user_id`` shares
        no room any more."""
        if upto <= after:
            return [], []
        key_changes = await self.store.users_with_changes(after, upto)
        rooms = await self.members.get_rooms_for_user(user_id, ("join", "leave", "ban"))
        joined = [r for r, m in rooms.items() if m[0] == "join"]
        left_rooms = [r for r, m in rooms.items() if m[0] != "join" and after < m[2] <= upto]
        moves = await self.store.membership_changes(joined, after, upto)
        if not key_changes and not moves and not left_rooms:
            return [], []
        members = await self.store.joined_members(joined + left_rooms)
        shared = {u for r, u in members if r not in left_rooms}
        changed = {u for u in key_changes if u in shared}
        maybe_left: set[str] = set()
        for room_id, other, membership in moves:
            if other == user_id and membership == "join":
                changed.update(u for r, u in members if r == room_id)  # we joined their room
            elif membership == "join":
                changed.add(other)
            elif other != user_id:
                maybe_left.add(other)
        maybe_left.update(u for r, u in members if r in left_rooms)
        changed.discard(user_id)
        if user_id in key_changes:
            changed.add(user_id)
        left = {u for u in maybe_left if u not in shared and u != user_id}
        return sorted(changed), sorted(left)
