"""Who may redact what.

https://spec.matrix.org/v1.19/client-server-api/#redactions
https://spec.matrix.org/v1.19/rooms/v11/#handling-redactions

The authorization rules let any member send an ``m.room.redaction``; whether it takes effect is
decided when it is applied: its sender must have the room's ``redact`` level, or share the
redacted event's server. The write path records the first half (``redaction_power``) with each
redaction; the ``applied_redactions`` view of migration 0015 combines it with the second. Local
users get the stricter rule that clients expect (only your own events without the power level),
checked before the event is built (``check_may_redact``).
"""

from edgehs.errors import Codes, MatrixError
from edgehs.protocol.power_levels import CREATE_KEY, POWER_LEVELS_KEY, has_redact_power
from edgehs.protocol.room_versions import get_room_version
from edgehs.store.events import EventStore
from edgehs.types import StateMap


async def redaction_power(events: EventStore, sender: str, state: StateMap) -> bool:
    """Whether ``sender`` has the ``redact`` level in the room ``state``."""
    pdus = await events.get_pdus(state[k] for k in (CREATE_KEY, POWER_LEVELS_KEY) if k in state)
    create = pdus.get(state.get(CREATE_KEY, ""))
    if create is None:
        return False
    content = create.get("content")
    version = content.get("room_version", "1") if isinstance(content, dict) else "1"
    levels = pdus.get(state.get(POWER_LEVELS_KEY, ""), {}).get("content")
    return has_redact_power(sender, levels if isinstance(levels, dict) else None, create,
                            get_room_version(str(version)))


async def check_may_redact(events: EventStore, room_id: str, sender: str, target_id: str,
                           state: StateMap) -> None:
    """Refuse a local redaction of an unknown event (404), of another room's event (400), or of
    another user's event without the ``redact`` level in ``state`` (403)."""
    target = (await events.get_pdus([target_id])).get(target_id)
    if target is None:
        raise MatrixError(404, Codes.NOT_FOUND, "Event not found")
    if target.get("room_id", room_id) != room_id:
        raise MatrixError(400, Codes.INVALID_PARAM, "Cannot redact an event of another room")
    if target.get("sender") != sender and not await redaction_power(events, sender, state):
        raise MatrixError(403, Codes.FORBIDDEN,
                          "You need the room's redact power level to redact other users' events")
