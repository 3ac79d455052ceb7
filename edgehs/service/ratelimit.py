"""Token-bucket rate limiting, per key (user id or client address)."""

import time
from collections.abc import Callable

from edgehs.config import RateLimit
from edgehs.errors import Codes, MatrixError


class RateLimiter:
    def __init__(
        self, limit: RateLimit, enabled: bool, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.enabled = enabled
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def check(self, key: str) -> None:
        """Take one token for ``key`` or raise 429 M_LIMIT_EXCEEDED with retry_after_ms."""
        if not self.enabled:
            return
        now = self.clock()
        tokens, last = self._buckets.get(key, (float(self.limit.burst_count), now))
        tokens = min(float(self.limit.burst_count), tokens + (now - last) * self.limit.per_second)
        if tokens < 1.0:
            retry = int((1.0 - tokens) / self.limit.per_second * 1000) + 1
            self._buckets[key] = (tokens, now)
            raise MatrixError(429, Codes.LIMIT_EXCEEDED, "Too many requests; slow down",
                              retry_after_ms=retry)
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 10000:
            # Keep memory bounded: drop the buckets that have refilled completely by now.
            refill = self.limit.burst_count / self.limit.per_second
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill}
