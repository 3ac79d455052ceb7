"""The pure parts of the /sync state section and the per-device lazy-loading memory.

https://spec.matrix.org/v1.19/client-server-api/#lazy-loading-room-members
"""

from edgehs.service.sync_state import (
    MEMBER,
    LazyMembers,
    full_state,
    gappy_state,
    senders_state,
)

CREATE, NAME = ("m.room.create", ""), ("m.room.name", "")


def member(user: str) -> tuple[str, str]:
    return (MEMBER, user)


def test_full_state_keeps_only_lazy_members_and_skips_the_timeline() -> None:
    start = {CREATE: "$c", NAME: "$n", member("@a"): "$ma", member("@b"): "$mb"}
    assert full_state(start, {"$n"}, {"@a"}) == [(CREATE, "$c"), (member("@a"), "$ma")]
    assert len(full_state(start, set(), None)) == 4


def test_gappy_state_has_the_gap_and_the_speakers() -> None:
    previous = {CREATE: "$c", member("@a"): "$ma", member("@b"): "$mb", member("@c"): "$mc"}
    start = {**previous, member("@d"): "$md"}  # d joined in the gap
    end = {**start, NAME: "$n2", member("@c"): "$mc2"}  # c left, name set in the timeline
    # Without lazy-loading: what changed, less what the timeline holds.
    assert sorted(gappy_state(start, end, previous, {"$n2"}, None)) == [
        (member("@c"), "$mc2"), (member("@d"), "$md")]
    # Lazy: b speaks in the timeline; b's unchanged member event is sent too.
    assert sorted(gappy_state(start, end, previous, {"$n2"}, {"@b"})) == [
        (member("@b"), "$mb"), (member("@c"), "$mc2"), (member("@d"), "$md")]
    # A key changed twice: its value at the timeline's start, then the current one.
    end2 = {**start, NAME: "$n3"}
    assert gappy_state({**start, NAME: "$n2"}, end2, previous, set(), None)[-2:] == [
        (NAME, "$n2"), (NAME, "$n3")]


def test_senders_state() -> None:
    start = {member("@a"): "$ma", member("@b"): "$mb"}
    assert senders_state(start, {"$mb"}, {"@a", "@b", "@x"}) == [(member("@a"), "$ma")]


def test_lazy_members_are_known_once_acknowledged() -> None:
    lazy = LazyMembers()
    lazy.record("@me", "DEV", "!r", [("@a", "$ma")], position=10)
    assert not lazy.known("@me", "DEV", "!r", "@a", "$ma", since=9)  # response not yet used
    assert lazy.known("@me", "DEV", "!r", "@a", "$ma", since=10)
    assert not lazy.known("@me", "OTHER", "!r", "@a", "$ma", since=10)  # per device
    assert not lazy.known("@me", "DEV", "!r2", "@a", "$ma", since=10)  # per room
    assert not lazy.known("@me", "DEV", "!r", "@a", "$ma2", since=10)  # a newer event
    lazy.record("@me", "DEV", "!r", [("@a", "$ma")], position=20)  # resent: first one counts
    assert lazy.known("@me", "DEV", "!r", "@a", "$ma", since=10)
    lazy.reset("@me", "DEV")
    assert not lazy.known("@me", "DEV", "!r", "@a", "$ma", since=10)


def test_lazy_members_are_bounded() -> None:
    lazy = LazyMembers(max_devices=2, max_members=3)
    for i in range(5):
        lazy.record("@me", "DEV", "!r", [(f"@u{i}", f"$m{i}")], position=1)
    assert [lazy.known("@me", "DEV", "!r", f"@u{i}", f"$m{i}", 1) for i in range(5)] == [
        False, False, True, True, True]
    lazy.record("@x", "D1", "!r", [("@a", "$a")], 1)
    lazy.record("@y", "D2", "!r", [("@a", "$a")], 1)
    assert not lazy.known("@me", "DEV", "!r", "@u4", "$m4", 1)  # the oldest device went
