"""Accounts: registration, login, tokens, passwords, devices.

https://spec.matrix.org/v1.19/client-server-api/#client-authentication
"""

import asyncio
import re
import secrets
import time

import nacl.exceptions
import nacl.pwhash

from edgehs.errors import Codes, MatrixError
from edgehs.service.device_management import DeviceService
from edgehs.store.users import TokenInfo, UserStore

LOCALPART_RE = re.compile(r"[a-z0-9._=\-/+]+")
# The spec's historical grammar (``extended_user_id_char``: printable ASCII but ':'), which
# servers must accept and application services may register (mautrix-go's mixed-case senders):
# https://spec.matrix.org/v1.19/appendices/#historical-user-ids
HISTORICAL_LOCALPART_RE = re.compile(r"[!-9;-~]+")
MAX_USER_ID_LENGTH = 255
# argon2id with a small memory cost: a Pi must not swap for a login.
PWHASH_OPS = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
PWHASH_MEM = 16 * 1024 * 1024


def hash_password(password: str) -> str:
    return nacl.pwhash.argon2id.str(password.encode(), PWHASH_OPS, PWHASH_MEM).decode()


def check_password(password_hash: str, password: str) -> bool:
    try:
        return bool(nacl.pwhash.verify(password_hash.encode(), password.encode()))
    except nacl.exceptions.InvalidkeyError:
        return False


def new_token(prefix: str = "syt") -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def new_device_id() -> str:
    return secrets.token_hex(5).upper()


class UserService:
    def __init__(self, server_name: str, users: UserStore, devices: DeviceService) -> None:
        self.server_name = server_name
        self.users = users
        self.devices = devices

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    def validate_localpart(self, localpart: str, *, historical: bool = False) -> str:
        """``localpart`` if it fits the user id grammar (the historical one with
        ``historical``, for application services' users), else 400 M_INVALID_USERNAME."""
        if historical:
            if not HISTORICAL_LOCALPART_RE.fullmatch(localpart):
                raise MatrixError(400, Codes.INVALID_USERNAME,
                                  "User names may only contain printable ASCII characters "
                                  "other than ':'")
        elif not LOCALPART_RE.fullmatch(localpart):
            raise MatrixError(400, Codes.INVALID_USERNAME,
                              "User names may only contain a-z, 0-9, and . _ = - / +")
        if len(self.user_id(localpart)) > MAX_USER_ID_LENGTH:
            raise MatrixError(400, Codes.INVALID_USERNAME, "User name is too long")
        return localpart

    def is_local(self, user_id: str) -> bool:
        return user_id.endswith(":" + self.server_name)

    async def is_available(self, localpart: str) -> bool:
        localpart = self.validate_localpart(localpart)
        return await self.users.get_user(self.user_id(localpart)) is None

    async def register(
        self, localpart: str | None, password: str | None, *, admin: bool = False,
        appservice_id: str | None = None, historical: bool = False, is_guest: bool = False,
    ) -> str:
        """Create the account; returns the user id. M_USER_IN_USE if taken. ``historical``
        allows the historical grammar (application services' users); ``is_guest`` makes a
        guest account (https://spec.matrix.org/v1.19/client-server-api/#guest-access)."""
        if localpart is None:
            localpart = await self._free_numeric_localpart()
        localpart = self.validate_localpart(localpart, historical=historical)
        user_id = self.user_id(localpart)
        pw_hash = None
        if password is not None:
            pw_hash = await asyncio.get_running_loop().run_in_executor(
                None, hash_password, password
            )
        created = await self.users.create_user(
            user_id, pw_hash, admin, int(time.time() * 1000), localpart, appservice_id,
            is_guest,
        )
        if not created:
            raise MatrixError(400, Codes.USER_IN_USE, "That user name is already taken")
        return user_id

    async def _free_numeric_localpart(self) -> str:
        while True:
            candidate = str(secrets.randbelow(10**9))
            if await self.users.get_user(self.user_id(candidate)) is None:
                return candidate

    async def exists(self, user_id: str) -> bool:
        """Whether the account was registered (deactivated or not)."""
        return await self.users.get_user(user_id) is not None

    async def is_admin(self, user_id: str) -> bool:
        """Whether the account is a server admin (``register-user --admin``)."""
        user = await self.users.get_user(user_id)
        return user is not None and bool(user.get("admin"))

    async def require_active(self, user_id: str) -> None:
        """403 M_FORBIDDEN for an account never registered, 403 M_USER_DEACTIVATED for a
        deactivated one (an application service logging in one of its users)."""
        user = await self.users.get_user(user_id)
        if user is None:
            raise MatrixError(403, Codes.FORBIDDEN, f"{user_id} has not been registered")
        if user["deactivated"]:
            raise MatrixError(403, Codes.USER_DEACTIVATED, "This account has been deactivated")

    async def is_deactivated(self, user_id: str) -> bool:
        """Whether the account exists and was deactivated (POST /account/deactivate)."""
        user = await self.users.get_user(user_id)
        return user is not None and bool(user["deactivated"])

    async def check_login(self, user_id: str, password: str) -> bool:
        pw_hash = await self.users.get_password_hash(user_id)
        if pw_hash is None:
            return False
        return await asyncio.get_running_loop().run_in_executor(
            None, check_password, pw_hash, password
        )

    async def login(
        self, user_id: str, device_id: str | None, display_name: str | None,
        room_id: str | None = None, ip: str | None = None,
    ) -> tuple[str, str]:
        """Issue an access token for (a new or given) device: (token, device_id). ``ip`` is
        the client's address, listed as the device's ``last_seen_ip``."""
        device_id = device_id or new_device_id()
        token = new_token()
        await self.devices.add(user_id, device_id, display_name, token, room_id, ip)
        return token, device_id

    async def validate_token(self, token: str) -> TokenInfo:
        info = await self.users.get_token(token)
        if info is None:
            raise MatrixError(401, Codes.UNKNOWN_TOKEN, "Unrecognised access token",
                              soft_logout=False)
        if info.valid_until_ms is not None and info.valid_until_ms < time.time() * 1000:
            raise MatrixError(401, Codes.UNKNOWN_TOKEN, "Access token has expired",
                              soft_logout=True)
        return info

    async def upgrade_guest(self, user_id: str, password: str | None) -> None:
        """Make the guest ``user_id`` a full account with ``password``.
        https://spec.matrix.org/v1.19/client-server-api/#guest-access"""
        pw_hash = None
        if password is not None:
            pw_hash = await asyncio.get_running_loop().run_in_executor(
                None, hash_password, password)
        if not await self.users.upgrade_guest(user_id, pw_hash):
            raise MatrixError(400, Codes.USER_IN_USE, "That user name is already taken")

    async def change_password(self, user_id: str, password: str, device_id: str | None, *,
                              logout_devices: bool) -> None:
        """POST /account/password: the new password (400 M_WEAK_PASSWORD when empty); with
        ``logout_devices`` every device but ``device_id`` is logged out, keys and all.
        https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3accountpassword"""
        if not password:
            raise MatrixError(400, Codes.WEAK_PASSWORD, "The new password must not be empty")
        await self.set_password(user_id, password)
        if logout_devices:
            await self.devices.delete_others(user_id, device_id)

    async def set_password(self, user_id: str, password: str) -> None:
        pw_hash = await asyncio.get_running_loop().run_in_executor(None, hash_password, password)
        await self.users.set_password_hash(user_id, pw_hash)
