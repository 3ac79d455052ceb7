"""Accounts, devices and access tokens."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import aiosqlite

from edgehs.store.db import Database


@dataclass(frozen=True)
class TokenInfo:
    user_id: str
    device_id: str | None
    room_id: str | None  # a device token limited to one room
    valid_until_ms: int | None
    is_guest: bool = False  # a guest account (POST /register?kind=guest)


class UserStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        # token -> TokenInfo; tokens are looked up on every request.
        self._tokens: dict[str, TokenInfo] = {}
        # user -> position of its erasure; every event served to a client asks, erasures are
        # rare: the whole (small) table, loaded once, plus those noted since start.
        self._erased: dict[str, int] | None = None
        self._noted_erased: dict[str, int] = {}

    async def get_user(self, user_id: str) -> dict[str, object] | None:
        row = await self.db.fetchone("SELECT * FROM users WHERE user_id = ?", (user_id,))
        return None if row is None else dict(row)

    async def get_password_hash(self, user_id: str) -> str | None:
        value = await self.db.fetchval(
            "SELECT password_hash FROM users WHERE user_id = ? AND deactivated = 0", (user_id,)
        )
        return None if value is None else str(value)

    async def get_profile(self, user_id: str) -> tuple[str | None, str | None] | None:
        row = await self.db.fetchone(
            "SELECT displayname, avatar_url FROM users WHERE user_id = ?", (user_id,)
        )
        return None if row is None else (row[0], row[1])

    async def create_user(
        self, user_id: str, password_hash: str | None, admin: bool, ts: int,
        displayname: str | None, appservice_id: str | None = None, is_guest: bool = False,
    ) -> bool:
        """False if the user id is taken."""
        async def run(conn: aiosqlite.Connection) -> bool:
            async with conn.execute(
                "INSERT OR IGNORE INTO users (user_id, password_hash, admin, created_ts, "
                "displayname, appservice_id, is_guest) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (user_id, password_hash, int(admin), ts, displayname, appservice_id,
                 int(is_guest)),
            ) as cur:
                return cur.rowcount == 1
        return await self.db.write(run)

    async def guests_among(self, user_ids: Sequence[str]) -> set[str]:
        """The guest accounts among ``user_ids``."""
        if not user_ids:
            return set()
        rows = await self.db.fetchall(
            "SELECT user_id FROM users WHERE is_guest = 1 AND user_id IN "
            f"({','.join('?' * len(user_ids))})", list(user_ids),
        )
        return {r[0] for r in rows}

    async def upgrade_guest(self, user_id: str, password_hash: str | None) -> bool:
        """Turn a guest account into a full one with this password; False if ``user_id``
        is not a guest. Its tokens are looked up again, now without the guest flag."""
        async def run(conn: aiosqlite.Connection) -> bool:
            async with conn.execute(
                "UPDATE users SET is_guest = 0, password_hash = ? "
                "WHERE user_id = ? AND is_guest = 1", (password_hash, user_id),
            ) as cur:
                return cur.rowcount == 1
        upgraded = await self.db.write(run)
        self.forget_tokens(user_id, None)
        return upgraded

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        async def run(conn: aiosqlite.Connection) -> None:
            await conn.execute("UPDATE users SET password_hash = ? WHERE user_id = ?",
                               (password_hash, user_id))
        await self.db.write(run)

    async def set_profile_field(self, user_id: str, field: str, value: str | None) -> None:
        assert field in ("displayname", "avatar_url")

        async def run(conn: aiosqlite.Connection) -> None:
            await conn.execute(f"UPDATE users SET {field} = ? WHERE user_id = ?", (value, user_id))
        await self.db.write(run)

    async def erased_at(self, user_ids: Iterable[str]) -> dict[str, int]:
        """The erased ones of ``user_ids``, with the stream position of their erasure."""
        if self._erased is None:
            rows = await self.db.fetchall("SELECT user_id, stream_id FROM erased_users")
            self._erased = {str(r[0]): int(r[1]) for r in rows}
        erased, noted = self._erased, self._noted_erased
        return {u: erased.get(u, noted.get(u, 0)) for u in user_ids
                if u in erased or u in noted}

    def note_erased(self, user_id: str, position: int) -> None:
        """After the commit of ``mark_erased``."""
        self._noted_erased.setdefault(user_id, position)

    # --- tokens and devices ----------------------------------------------------------------

    async def get_token(self, token: str) -> TokenInfo | None:
        info = self._tokens.get(token)
        if info is not None:
            return info
        row = await self.db.fetchone(
            "SELECT t.user_id, t.device_id, t.room_id, t.valid_until_ms, u.is_guest "
            "FROM access_tokens t LEFT JOIN users u ON u.user_id = t.user_id "
            "WHERE t.token = ?", (token,),
        )
        if row is None:
            return None
        info = TokenInfo(row[0], row[1], row[2], row[3], bool(row[4]))
        self._tokens[token] = info
        return info

    def forget_tokens(self, user_id: str, device_ids: set[str] | None) -> None:
        """Drop cached tokens of the devices (all of the user's when None); called after the
        commit that deleted or replaced them."""
        self._tokens = {
            k: v for k, v in self._tokens.items()
            if not (v.user_id == user_id and (device_ids is None or v.device_id in device_ids))
        }

    async def device_ids(self, user_id: str) -> list[str]:
        rows = await self.db.fetchall("SELECT device_id FROM devices WHERE user_id = ?",
                                      (user_id,))
        return [str(r[0]) for r in rows]

    async def get_devices(self, user_id: str) -> list[dict[str, object]]:
        rows = await self.db.fetchall(
            "SELECT device_id, display_name, last_seen_ts, last_seen_ip FROM devices "
            "WHERE user_id = ? ORDER BY device_id", (user_id,),
        )
        return [dict(r) for r in rows]

    async def get_device(self, user_id: str, device_id: str) -> dict[str, object] | None:
        row = await self.db.fetchone(
            "SELECT device_id, display_name, last_seen_ts, last_seen_ip FROM devices "
            "WHERE user_id = ? AND device_id = ?", (user_id, device_id),
        )
        return None if row is None else dict(row)

    async def set_device_seen(self, user_id: str, device_id: str, ts: int, ip: str | None,
                              user_agent: str | None) -> None:
        """When, from where and with which User-Agent the device was last seen (an unknown
        address or agent keeps the one known)."""
        async def run(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "UPDATE devices SET last_seen_ts = ?, "
                "last_seen_ip = COALESCE(?, last_seen_ip), "
                "last_seen_user_agent = COALESCE(?, last_seen_user_agent) "
                "WHERE user_id = ? AND device_id = ?",
                (ts, ip, user_agent, user_id, device_id),
            )
        await self.db.write(run)

    async def get_device_connections(self, user_id: str) -> list[dict[str, object]]:
        """Each device of the user with where it was last seen (whois)."""
        rows = await self.db.fetchall(
            "SELECT device_id, last_seen_ts, last_seen_ip, last_seen_user_agent FROM devices "
            "WHERE user_id = ? ORDER BY device_id", (user_id,),
        )
        return [dict(r) for r in rows]

# --- writes inside a caller's transaction (with a device_list_changes row, see
# service/device_management.py) --------------------------------------------------------------

async def put_device(
    conn: aiosqlite.Connection, user_id: str, device_id: str, display_name: str | None,
    token: str, ts: int, room_id: str | None = None, ip: str | None = None,
) -> bool:
    """Create (or reuse) the device and issue a new token for it; the login is when (and,
    given ``ip``, where) the device was last seen. True if the device is new or renamed."""
    async with conn.execute("SELECT display_name FROM devices WHERE user_id = ? AND "
                            "device_id = ?", (user_id, device_id)) as cur:
        old = await cur.fetchone()
    await conn.execute(
        "INSERT INTO devices (user_id, device_id, display_name, last_seen_ts, "
        "last_seen_ip) VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, device_id) DO "
        "UPDATE SET display_name = COALESCE(excluded.display_name, display_name), "
        "last_seen_ts = excluded.last_seen_ts, "
        "last_seen_ip = COALESCE(excluded.last_seen_ip, last_seen_ip)",
        (user_id, device_id, display_name, ts, ip),
    )
    # Logging in again with a known device id replaces that device's tokens.
    await conn.execute("DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?",
                       (user_id, device_id))
    await conn.execute(
        "INSERT INTO access_tokens (token, user_id, device_id, created_ts, room_id) "
        "VALUES (?, ?, ?, ?, ?)", (token, user_id, device_id, ts, room_id),
    )
    return old is None or (display_name is not None and old[0] != display_name)


async def remove_devices(conn: aiosqlite.Connection, user_id: str,
                         device_ids: list[str] | None) -> bool:
    """Delete the devices and their tokens (all of the user's when ``device_ids`` is None);
    their keys go with them (migration 0009's trigger). True if a device was deleted."""
    if device_ids is None:
        async with conn.execute("DELETE FROM devices WHERE user_id = ?", (user_id,)) as cur:
            deleted = cur.rowcount
        await conn.execute("DELETE FROM access_tokens WHERE user_id = ?", (user_id,))
        return deleted > 0
    deleted = 0
    for d in device_ids:
        async with conn.execute("DELETE FROM devices WHERE user_id = ? AND device_id = ?",
                                (user_id, d)) as cur:
            deleted += cur.rowcount
        await conn.execute("DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?",
                           (user_id, d))
    return deleted > 0


async def rename_device(conn: aiosqlite.Connection, user_id: str, device_id: str,
                          name: str) -> bool:
    """True if the device exists and its name changed."""
    async with conn.execute(
        "UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ? AND "
        "display_name IS NOT ?", (name, user_id, device_id, name),
    ) as cur:
        return cur.rowcount > 0


async def mark_erased(conn: aiosqlite.Connection, user_id: str, position: int) -> None:
    await conn.execute("INSERT OR IGNORE INTO erased_users (user_id, stream_id) VALUES (?, ?)",
                       (user_id, position))


async def deactivate_user(conn: aiosqlite.Connection, user_id: str) -> bool:
    """Mark the account deactivated and delete its devices and tokens; True if it had a
    device."""
    await conn.execute("UPDATE users SET deactivated = 1, password_hash = NULL "
                       "WHERE user_id = ?", (user_id,))
    return await remove_devices(conn, user_id, None)
