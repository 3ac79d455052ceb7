"""Room aliases and the published room directory.

https://spec.matrix.org/v1.19/client-server-api/#room-aliases
https://spec.matrix.org/v1.19/client-server-api/#published-room-directory
"""

import contextlib
from dataclasses import dataclass

from edgehs.errors import Codes, MatrixError
from edgehs.protocol.power_levels import creators, event_power_level, user_power_level
from edgehs.service.appservice.queries import AppServiceQueries
from edgehs.service.events import EventService
from edgehs.service.rooms import validate_alias
from edgehs.service.visibility import Visibility
from edgehs.store.appservice_room_list import AppServiceRoomListStore
from edgehs.store.events import EventStore
from edgehs.store.rooms import MemberStore, RoomStore
from edgehs.store.state import StateStore
from edgehs.types import JsonDict

# Rooms in one /publicRooms answer when the client gives no limit.
MAX_PUBLIC_ROOMS = 500
SUMMARY_TYPES = ("m.room.create", "m.room.name", "m.room.topic", "m.room.canonical_alias",
                 "m.room.avatar", "m.room.join_rules", "m.room.history_visibility",
                 "m.room.guest_access", "m.room.power_levels")


@dataclass(frozen=True)
class PublicRoomsQuery:
    limit: int | None = None
    since: str | None = None
    search: str | None = None
    room_types: tuple[str | None, ...] | None = None
    # The rooms of one application service network ("{appservice_id}|{network_id}", as
    # /thirdparty/protocols lists it) instead of the homeserver's own directory; or both.
    third_party_instance_id: str | None = None
    include_all_networks: bool = False


def check_alias_syntax(alias: str) -> str:
    """The alias's server name, or 400 M_INVALID_PARAM for something that is not an alias."""
    server = alias.split(":", 1)[1] if ":" in alias else ""
    validate_alias(alias, server)
    if len(alias.split(":", 1)[0]) < 2 or not server:
        raise MatrixError(400, Codes.INVALID_PARAM, f"{alias!r} is not a valid room alias")
    return server


def _topic(content: JsonDict) -> str | None:
    """The plain-text topic (``m.topic`` text/plain first, then ``topic``)."""
    block = content.get("m.topic")
    texts = block.get("m.text") if isinstance(block, dict) else None
    for item in texts if isinstance(texts, list) else []:
        if (isinstance(item, dict) and isinstance(item.get("body"), str)
                and item.get("mimetype", "text/plain") == "text/plain"):
            return str(item["body"])
    topic = content.get("topic")
    return topic if isinstance(topic, str) else None


