"""Room summary (MSC3266, Matrix v1.15): a preview of one room by id or alias.

https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1room_summaryroomidoralias

The summary is the space hierarchy's room entry (itself the ``/publicRooms`` chunk plus
``room_version``, ``encryption`` and ``allowed_room_ids``) without ``children_state``, and,
for an authenticated requester, their ``membership`` ("leave" when they have none, as
Synapse answers).

Who may see it (MSC3266, "the same rules as /hierarchy"):

- anyone, even unauthenticated: rooms whose join rule is public, knock or knock_restricted,
  or whose history is world_readable (the spec's "Servers MAY allow unauthenticated access").
  A user banned from such a room sees it too (membership "ban", which the spec's enum lists;
  hiding it would only make them drop their token), as in Synapse;
- an authenticated user who is joined, invited or knocking, or who could join a restricted
  room (:meth:`HierarchyService.accessible`: joined to one of its allowed rooms).

Otherwise, and for rooms this server does not hold (``via`` is not followed: there is no
federation), the answer is 404 M_NOT_FOUND, so a hidden room and a missing one look alike.
"""

from edgehs.errors import Codes, MatrixError
from edgehs.service.directory import DirectoryService
from edgehs.service.events import EventService
from edgehs.service.hierarchy import HierarchyService
from edgehs.store.rooms import MemberStore, RoomStore
from edgehs.types import JsonDict

# Memberships that show the room to its user whatever the join rules say.
MEMBER_STATES = ("join", "invite", "knock")


class RoomSummaryService:
    def __init__(self, events: EventService, rooms: RoomStore, members: MemberStore,
                 directory: DirectoryService, hierarchy: HierarchyService) -> None:
        self.events = events
        self.rooms = rooms
        self.members = members
        self.directory = directory
        self.hierarchy = hierarchy

    async def resolve(self, room_id_or_alias: str) -> str:
        """The room id: an id as it is, an alias through the directory (404 M_NOT_FOUND when
        unknown); anything else is 400 M_INVALID_PARAM."""
        if room_id_or_alias.startswith("#"):
            return str((await self.directory.resolve_alias(room_id_or_alias))["room_id"])
        if room_id_or_alias.startswith("!") and len(room_id_or_alias) > 1:
            return room_id_or_alias
        raise MatrixError(400, Codes.INVALID_PARAM,
                          f"{room_id_or_alias!r} is neither a room id nor a room alias")

    async def _public(self, room_id: str, entry: JsonDict) -> bool:
        """What an unauthenticated requester may see: the spec's two conditions."""
        if entry.get("world_readable") is True:
            return True
        rule = entry.get("join_rule")
        rv = await self.events.room_version(room_id)
        return rule == "public" or (rule == "knock" and rv.knock_join_rule) or (
            rule == "knock_restricted" and rv.knock_restricted_join_rule)

    async def summary(self, room_id: str, user_id: str | None) -> JsonDict:
        """The summary of ``room_id`` for ``user_id`` (None: unauthenticated)."""
        not_found = MatrixError(404, Codes.NOT_FOUND,
                                "Room not found, or you are not allowed to see it")
        if await self.rooms.get_room_version_id(room_id) is None:
            raise not_found
        entry = await self.hierarchy.room_entry(room_id, suggested_only=False)
        entry.pop("children_state", None)
        public = await self._public(room_id, entry)
        if user_id is None:
            if not public:
                raise not_found
            return entry
        membership = await self.members.get_membership(room_id, user_id)
        if not (public or (membership is not None and membership[0] in MEMBER_STATES)
                or await self.hierarchy.accessible(room_id, user_id)):
            raise not_found
        entry["membership"] = membership[0] if membership is not None else "leave"
        return entry
