"""SyncFilter parsing and matching; the token-bucket rate limiter on a fake clock."""

from typing import Any

import pytest

from edgehs.config import RateLimit
from edgehs.errors import Codes, MatrixError
from edgehs.service.filters import (
    DEFAULT_TIMELINE_LIMIT,
    MAX_TIMELINE_LIMIT,
    EventFilter,
    SyncFilter,
    type_matches,
)
from edgehs.service.ratelimit import RateLimiter

# --- filters ------------------------------------------------------------------------------------


def test_empty_filter_defaults() -> None:
    for raw in (None, {}):
        flt = SyncFilter.parse(raw)
        assert flt.timeline_limit == DEFAULT_TIMELINE_LIMIT
        assert flt.rooms is None and flt.not_rooms == () and not flt.include_leave
        assert flt.room_allowed("!any:x") and flt.account_data_allowed("m.direct")
        assert flt.timeline_types is None and flt.timeline_senders is None


def test_full_filter() -> None:
    flt = SyncFilter.parse({
        "room": {"rooms": ["!a:x", "!b:x"], "not_rooms": ["!b:x"], "include_leave": True,
                 "timeline": {"limit": 5000, "types": ["m.room.message"],
                              "not_types": ["m.room.redaction"], "senders": ["@a:x"]},
                 "state": {"types": ["m.room.*"], "lazy_load_members": True}},
        "account_data": {"not_types": ["m.secret*"]},
    })
    assert flt.timeline_limit == MAX_TIMELINE_LIMIT
    assert flt.room_allowed("!a:x") and not flt.room_allowed("!b:x")
    assert not flt.room_allowed("!c:x") and flt.include_leave
    assert flt.timeline_types == ("m.room.message",)
    assert flt.timeline_not_types == ("m.room.redaction",)
    assert flt.timeline_senders == ("@a:x",)
    assert flt.account_data_allowed("m.direct")
    assert not flt.account_data_allowed("m.secret_storage.key")


def test_wildcards() -> None:
    assert type_matches("m.room.name", ("m.room.*",))
    assert type_matches("m.room.name", ("m.room.name",))
    assert not type_matches("m.room", ("m.room.*",))
    assert not type_matches("m.room.name", ("m.room.na",))
    wild = EventFilter.parse({"types": ["m.*"], "not_types": ["m.room.member"]}, "x")
    assert wild.allows_type("m.room.name") and not wild.allows_type("m.room.member")
    assert not wild.allows_type("org.example")
    assert wild.sql_types() is None  # wildcards cannot go into SQL IN
    flt = SyncFilter.parse({"room": {"timeline": {"not_types": ["m.*"]}}})
    assert flt.timeline_not_types is None


def test_lazy_loading_keeps_senders_and_self() -> None:
    state = {("m.room.create", ""): "$c", ("m.room.member", "@a:x"): "$a",
             ("m.room.member", "@b:x"): "$b", ("m.room.member", "@me:x"): "$me",
             ("m.room.name", ""): "$n"}
    lazy = SyncFilter.parse({"room": {"state": {"lazy_load_members": True}}})
    assert lazy.filter_state(state, {"@a:x"}, "@me:x") == {
        k: v for k, v in state.items() if k != ("m.room.member", "@b:x")}
    eager = SyncFilter.parse({})
    assert eager.filter_state(state, set(), "@me:x") == state
    typed = SyncFilter.parse({"room": {"state": {"types": ["m.room.name"]}}})
    assert typed.filter_state(state, set(), "@me:x") == {("m.room.name", ""): "$n"}


@pytest.mark.parametrize("raw", [
    [], "x", 5, {"room": "x"}, {"room": {"timeline": []}}, {"room": {"state": 5}},
    {"room": {"timeline": {"limit": "5"}}}, {"room": {"timeline": {"limit": -1}}},
    {"room": {"timeline": {"limit": True}}}, {"room": {"timeline": {"limit": 1.5}}},
    {"room": {"timeline": {"types": "m.room.message"}}},
    {"room": {"timeline": {"senders": [1]}}}, {"room": {"rooms": "!a:x"}},
    {"room": {"not_rooms": [None]}}, {"account_data": []},
    {"account_data": {"types": [{"x": 1}]}},
])
def test_bad_filters_are_m_bad_json(raw: Any) -> None:
    with pytest.raises(MatrixError) as caught:
        SyncFilter.parse(raw)
    assert (caught.value.status, caught.value.errcode) == (400, Codes.BAD_JSON)


# --- rate limiting -------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limited(limiter: RateLimiter, key: str) -> int | None:
    """retry_after_ms when ``key`` is refused, None when let through."""
    try:
        limiter.check(key)
    except MatrixError as exc:
        assert (exc.status, exc.errcode) == (429, Codes.LIMIT_EXCEEDED)
        return int(exc.extra["retry_after_ms"])
    return None


def test_burst_then_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimit(per_second=2.0, burst_count=3), True, clock)
    assert [limited(limiter, "@a:x") for _ in range(3)] == [None, None, None]
    retry = limited(limiter, "@a:x")
    assert retry is not None and 490 <= retry <= 501  # one token at 2/s: half a second
    clock.now += 0.25
    assert limited(limiter, "@a:x") is not None  # half a token is not enough
    clock.now += 0.3
    assert limited(limiter, "@a:x") is None
    clock.now += 100  # refills only up to the burst
    assert [limited(limiter, "@a:x") for _ in range(4)][-1] is not None


def test_keys_are_separate_and_disabled_is_open() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimit(per_second=0.001, burst_count=1), True, clock)
    assert limited(limiter, "@a:x") is None
    assert limited(limiter, "@a:x") is not None
    assert limited(limiter, "@b:x") is None
    off = RateLimiter(RateLimit(per_second=0.001, burst_count=1), False, clock)
    assert all(limited(off, "@a:x") is None for _ in range(100))


def test_buckets_stay_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimit(per_second=1.0, burst_count=2), True, clock)
    for i in range(10050):
        limiter.check(f"@u{i}:x")
        clock.now += 2.0  # every earlier bucket refills to full
    assert len(limiter._buckets) <= 10001
