"""Who a user can find: the user directory and mutual rooms, read from the membership index.

No table of its own: the candidates are computed from ``room_memberships`` and
``current_state`` at query time, so joins, leaves and profile changes (which are member
events) are reflected at once. See ``service/user_directory.py`` for the measured cost.
"""

from dataclasses import dataclass

from edgehs.store.db import Database


@dataclass(frozen=True)
class DirectoryEntry:
    user_id: str
    display_name: str | None
    avatar_url: str | None


# Users joined to a room the searcher is joined to, or to a room with a public join rule or
# world_readable history visibility (the minimum the spec asks for; Synapse's default). Sharing
# a private room with yourself does not count.
# A local user's profile is their global one (users row); a remote user's comes from one of
# their member events. Deactivated local users are left out.
VISIBLE_USERS = """
WITH mine AS (
    SELECT room_id FROM room_memberships WHERE user_id = ?2 AND membership = 'join'
), open_rooms AS (
    SELECT cs.room_id FROM current_state cs JOIN events e ON e.event_id = cs.event_id
    WHERE (cs.type = 'm.room.join_rules' AND cs.state_key = ''
           AND json_extract(e.json, '$.content.join_rule') = 'public')
       OR (cs.type = 'm.room.history_visibility' AND cs.state_key = ''
           AND json_extract(e.json, '$.content.history_visibility') = 'world_readable')
), visible AS (
    SELECT room_id FROM mine UNION SELECT room_id FROM open_rooms
)
SELECT user_id, MAX(name), MAX(avatar) FROM (
    SELECT m.user_id,
           CASE WHEN u.user_id IS NOT NULL THEN u.displayname
                ELSE json_extract(me.json, '$.content.displayname') END AS name,
           CASE WHEN u.user_id IS NOT NULL THEN u.avatar_url
                ELSE json_extract(me.json, '$.content.avatar_url') END AS avatar
    FROM room_memberships m
    JOIN visible v ON v.room_id = m.room_id
    JOIN events me ON me.event_id = m.event_id
    LEFT JOIN users u ON u.user_id = m.user_id
    WHERE m.membership = 'join' AND COALESCE(u.deactivated, 0) = 0
      -- the searcher finds themself only through an open room, as others would
      AND (m.user_id != ?2 OR m.room_id IN (SELECT room_id FROM open_rooms))
)
-- The optional pre-filter: an ASCII search word the user id or display name must contain
-- (LIKE is case-insensitive for ASCII); the exact prefix matching happens in the service.
WHERE ?1 IS NULL OR user_id LIKE ?1 ESCAPE '\\' OR name LIKE ?1 ESCAPE '\\'
GROUP BY user_id
"""

# Rooms both users are joined to.
MUTUAL_ROOMS = """
SELECT a.room_id FROM room_memberships a
JOIN room_memberships b ON b.room_id = a.room_id AND b.user_id = ? AND b.membership = 'join'
WHERE a.user_id = ? AND a.membership = 'join'
ORDER BY a.room_id
"""


class UserDirectoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def visible_users(self, searcher: str, contains: str | None = None
                            ) -> list[DirectoryEntry]:
        """The users ``searcher`` may find; with ``contains`` (ASCII) only those whose user
        id or display name contains it, case-insensitively."""
        pattern = None
        if contains is not None:
            escaped = contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{escaped}%"
        rows = await self.db.fetchall(VISIBLE_USERS, (pattern, searcher))
        return [DirectoryEntry(r[0], _str(r[1]), _str(r[2])) for r in rows]

    async def mutual_rooms(self, user_a: str, user_b: str) -> list[str]:
        return [r[0] for r in await self.db.fetchall(MUTUAL_ROOMS, (user_b, user_a))]


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
