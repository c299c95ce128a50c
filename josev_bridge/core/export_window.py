"""Export's two pure rules: how many rows it may send now, and how far the watermark may move.

Time is passed in (seconds, monotonic), so both are tested without a clock or a broker.
"""

from __future__ import annotations

from collections import deque


class RowBudget:
    """At most `rate` rows per second (bursts of `burst_s` seconds' worth); 0 = no limit.

    Export shares the bridge's process (and its GIL) with the answers to Josev; a flood of requests
    must not become a flood of export work competing with them. Rows wait in the outbox instead:
    that is what store-and-forward is for. The budget starts full.
    """

    def __init__(self, rate: float, burst_s: float = 0.2) -> None:
        self.rate = rate
        self._capacity = rate * burst_s
        self._tokens = self._capacity
        self._at: float | None = None

    def take_up_to(self, wanted: int, now: float) -> int:
        if not self.rate:
            return wanted
        if self._at is not None:
            self._tokens = min(self._capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return min(wanted, int(self._tokens))

    def spend(self, rows: int) -> None:
        if self.rate:
            self._tokens -= rows

    def empty(self) -> bool:
        return bool(self.rate) and self._tokens < 1


class AckWindow:
    """Rows published on one connection, in publish (= id) order, and which of them are PUBACKed.

    The watermark may only move over the contiguous acknowledged prefix. MQTT (§4.6) asks brokers to
    PUBACK in the order they received the PUBLISHes, but a broker that does not (or a refused row
    between two accepted ones) must not carry the watermark past a row that was not acknowledged.
    """

    def __init__(self) -> None:
        self._order: deque[tuple[int, int]] = deque()  # (row id, mid), not yet under the watermark
        self._in_flight: dict[int, int] = {}  # mid -> row id, published and not acknowledged
        self._acked: set[int] = set()  # mids acknowledged, waiting for the prefix to reach them

    def __len__(self) -> int:
        """Rows in flight (published, not acknowledged)."""
        return len(self._in_flight)

    def sent(self, row_id: int, mid: int) -> None:
        self._in_flight[mid] = row_id
        self._order.append((row_id, mid))

    def ack(self, mid: int) -> bool:
        """Mark `mid` acknowledged; False if it is not one of ours (ignored)."""
        if self._in_flight.pop(mid, None) is None:
            return False
        self._acked.add(mid)
        return True

    def forget(self, mid: int) -> bool:
        """A refused PUBACK: no longer in flight, never acknowledged (the prefix stops before it)."""
        return self._in_flight.pop(mid, None) is not None

    def advance(self) -> int | None:
        """The last row id of the contiguous acknowledged prefix, removed from the window; None if none."""
        last = None
        while self._order and self._order[0][1] in self._acked:
            last, mid = self._order.popleft()
            self._acked.discard(mid)
        return last
