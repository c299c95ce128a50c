"""The journal writer: callers hand over entries in microseconds; one thread writes them to SQLite.

`record()` never touches the disk, so an answer never waits for it: entries go into an in-memory
queue that the `journal` thread drains in batches, one transaction per batch. When the disk is full
or the database is locked, the thread keeps the entries, logs once, retries, and makes room by
retention. Retention (age and size) runs in the same thread in small steps. Age is not read off a
row's UTC time, which a step of the board's clock moves by years: each batch is written under a
clock mark (host boot, CLOCK_BOOTTIME) and retention ages rows by those (core/journal_age).

The queue is bounded by bytes (QUEUE_BYTES: what each payload holds in memory, estimated by the
caller with `parsed_cost`, plus a per-entry cost)
and by count (MAX_PENDING). A flood of large messages faster than the writer first loses payloads,
not rows: past PAYLOAD_BYTES a row keeps what came, when, and what was answered, and its note says
the payload was not kept. Only when even those rows do not fit are the oldest dropped. Both are counted
(`payloads_shed`, `dropped`) and logged once per episode: when it starts and when it ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..adapters.damage import is_damage
from ..adapters.host_clock import read_clock
from ..adapters.journal_retention import RetentionPolicy
from ..adapters.journal_store import JournalStore
from ..core.journal_age import ClockReading
from ..core.journal_entry import JournalEntry

log = logging.getLogger("josev_bridge.journal")

BATCH = 1024  # entries per transaction: one statement each (every statement costs a GIL hand-over)
COMMIT_INTERVAL = 0.2  # seconds: the writer takes what is queued this often (a kill -9 loses at most this)
WAKE_AT = BATCH  # ... or as soon as this many entries wait
SIZE_CHECK_SHARE = 50  # one insert adds at most 1/50 of the size bound (JSON text), and the bound is checked
SIZE_CHECK_INTERVAL = 1.0  # once that much was written since the last check, or after this many seconds
# (five PRAGMAs per batch were a GIL hand-over each): the file stays under ~95 % of the bound
MAX_PENDING = 50_000  # entries held in memory while the database cannot take them
QUEUE_BYTES = 16 * 2**20  # what the entries waiting for the writer may hold, about
PAYLOAD_BYTES = QUEUE_BYTES * 3 // 4  # beyond this, large payloads are shed; the rest is room for their rows
ENTRY_COST = 800  # bytes of one queued entry beyond its payload as received (tracemalloc: ~970 B for a 169 B request)
PAYLOAD_KEPT = 1024  # payloads up to this size are kept even while the queue is over its byte bound
ELEMENT_COST = 64  # bytes a parsed JSON element costs beyond its text (a dict, a list slot, a small str)


def parsed_cost(raw: bytes) -> int:
    """About what the parsed form of the JSON text `raw` holds in memory: its text, plus ELEMENT_COST
    per container or item. `[{},{},...]` costs many times its text, a long string about its text; counting the
    separators (C-speed scans, only for large payloads) tells them apart."""
    if len(raw) <= PAYLOAD_KEPT:
        return len(raw)
    return len(raw) + ELEMENT_COST * (raw.count(b"{") + raw.count(b"[") + raw.count(b","))
RETRY_DELAY = 1.0  # seconds between attempts while writing fails
RETENTION_INTERVAL = 2.0  # seconds between age-retention steps


@dataclass
class JournalCounters:
    written: int = 0
    dropped: int = 0  # lost because the database could not take them for too long
    write_errors: int = 0
    retained_away: int = 0  # deleted by retention (age or size)
    payloads_shed: int = 0  # rows journaled without their payload: the queue was over its byte bound
    retention_passes: int = 0  # age-retention steps completed (one every RETENTION_INTERVAL): tests wait on it


def _shed_payload(entry: JournalEntry, size: int) -> None:
    entry.payload = None
    kept = (f"payload not journaled (about {size} bytes in memory): the journal queue was over its "
            f"{PAYLOAD_BYTES >> 20} MiB bound")
    entry.note = kept if not entry.note else f"{entry.note}; {kept}"


class Journal:
    def __init__(self, path: str | Path, policy: RetentionPolicy,
                 clock: Callable[[], ClockReading] = read_clock) -> None:
        """`clock`: the host's clocks as retention ages rows by them (the daemon's HostClock.clock_reading)."""
        self.store = JournalStore(path, repair=True)
        self.policy = policy
        self.counters = JournalCounters()
        self.last_id = self.store.last_id()
        self.last_error: str | None = None
        self._clock = clock
        self._queue: deque[tuple[JournalEntry, int]] = deque()  # (entry, what it costs in memory)
        self._queued_bytes = 0
        self._lock = threading.Lock()  # record() runs in several threads; the byte count must not drift
        self._shedding = False  # in an episode of shedding; logged when it starts and when it ends
        self._shed_seen = (0, 0)  # (payloads_shed, dropped) when the last episode ended
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._listeners: list[Callable[[int], None]] = []
        self._thread = threading.Thread(target=self._run, name="journal", daemon=True)
        self._last_age_check = 0.0
        self._size_checked = (-1, 0.0)  # store.bytes_written and time.monotonic() at the last size check

    # -- any thread -------------------------------------------------------------------------------
    def record(self, entry: JournalEntry, size: int = 0) -> None:
        """Queue an entry; `size` is what its payload holds in memory, when that is large. The writer
        thread takes it within COMMIT_INTERVAL, or at once when WAKE_AT entries wait."""
        cost = ENTRY_COST + size
        with self._lock:
            if self._queued_bytes + cost > PAYLOAD_BYTES and size > PAYLOAD_KEPT:
                _shed_payload(entry, size)
                self.counters.payloads_shed += 1
                cost = ENTRY_COST
            while self._queue and (self._queued_bytes + cost > QUEUE_BYTES or len(self._queue) >= MAX_PENDING):
                self._queued_bytes -= self._queue.popleft()[1]
                self.counters.dropped += 1
            self._queue.append((entry, cost))
            self._queued_bytes += cost
            waiting = len(self._queue)
            started = not self._shedding and (self.counters.payloads_shed, self.counters.dropped) != self._shed_seen
            self._shedding |= started
        if started:  # logged outside the lock: a slow log handler must not hold up the writer
            log.error("journal: messages arrive faster than the database takes them; over the queue's %d MiB "
                      "bound, rows are kept without large payloads and then the oldest rows dropped (%d payloads "
                      "shed, %d rows dropped so far)", QUEUE_BYTES >> 20, self.counters.payloads_shed,
                      self.counters.dropped)
        if waiting >= WAKE_AT:  # no wake-up per entry: the writer would contend for the GIL
            self._wake.set()  # with the thread answering requests; it comes round every COMMIT_INTERVAL

    def _take(self, count: int) -> list[tuple[JournalEntry, int]]:
        """The oldest entries, out of the queue (so record() cannot drop them while they are written);
        their bytes stay counted until they are stored."""
        with self._lock:
            return [self._queue.popleft() for _ in range(min(count, len(self._queue)))]

    def _give_back(self, batch: list[tuple[JournalEntry, int]], stored: int) -> None:
        """The first `stored` of `batch` are in the database; the rest go back to the queue's front."""
        with self._lock:
            self._queued_bytes -= sum(cost for _, cost in batch[:stored])
            self._queue.extendleft(reversed(batch[stored:]))
            ended = self._shedding and self._queued_bytes < PAYLOAD_BYTES // 2
            if ended:
                self._shedding = False
                self._shed_seen = (self.counters.payloads_shed, self.counters.dropped)
        if ended:
            log.warning("journal: caught up with arrivals (%d payloads shed, %d rows dropped since start)",
                        *self._shed_seen)

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    def add_listener(self, callback: Callable[[int], None]) -> None:
        """`callback(last_id)` after each commit, in the journal thread (export wakes up on it)."""
        self._listeners.append(callback)

    @property
    def pending(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued (within `timeout`), then close."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.store.close()

    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- the journal thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(COMMIT_INTERVAL)
            self._wake.clear()
            stopping = self._stop.is_set()
            while self._queue:
                if not self._write_batch():
                    if stopping:
                        log.error("journal: %d entries not written at stop: %s", len(self._queue), self.last_error)
                        return
                    self._stop.wait(RETRY_DELAY)
                    break
            if time.monotonic() - self._last_age_check >= RETENTION_INTERVAL:
                self._last_age_check = time.monotonic()
                if self._retain(self.store.enforce_age, self.policy, self._clock()):
                    self.counters.retention_passes += 1
            if stopping and not self._queue:
                return

    def _write_batch(self) -> bool:
        batch = self._take(BATCH)
        try:
            self.store.mark_writes(self._clock(), self.policy.span_us)  # read after the entries were made
            last_id, written = self.store.insert_some([entry for entry, _ in batch],
                                                      self.policy.max_bytes // SIZE_CHECK_SHARE)
        except Exception as exc:  # sqlite3.Error, OSError: a full disk must not end the thread
            self._give_back(batch, 0)
            self._write_failed(exc)
            return False
        self._give_back(batch, written)
        if self.last_error is not None:
            log.warning("journal: writing works again (%s before)", self.last_error)
            self.last_error = None
        self.counters.written += written
        self.last_id = last_id
        if self._size_check_due():
            self._size_checked = (self.store.bytes_written, time.monotonic())
            self._retain(self.store.enforce_size, self.policy)
        for listener in self._listeners:
            try:
                listener(last_id)
            except Exception:
                log.exception("journal listener failed")
        return True

    def _size_check_due(self) -> bool:
        """After the first batch, a share of the bound written, or a while. Between two checks less than
        two shares are written (an insert adds at most one), ~5 % of the bound on disk with the
        indexes; enforce_size starts at 90 %, so the file cannot outgrow the bound in between."""
        written, at = self._size_checked
        return (written < 0 or self.store.bytes_written - written >= self.policy.max_bytes // SIZE_CHECK_SHARE
                or time.monotonic() - at >= SIZE_CHECK_INTERVAL)

    def _write_failed(self, exc: Exception) -> None:
        self.counters.write_errors += 1
        message = f"{type(exc).__name__}: {exc}"
        if message != self.last_error:
            damaged = "; the file is damaged: restart the bridge to move it aside" if is_damage(exc) else ""
            log.error("journal: cannot write to %s: %s%s; keeping %d entries in memory and retrying",
                      self.store.path, message, damaged, len(self._queue))
        self.last_error = message
        if "full" in str(exc):
            self._make_room()

    def _make_room(self) -> None:
        """A full disk: free pages inside the database (they are reused before the file grows)."""
        try:
            freed = self.store.delete_oldest(self.policy.batch_rows)
        except Exception as exc:
            log.debug("journal: cannot make room: %s", exc)
            return
        self.counters.retained_away += freed
        if freed:
            log.warning("journal: the disk is full; deleted the %d oldest entries to make room", freed)

    def _retain(self, step: Callable[..., int], *args) -> bool:
        """One retention step; False when it failed (logged)."""
        try:
            deleted = step(*args)
        except Exception as exc:
            log.error("journal: retention step failed: %s", exc)
            return False
        if deleted:
            self.counters.retained_away += deleted
            log.debug("journal: retention deleted %d entries", deleted)
        return True
