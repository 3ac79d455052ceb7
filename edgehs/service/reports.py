"""Reporting content: events, rooms and users reported to the server's admins.

https://spec.matrix.org/v1.19/client-server-api/#reporting-content

Reports are stored (``content_reports``) for the admins; nothing is sent anywhere. An unknown
event, room or user is answered with 404 M_NOT_FOUND, as is an event the reporter may not see
(not joined to its room, after they left, or redacted).
"""

import time

from edgehs.errors import Codes, MatrixError
from edgehs.protocol.auth_context import is_valid_user_id
from edgehs.protocol.canonical_json import check_canonical_json
from edgehs.service.visibility import Visibility
from edgehs.store.events import EventStore
from edgehs.store.reports import Report, ReportStore
from edgehs.store.rooms import MemberStore, RoomStore
from edgehs.store.users import UserStore

MAX_REASON_LENGTH = 1000


def _now() -> int:
    return int(time.time() * 1000)


def _reason(reason: str | None) -> str | None:
    """The reason as stored: at most 1000 characters; 400 M_BAD_JSON for lone surrogates,
    which SQLite (UTF-8) cannot store."""
    if reason is None:
        return None
    check_canonical_json(reason)
    return reason[:MAX_REASON_LENGTH]


class ReportService:
    def __init__(self, store: ReportStore, events: EventStore, rooms: RoomStore,
                 members: MemberStore, users: UserStore, visibility: Visibility) -> None:
        self.store = store
        self.events = events
        self.rooms = rooms
        self.members = members
        self.users = users
        self.visibility = visibility

    async def report_event(self, reporter: str, room_id: str, event_id: str,
                           reason: str | None, score: int | None) -> None:
        not_found = MatrixError(404, Codes.NOT_FOUND,
                                "The event was not found or you are not joined to the room")
        membership = await self.members.get_membership(room_id, reporter)
        if membership is None or membership[0] != "join":
            raise not_found
        ev = await self.events.get_event(event_id)
        if ev is None or ev.room_id != room_id or ev.redacted_by is not None:
            raise not_found
        until = await self.visibility.readable_until(room_id, reporter)
        if (until is None or ev.stream_ordering > until
                or not await self.visibility.is_visible(reporter, ev)):
            raise not_found
        await self.store.add(Report(reporter, room_id, event_id, None, _reason(reason), score,
                                    _now()))

    async def report_room(self, reporter: str, room_id: str, reason: str) -> None:
        if await self.rooms.get_room_version_id(room_id) is None:
            raise MatrixError(404, Codes.NOT_FOUND, "The room was not found")
        await self.store.add(Report(reporter, room_id, None, None, _reason(reason), None,
                                    _now()))

    async def report_user(self, reporter: str, user_id: str, reason: str) -> None:
        if not is_valid_user_id(user_id):
            raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid user id {user_id!r}")
        known = await self.users.get_user(user_id) is not None or bool(
            await self.members.get_rooms_for_user(user_id, ("join", "leave", "ban", "invite",
                                                            "knock")))
        if not known:
            raise MatrixError(404, Codes.NOT_FOUND, "The user was not found")
        await self.store.add(Report(reporter, None, None, user_id, _reason(reason), None,
                                    _now()))
