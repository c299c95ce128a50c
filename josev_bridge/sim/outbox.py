"""The sim's outgoing frames, between whoever produces them (the control API, the read loop's clock
replies, the keepalive thread) and the one writer thread."""

from __future__ import annotations

import threading
import time
from collections import deque

MAX_URGENT = 64  # CLOCK_REPLYs waiting: more means the host floods probes faster than we write


class Outbox:
    """Frames for the writer: the urgent lane first, then the rest in order; bounded; can be held."""

    def __init__(self, maxsize: int, max_urgent: int = MAX_URGENT) -> None:
        self.maxsize = maxsize
        self.max_urgent = max_urgent
        self._cond = threading.Condition()
        self._normal: deque[bytes] = deque()
        self._urgent: deque[bytes] = deque()
        self._hold_until = 0.0  # time.monotonic(): nothing leaves before it
        self._closed = False

    def put(self, frame: bytes, urgent: bool = False) -> bool:
        with self._cond:
            lane, limit = (self._urgent, self.max_urgent) if urgent else (self._normal, self.maxsize)
            if self._closed or len(lane) >= limit:
                return False
            lane.append(frame)
            self._cond.notify()
            return True

    def get(self, timeout: float) -> bytes | None:
        """The next frame to write, or None after `timeout` (or once closed)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                if now >= self._hold_until:
                    if self._urgent:
                        return self._urgent.popleft()
                    if self._normal:
                        return self._normal.popleft()
                    wake = deadline
                else:
                    wake = min(deadline, self._hold_until)
                if now >= deadline:
                    return None
                self._cond.wait(wake - now)
            return None

    def hold(self, seconds: float) -> int:
        """Let nothing out for `seconds`; urgent frames (clock replies) are dropped: returns how many."""
        with self._cond:
            self._hold_until = max(self._hold_until, time.monotonic() + seconds)
            dropped = len(self._urgent)
            self._urgent.clear()
            self._cond.notify_all()
            return dropped

    def holding(self) -> float:
        """Seconds the hold still lasts (0 if none)."""
        return max(0.0, self._hold_until - time.monotonic())

    def clear(self) -> int:
        with self._cond:
            count = len(self._normal) + len(self._urgent)
            self._normal.clear()
            self._urgent.clear()
            return count

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._normal) + len(self._urgent)
