"""The order of a space's children.

https://spec.matrix.org/v1.19/client-server-api/#ordering-of-children-within-a-space
"""

from typing import Any

from edgehs.service.hierarchy import _child_sort_key


def child(room: str, ts: int, **content: Any) -> dict[str, Any]:
    return {"type": "m.space.child", "state_key": room, "origin_server_ts": ts,
            "content": {"via": ["x"], **content}}


def test_valid_order_first_then_timestamp_then_room_id() -> None:
    events = [
        child("!e", 1),
        child("!d", 5, order="a"),
        child("!c", 2, order="\x7f"),        # outside 0x20-0x7E: as if absent
        child("!b", 1, order="x" * 51),      # too long: as if absent
        child("!a", 9, order="B"),           # "B" < "a"
        child("!f", 1, order=7),             # not a string
    ]
    ordered = [e["state_key"] for e in sorted(events, key=_child_sort_key)]
    assert ordered == ["!a", "!d", "!b", "!e", "!f", "!c"]
