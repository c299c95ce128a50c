"""Waiting on a condition with a deadline, for the few things that offer nothing better to wait on
(a log line in another process, a file appearing)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.01) -> T:
    """Return the predicate's first truthy value; raise TimeoutError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def process_gone(pid: int) -> bool:
    """True once process `pid` has exited: no longer in /proc, or a zombie all of whose threads have
    ended (whoever adopted an orphan may be slow to reap it). The thread group's leader shows as a
    zombie while its other threads are still running, so every task is checked, not the leader only."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        states = [(t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in tasks]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return all(state in ("Z", "X") for state in states)
