"""Presence: online, unavailable (idle) or offline, with a status message.

https://spec.matrix.org/v1.19/client-server-api/#presence

Cheap by design, for a homeserver on an SD card: the state lives in memory. A /sync marks its
user online (``set_presence``), sending events, receipts and typing count as activity, and a
sweep every few seconds applies the timers: online -> unavailable after ``IDLE_MS`` without
activity, anything -> offline ``OFFLINE_MS`` after the user's last /sync ended (so a client that
stops polling goes offline about 30 s plus its long-poll timeout later). Only what a user sets
explicitly (PUT /presence/{userId}/status) is written to the database, and only when it differs
from what is stored: a sync loop writes nothing.

Every change that clients should see (state, status message, ``currently_active``) takes the
next number of an in-memory serial, the fourth part of the /sync token, and notifies: long-polls
wake and return the m.presence events of the users who share a room with them. Listeners (the
appservice pusher) get the same event as an EDU.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from edgehs.service.filters import EventFilter
from edgehs.service.notifier import Notifier
from edgehs.store.presence import PresenceRow, PresenceStore
from edgehs.types import JsonDict

ONLINE, UNAVAILABLE, OFFLINE = "online", "unavailable", "offline"
STATES = (ONLINE, UNAVAILABLE, OFFLINE)
IDLE_MS = 5 * 60 * 1000  # online -> unavailable without activity (Synapse's IDLE_TIMER)
OFFLINE_MS = 30 * 1000  # -> offline this long after the last /sync ended (SYNC_ONLINE_TIMEOUT)
ACTIVE_MS = 60 * 1000  # currently_active while the last activity is this recent
SWEEP_S = 5.0  # how often the timers are looked at

PresenceListener = Callable[[str, JsonDict], None]  # (user_id, m.presence event)


@dataclass
class UserPresence:
    presence: str = OFFLINE
    status_msg: str | None = None
    last_active: int = 0  # ms since the epoch; 0: never seen active
    last_sync: int = 0  # ms since the epoch when the last /sync ended (or started)
    syncing: int = 0  # /sync requests in flight
    idle: bool = False  # unavailable because of the idle timer (not by choice)
    serial: int = 0  # the serial of the last change clients were told about (0: never)
    shown: tuple[str, str | None, bool] | None = None  # (presence, status_msg, active) as told
    stored: tuple[str, str | None] | None = None  # (presence, status_msg) in the database


class PresenceService:
    def __init__(self, server_name: str, store: PresenceStore, notifier: Notifier, *,
                 enabled: bool = True, clock: Callable[[], float] = time.time) -> None:
        self.server_name = server_name
        self.store = store
        self.notifier = notifier
        self.enabled = enabled
        self.clock = clock
        self.serial = 0  # the presence stream: bumped on every change clients see
        self.listeners: list[PresenceListener] = []
        self._users: dict[str, UserPresence] = {}
        self._task: asyncio.Task[None] | None = None

    def _now(self) -> int:
        return int(self.clock() * 1000)

    def _is_mine(self, user_id: str) -> bool:
        return user_id.endswith(":" + self.server_name)

    # --- life cycle -------------------------------------------------------------------------

    async def load(self) -> None:
        """The explicitly set states and status messages, as they were before a restart. The
        timers treat the users as last seen at that moment (they go offline unless they sync)."""
        if not self.enabled:
            return
        now = self._now()
        for row in await self.store.load_all():
            self.serial += 1
            self._users[row.user_id] = UserPresence(
                presence=row.presence, status_msg=row.status_msg, last_active=row.updated_ts,
                last_sync=now, serial=self.serial, stored=(row.presence, row.status_msg),
                shown=(row.presence, row.status_msg, False),
            )

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._sweeper())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            self.sweep()

    # --- changes ----------------------------------------------------------------------------

    async def set_status(self, user_id: str, presence: str, status_msg: str | None) -> None:
        """PUT /presence/{userId}/status: an explicit choice, persisted when it differs from
        the stored one. Accepted and ignored while presence is disabled (as Synapse does)."""
        if not self.enabled:
            return
        user = self._users.setdefault(user_id, UserPresence())
        now = self._now()
        if presence == ONLINE:
            user.last_active = now
        user.presence, user.status_msg, user.idle = presence, status_msg, False
        self._maybe_notify(user_id, user, now)
        if user.stored != (presence, status_msg):
            user.stored = (presence, status_msg)
            await self.store.save(PresenceRow(user_id, presence, status_msg, now))

    @contextlib.contextmanager
    def syncing(self, user_id: str, set_presence: str) -> Iterator[None]:
        """Wrap one /sync request: ``online`` marks the user online (unless the idle timer
        made them unavailable: that takes activity), ``unavailable`` marks the user idle,
        ``offline`` leaves presence alone (and does not count as polling). Nothing here
        touches the database."""
        if not self.enabled or set_presence == OFFLINE:
            yield
            return
        user = self._users.setdefault(user_id, UserPresence())
        now = self._now()
        user.syncing += 1
        user.last_sync = now
        if set_presence == ONLINE and (user.presence == OFFLINE or (
                user.presence == UNAVAILABLE and not user.idle)):
            user.presence = ONLINE
            user.last_active = now
        elif set_presence == UNAVAILABLE:
            user.presence, user.idle = UNAVAILABLE, False
        self._maybe_notify(user_id, user, now)
        try:
            yield
        finally:
            user.syncing -= 1
            user.last_sync = self._now()

    def bump_active(self, user_id: str) -> None:
        """The user did something (sent an event, a receipt, typed): an idle user is online
        again. An offline user (e.g. a script that only sends) stays offline."""
        if not self.enabled or not self._is_mine(user_id):
            return
        user = self._users.setdefault(user_id, UserPresence())
        now = self._now()
        user.last_active = now
        if user.presence == UNAVAILABLE:
            user.presence, user.idle = ONLINE, False
        self._maybe_notify(user_id, user, now)

    async def activity_from_event(self, pdu: JsonDict, room_id: str) -> list[str]:
        """Registered with the write path's fanouts: a sent event is activity of its sender.
        Adds no outbox destination."""
        sender = pdu.get("sender")
        if isinstance(sender, str):
            self.bump_active(sender)
        return []

    def on_edu(self, room_id: str, edu: JsonDict) -> None:
        """Notifier EDU listener: typing users and the senders of public receipts are
        active."""
        content = edu.get("content")
        if not isinstance(content, dict):
            return
        if edu.get("type") == "m.typing":
            for user_id in content.get("user_ids", []):
                self.bump_active(user_id)
        elif edu.get("type") == "m.receipt":
            for by_type in content.values():
                for users in by_type.values():
                    for user_id in users:
                        self.bump_active(user_id)

    def sweep(self) -> None:
        """Apply the timers: idle after IDLE_MS, offline OFFLINE_MS after the last /sync,
        currently_active false after ACTIVE_MS."""
        now = self._now()
        for user_id, user in self._users.items():
            if user.presence == OFFLINE:
                continue  # no timer applies (and offline is never currently_active)
            if user.presence == ONLINE and now - user.last_active > IDLE_MS:
                user.presence, user.idle = UNAVAILABLE, True
            if user.presence != OFFLINE and user.syncing == 0 \
                    and now - max(user.last_sync, user.last_active) > OFFLINE_MS:
                user.presence, user.idle = OFFLINE, False
            self._maybe_notify(user_id, user, now)

    def _maybe_notify(self, user_id: str, user: UserPresence, now: int) -> None:
        """Tell clients (next serial, wake long-polls, listeners) if what they see changed."""
        shown = (user.presence, user.status_msg, self._currently_active(user, now))
        if shown == user.shown:
            return
        if user.shown is None and shown == (OFFLINE, None, False):
            user.shown = shown  # what clients assume of a user they never heard of
            return
        user.shown = shown
        self.serial += 1
        user.serial = self.serial
        self.notifier.notify()
        if self.listeners and self._is_mine(user_id):
            event = self.event(user_id, now)
            for listener in self.listeners:
                listener(user_id, event)

    # --- reads ------------------------------------------------------------------------------

    @staticmethod
    def _currently_active(user: UserPresence, now: int) -> bool:
        return user.presence == ONLINE and now - user.last_active <= ACTIVE_MS

    def content(self, user_id: str, now: int | None = None) -> JsonDict:
        """The presence of a user as GET /presence/{userId}/status answers it."""
        user = self._users.get(user_id) if self.enabled else None
        if user is None:
            return {"presence": OFFLINE}
        now = self._now() if now is None else now
        out: JsonDict = {"presence": user.presence}
        if user.last_active:
            out["last_active_ago"] = max(now - user.last_active, 0)
        if user.presence == ONLINE:
            out["currently_active"] = self._currently_active(user, now)
        if user.status_msg is not None:
            out["status_msg"] = user.status_msg
        return out

    def event(self, user_id: str, now: int | None = None) -> JsonDict:
        return {"type": "m.presence", "sender": user_id, "content": self.content(user_id, now)}

    def changed_since(self, since: int | None) -> list[str]:
        """The users whose presence changed after serial ``since`` (every known one when
        None), oldest change first: the legacy /events stream and /initialSync use it."""
        if not self.enabled:
            return []
        return [uid for _, uid in sorted(
            (u.serial, uid) for uid, u in self._users.items()
            if u.serial and (since is None or u.serial > since))]

    def local_changes(self, since: int, upto: int) -> list[tuple[int, str]]:
        """(serial, user_id) of this server's users whose presence last changed after serial
        ``since`` up to ``upto``, in serial order: the presence stream of the outbox."""
        if not self.enabled:
            return []
        return sorted((u.serial, uid) for uid, u in self._users.items()
                      if since < u.serial <= upto and self._is_mine(uid))

    async def is_visible(self, observer: str, observed: str) -> bool:
        """A user sees the presence of those sharing a joined room with them, and their own."""
        return observer == observed or observed in await self.store.co_members(observer)

    async def sync_events(self, user_id: str, since: int | None,
                          flt: EventFilter | None = None,
                          also: set[str] | frozenset[str] = frozenset()) -> list[JsonDict]:
        """The m.presence events for /sync: the users sharing a room with ``user_id`` (and
        the user) whose presence changed after serial ``since`` (all known ones when None),
        and those of ``also`` (users who just came to share a room with them) whatever their
        serial, offline ones included. Without changes this costs no database read."""
        if not self.enabled or (flt is not None and not flt.allows_type("m.presence")):
            return []
        changed = sorted(
            ((u.serial, uid) for uid, u in self._users.items()
             if u.serial and (since is None or u.serial > since or uid in also)),
        )
        listed = {uid for _, uid in changed}
        # New co-members never heard of (or never seen online) are sent as offline.
        changed[:0] = [(0, uid) for uid in sorted(also) if uid not in listed]
        if not changed:
            return []
        visible = await self.store.co_members(user_id) | {user_id}
        now = self._now()
        events = []
        for _, uid in changed:
            if uid not in visible:
                continue
            if flt is not None and (
                (flt.senders is not None and uid not in flt.senders)
                or (flt.not_senders and uid in flt.not_senders)
            ):
                continue
            events.append(self.event(uid, now))
        if flt is not None and flt.limit is not None:
            events = events[-flt.limit:] if flt.limit else []
        return events
