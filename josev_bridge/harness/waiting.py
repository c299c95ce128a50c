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


def process_gone(pid: int, proc: Path = Path("/proc")) -> bool:
    """True once process `pid` has exited: no longer in /proc, or a zombie all of whose threads have
    ended (whoever adopted an orphan may be slow to reap it). The thread group's leader shows as a
    zombie while its other threads are still running, so every task is checked, not the leader only;
    a thread that ends between the listing and the reading of its state is skipped, not taken for the
    whole process having gone (a process whose helper thread ends first is still running)."""
    try:
        tasks = list((proc / str(pid) / "task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return True
    states = []
    for task in tasks:
        try:
            states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # that thread ended meanwhile
    if not states:  # every listed thread ended meanwhile: gone unless others appeared
        return not (proc / str(pid)).exists()
    return all(state in ("Z", "X") for state in states)
