"""Identifier types shared by every layer."""

from typing import Any, NewType

JsonDict = dict[str, Any]

UserId = NewType("UserId", str)
RoomId = NewType("RoomId", str)
EventId = NewType("EventId", str)
DeviceId = NewType("DeviceId", str)
RoomAlias = NewType("RoomAlias", str)

# (event type, state key): how state is addressed everywhere.
StateKey = tuple[str, str]
StateMap = dict[StateKey, str]