class DirectoryService:
    def __init__(
        self, server_name: str, events: EventService, event_store: EventStore,
        state: StateStore, rooms: RoomStore, members: MemberStore, visibility: Visibility,
        appservice_rooms: AppServiceRoomListStore,
    ) -> None:
        self.server_name = server_name
        self.appservice_rooms = appservice_rooms
        self.events = events
        self.event_store = event_store
        self.state = state
        self.rooms = rooms
        self.members = members
        self.visibility = visibility
        # Asks application services about unknown aliases (set by homeserver.py).
        self.as_queries: AppServiceQueries | None = None

    async def _current_state(self, room_id: str, types: tuple[str, ...]) -> dict[str, JsonDict]:
        """The room's current ``(type, "")`` state events (PDUs), by type."""
        ids = await self.state.get_current_state_ids(room_id)
        wanted = {t: ids[(t, "")] for t in types if (t, "") in ids}
        loaded = await self.event_store.get_events(wanted.values())
        return {t: loaded[e].pdu for t, e in wanted.items() if e in loaded}

    async def can_change_room_list(self, room_id: str, user_id: str) -> bool:
        """A room creator, or a joined member who could send ``m.room.canonical_alias`` (a room
        moderator): who may publish the room or remove others' aliases."""
        rv = await self.events.room_version(room_id)
        membership = await self.members.get_membership(room_id, user_id)
        if membership is None or membership[0] != "join":
            return False
        state = await self._current_state(room_id, ("m.room.create", "m.room.power_levels"))
        create = state.get("m.room.create")
        if create is None:
            return False
        if user_id in creators(create, rv):
            return True
        power = _content(state, "m.room.power_levels") if "m.room.power_levels" in state \
            else None
        level = user_power_level(user_id, power, create, rv)
        return level >= event_power_level("m.room.canonical_alias", "", power)

    # --- aliases -----------------------------------------------------------------------------

    def _own_namespace(self, alias: str, user_id: str, appservice_id: str | None) -> bool:
        """Whether the request acts for an application service with ``alias`` in one of its
        namespaces: the spec gives it "full control over its namespace".
        https://spec.matrix.org/v1.19/application-service-api/#server-admin-style-permissions"""
        if self.as_queries is None:
            return False
        service = self.as_queries.registry.acting(user_id, appservice_id)
        return service is not None and service.owns_alias(alias)

    def _check_claim(self, alias: str, user_id: str, appservice_id: str | None) -> None:
        """400 M_EXCLUSIVE in another application service's exclusive alias namespace."""
        if self.as_queries is not None:
            self.as_queries.registry.check_alias_claim(alias, user_id, appservice_id)

    async def create_alias(self, user_id: str, alias: str, room_id: str,
                           appservice_id: str | None = None) -> None:
        """Map ``alias`` to ``room_id``. The user must be joined to the room, except an
        application service (``appservice_id``: the request carried its as_token) creating an
        alias of its own namespace; nobody else may create one in an exclusive namespace."""
        validate_alias(alias, self.server_name)
        check_alias_syntax(alias)
        if not room_id.startswith("!"):
            raise MatrixError(400, Codes.INVALID_PARAM, f"{room_id!r} is not a room id")
        self._check_claim(alias, user_id, appservice_id)
        await self.events.room_version(room_id)  # 404 for unknown rooms
        if not self._own_namespace(alias, user_id, appservice_id):
            await self.visibility.require_joined(room_id, user_id)
        if not await self.rooms.create_alias(alias, room_id, user_id):
            raise MatrixError(409, Codes.UNKNOWN, f"Room alias {alias} already exists")

    async def resolve_alias(self, alias: str) -> JsonDict:
        server = check_alias_syntax(alias)
        found = await self.rooms.get_alias(alias) if server == self.server_name else None
        if (found is None and server == self.server_name and self.as_queries is not None
                and await self.as_queries.query_alias(alias)):
            found = await self.rooms.get_alias(alias)  # the service has just created it
        if found is None:
            raise MatrixError(404, Codes.NOT_FOUND, f"Room alias {alias} not found")
        room_id = found[0]
        joined = await self.members.get_members(room_id, "join")
        servers = sorted({u.split(":", 1)[1] for u in joined if ":" in u} - {self.server_name})
        return {"room_id": room_id, "servers": [self.server_name, *servers]}

    async def check_canonical_alias(self, room_id: str, content: JsonDict) -> None:
        """The aliases of an ``m.room.canonical_alias`` content about to be sent: 400
        M_INVALID_PARAM when one is not an alias at all, 400 M_BAD_ALIAS when one does not
        point to ``room_id``. An absent, null or empty ``alias`` means none.

        https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3roomsroomidstateeventtypestatekey
        https://spec.matrix.org/v1.19/client-server-api/#mroomcanonical_alias"""
        alias = content.get("alias")
        alt = content.get("alt_aliases", [])
        if not isinstance(alt, list):
            raise MatrixError(400, Codes.BAD_JSON, "alt_aliases must be a list")
        aliases = [alias, *alt] if alias not in (None, "") else alt
        for item in aliases:
            if not isinstance(item, str):
                raise MatrixError(400, Codes.BAD_JSON, "Aliases must be strings")
            check_alias_syntax(item)
        for item in aliases:
            found = await self.rooms.get_alias(item)
            if found is None or found[0] != room_id:
                raise MatrixError(400, Codes.BAD_ALIAS, f"{item} does not point to this room")

    async def delete_alias(self, user_id: str, alias: str,
                           appservice_id: str | None = None) -> None:
        """Delete a local alias (its creator, or a moderator of its room, or an application
        service whose namespace holds it); the alias is also taken out of the room's
        ``m.room.canonical_alias`` when the user may change it. An alias in an exclusive
        namespace is refused to everyone but its service (400 M_EXCLUSIVE), as the spec
        says and Synapse does, even to the user who created it before the service came."""
        validate_alias(alias, self.server_name)
        found = await self.rooms.get_alias(alias)
        if found is None:
            raise MatrixError(404, Codes.NOT_FOUND, f"Room alias {alias} not found")
        room_id, creator = found
        self._check_claim(alias, user_id, appservice_id)
        if (creator != user_id and not self._own_namespace(alias, user_id, appservice_id)
                and not await self.can_change_room_list(room_id, user_id)):
            raise MatrixError(403, Codes.FORBIDDEN, "You may not delete this alias")
        await self.rooms.delete_alias(alias)
        await self._drop_from_canonical_alias(room_id, user_id, alias)

    async def _drop_from_canonical_alias(self, room_id: str, user_id: str, alias: str) -> None:
        current = await self.events.current_state_event(room_id, ("m.room.canonical_alias", ""))
        content = current.get("content") if current else None
        if not isinstance(content, dict):
            return
        alt = content.get("alt_aliases")
        if content.get("alias") != alias and not (isinstance(alt, list) and alias in alt):
            return
        new = {k: v for k, v in content.items() if not (k == "alias" and v == alias)}
        if isinstance(alt, list):
            new["alt_aliases"] = [a for a in alt if a != alias]
        # The alias is gone either way; the user may just not be allowed to edit the event.
        with contextlib.suppress(MatrixError):
            await self.events.send(room_id, user_id, "m.room.canonical_alias", new, "")

    async def local_aliases(self, user_id: str, room_id: str) -> list[str]:
        until = await self.visibility.readable_until(room_id, user_id)
        if until is None or until < 2**62:  # only members (or anyone if world_readable)
            raise MatrixError(403, Codes.FORBIDDEN, "You are not a member of this room")
        return await self.rooms.get_aliases_for_room(room_id)

    # --- the published room directory --------------------------------------------------------

    async def get_visibility(self, room_id: str) -> str:
        room = await self.rooms.get_room(room_id)
        if room is None:
            raise MatrixError(404, Codes.NOT_FOUND, "Room not found")
        return "public" if room.get("is_public") else "private"

    async def set_visibility(self, user_id: str, room_id: str, visibility: str) -> None:
        if visibility not in ("public", "private"):
            raise MatrixError(400, Codes.INVALID_PARAM, "visibility must be public or private")
        if await self.rooms.get_room(room_id) is None:
            raise MatrixError(404, Codes.NOT_FOUND, "Room not found")
        if not await self.can_change_room_list(room_id, user_id):
            raise MatrixError(403, Codes.FORBIDDEN,
                              "Only room moderators may publish or unpublish the room")
        await self.rooms.set_visibility(room_id, visibility == "public")

    async def set_appservice_visibility(self, appservice_id: str | None, network_id: str,
                                        room_id: str, visibility: str) -> None:
        """Publish or unpublish a room in an application service's directory of one network;
        only the service itself (its ``as_token``) may.
        https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3directorylistappservicenetworkidroomid"""
        if appservice_id is None:
            raise MatrixError(403, Codes.FORBIDDEN,
                              "Only application services may change their room directories")
        if visibility not in ("public", "private"):
            raise MatrixError(400, Codes.INVALID_PARAM, "visibility must be public or private")
        if await self.rooms.get_room(room_id) is None:
            raise MatrixError(404, Codes.NOT_FOUND, "Room not found")
        await self.appservice_rooms.set_published(appservice_id, network_id, room_id,
                                                  visibility == "public")

    async def _listed_room_ids(self, query: PublicRoomsQuery) -> list[str]:
        """The rooms a /publicRooms query lists: the homeserver's directory, one application
        service network's, or (``include_all_networks``) all of them."""
        if query.third_party_instance_id is not None:
            if query.include_all_networks:
                raise MatrixError(400, Codes.INVALID_PARAM, "third_party_instance_id cannot "
                                  "be combined with include_all_networks")
            # An instance id no service announced lists no rooms.
            appservice_id, sep, network_id = query.third_party_instance_id.partition("|")
            return (await self.appservice_rooms.get_room_ids(appservice_id, network_id)
                    if sep else [])
        room_ids = await self.rooms.get_public_room_ids()
        if query.include_all_networks:
            known = set(room_ids)
            room_ids += [r for r in await self.appservice_rooms.get_all_room_ids()
                         if r not in known]
        return room_ids

    async def room_summary(self, room_id: str) -> tuple[JsonDict, list[str]]:
        """One ``PublishedRoomsChunk`` entry, and the room's ``alt_aliases`` (for search)."""
        state = await self._current_state(room_id, SUMMARY_TYPES)
        entry: JsonDict = {
            "room_id": room_id,
            "num_joined_members": await self.members.count_members(room_id, "join"),
            "world_readable": _content(state, "m.room.history_visibility").get(
                "history_visibility") == "world_readable",
            "guest_can_join": _content(state, "m.room.guest_access").get(
                "guest_access") == "can_join",
            "join_rule": _content(state, "m.room.join_rules").get("join_rule", "public"),
        }
        for key, etype, field in (("name", "m.room.name", "name"),
                                  ("canonical_alias", "m.room.canonical_alias", "alias"),
                                  ("avatar_url", "m.room.avatar", "url"),
                                  ("room_type", "m.room.create", "type")):
            value = _content(state, etype).get(field)
            if isinstance(value, str) and value:
                entry[key] = value
        topic = _topic(_content(state, "m.room.topic"))
        if topic:
            entry["topic"] = topic
        alt = _content(state, "m.room.canonical_alias").get("alt_aliases")
        return entry, [a for a in alt if isinstance(a, str)] if isinstance(alt, list) else []

    async def public_rooms(self, query: PublicRoomsQuery) -> JsonDict:
        """The published rooms, most joined members first, in pages of ``query.limit``.
        Tokens are offsets into that order: ``n{offset}`` forwards, ``p{offset}`` back."""
        offset = _parse_since(query.since)
        rooms = []
        for room_id in await self._listed_room_ids(query):
            entry, alt_aliases = await self.room_summary(room_id)
            if entry["num_joined_members"] > 0 and _matches(entry, alt_aliases, query):
                rooms.append(entry)
        rooms.sort(key=lambda r: (-r["num_joined_members"], r["room_id"]))
        limit = query.limit or MAX_PUBLIC_ROOMS
        body: JsonDict = {"chunk": rooms[offset : offset + limit],
                          "total_room_count_estimate": len(rooms)}
        if offset + limit < len(rooms):
            body["next_batch"] = f"n{offset + limit}"
        if offset > 0:
            body["prev_batch"] = f"p{max(0, offset - limit)}"
        return body


def _content(state: dict[str, JsonDict], etype: str) -> JsonDict:
    content = state.get(etype, {}).get("content")
    return content if isinstance(content, dict) else {}


def _parse_since(since: str | None) -> int:
    if not since:
        return 0
    if since[0] in "np" and since[1:].isdigit():
        return int(since[1:])
    raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid pagination token {since!r}")


def _matches(entry: JsonDict, alt_aliases: list[str], query: PublicRoomsQuery) -> bool:
    if query.room_types is not None and entry.get("room_type") not in query.room_types:
        return False
    if not query.search:
        return True
    term = query.search.casefold()
    texts = [entry.get("name"), entry.get("topic"), entry.get("canonical_alias"),
             *alt_aliases]
    return any(isinstance(t, str) and term in t.casefold() for t in texts)
