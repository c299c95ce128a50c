"""Token buckets per client: a burst is fine, a loop hammering the board's API is not (HTTP 429)."""

from __future__ import annotations

from dataclasses import dataclass

MAX_CLIENTS = 256  # buckets remembered; the least recently used is forgotten first


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """`rate` requests per second per key, bursts up to `burst`. Time is passed in (seconds, monotonic)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, key: str, now: float) -> bool:
        bucket = self._buckets.pop(key, None) or _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        self._buckets[key] = bucket  # re-inserted: dict order is recency order
        if len(self._buckets) > MAX_CLIENTS:
            del self._buckets[next(iter(self._buckets))]
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def retry_after(self, key: str) -> float:
        """Seconds until `key` has a token again."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else max(0.0, (1.0 - bucket.tokens) / self.rate)
