"""When a stored redaction takes effect (migration 0015's ``applied_redactions``).

https://spec.matrix.org/v1.19/rooms/v11/#handling-redactions: only when the redaction's sender
shares the redacted event's server, or had the room's redact level.
"""

from typing import Any

import aiosqlite
import pytest

from edgehs.store.db import Database
from edgehs.store.event_writes import insert_event
from edgehs.store.events import EventStore


def event(n: int, sender: str, room: str = "!r:x", **extra: Any) -> dict[str, Any]:
    return {"event_id": f"$e{n}", "room_id": room, "type": "m.room.message", "sender": sender,
            "origin_server_ts": 1000 + n, "depth": n, "prev_events": [], "auth_events": [],
            "content": {"body": str(n)}, **extra}


def redaction(n: int, sender: str, target: str, room: str = "!r:x") -> dict[str, Any]:
    return {**event(n, sender, room), "type": "m.room.redaction", "content": {},
            "redacts": target}


async def store(db: Database, *rows: tuple[dict[str, Any], bool]) -> None:
    async def run(conn: aiosqlite.Connection) -> None:
        for pos, (pdu, by_power) in enumerate(rows, start=1):
            await insert_event(conn, pdu, pos, pdu["room_id"], state_before=None,
                               state_after=None, redaction_by_power=by_power)
    await db.write(run)


@pytest.mark.parametrize(("redactor", "by_power", "applied"), [
    ("@alice:x", False, True),          # the sender themself
    ("@bob:x", False, True),            # the sender's own server vouches for its users
    ("@mallory:evil.example", False, False),  # another server, without the power: ignored
    ("@mod:other.example", True, True),  # another server, with the redact level
])
async def test_redaction_applies_by_domain_or_power(db: Database, redactor: str, by_power: bool,
                                                    applied: bool) -> None:
    await store(db, (event(1, "@alice:x"), False), (redaction(2, redactor, "$e1"), by_power))
    target = await EventStore(db).get_event("$e1")
    assert target is not None
    assert target.redacted_by == ("$e2" if applied else None)


async def test_redaction_from_another_room_never_applies(db: Database) -> None:
    await store(db, (event(1, "@alice:x"), False),
                (redaction(2, "@alice:x", "$e1", room="!other:x"), True))
    target = await EventStore(db).get_event("$e1")
    assert target is not None and target.redacted_by is None
