"""The host's clocks, read in one place: monotonic time for the MCU clock fit, the
realtime-minus-monotonic offset for UTC, the kernel's synchronisation status, clock steps.

Many charger boards have no battery-backed RTC: they boot with the time of the last shutdown (or
1970) and step the clock when NTP, or the CSMS's time through Josev, arrives. The bridge keeps
edges on the monotonic clock and derives UTC when it answers (core/host_time), so what it needs
from here is the offset now, cheaply and without jitter (`offset`). Steps and the sync status are
checked by `check`, from the daemon's housekeeping every 0.5 s: a periodic offset comparison rather
than a timerfd with TFD_TIMER_CANCEL_ON_SET, because answers do not depend on noticing a step (they
read the offset anyway), the check costs three clock reads and one adjtimex(2) call, needs no extra
fd or thread, and also sees a clock faked by libfaketime in the tests (which a timerfd would not).

Test seam: JOSEV_BRIDGE_TEST_CLOCK_SHIFT_FILE names a file holding seconds that are added to both
clocks read here (re-read when it changes): the tests make ten minutes pass for the MCU clock fit,
with the simulator's clock shifted by the same file, without waiting ten minutes. Never set in
production; the daemon logs a warning when it is.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import time
from pathlib import Path

from ..core.host_time import OffsetReading, SyncState, settle, step_between
from ..core.journal_age import UNKNOWN_BOOT, ClockReading
from ..core.timestamps import format_us

log = logging.getLogger("josev_bridge.host_clock")

SHIFT_ENV = "JOSEV_BRIDGE_TEST_CLOCK_SHIFT_FILE"
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
# CLOCK_BOOTTIME: monotonic, never stepped, and counting while the board is suspended (journal ages,
# core/journal_age); Linux only, CLOCK_MONOTONIC elsewhere (the same but for suspend)
BOOTTIME = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def host_boot_id() -> str:
    """Host monotonic time restarts with the host: a monotonic time is only meaningful within one boot."""
    try:
        return Path(BOOT_ID_PATH).read_text().strip()
    except OSError:
        return UNKNOWN_BOOT


def read_clock() -> ClockReading:
    """The clocks the journal ages its rows by, read here and now (without a HostClock: its status and
    test seam); one adjtimex(2) call."""
    return ClockReading(this_boot(), time.clock_gettime_ns(BOOTTIME) // 1000, time.time_ns() // 1000,
                        read_sync_state().synchronised)


this_boot = functools.cache(host_boot_id)  # it cannot change while this process runs


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """struct timex (adjtimex(2)); `long` fields, so the same layout on 32- and 64-bit ABIs."""

    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time", _Timeval), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long),
                ("jitter", ctypes.c_long), ("shift", ctypes.c_int), ("stabil", ctypes.c_long),
                ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long),
                ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int), ("_reserved", ctypes.c_int * 32)]


def read_sync_state() -> SyncState:
    """adjtimex(2) with modes 0 (reads only; no privilege needed). Unknown when it cannot be called."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return SyncState(None)
    if state < 0:
        return SyncState(None)
    return SyncState.from_adjtimex(state, timex.status, timex.maxerror, timex.esterror)


class _Shift:
    """The test seam's shift in µs, re-read when the file's mtime changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._seen: int | None = None
        self._us = 0

    def us(self) -> int:
        try:
            mtime = os.stat(self.path).st_mtime_ns
            if mtime != self._seen:
                self._us, self._seen = round(float(Path(self.path).read_text().strip() or 0) * 1e6), mtime
        except (OSError, ValueError):
            pass
        return self._us


class HostClock:
    """Shared by the serial thread (samples, storing edges), the MQTT thread (answers) and the
    housekeeping loop (`check`). Every attribute is replaced whole, never mutated in place."""

    def __init__(self, shift_file: str | None = None, sync_state=read_sync_state) -> None:
        shift_file = shift_file if shift_file is not None else os.environ.get(SHIFT_ENV)
        self._shift = _Shift(shift_file) if shift_file else None
        if self._shift is not None:
            log.warning("test clock shift file %s in use (%s): the clocks read are NOT the host's", shift_file,
                        SHIFT_ENV)
        self._read_sync = sync_state
        self.boot_id = host_boot_id()
        self._settled: int | None = None
        self._last = self.reading()
        self.sync = self._read_sync()
        if not self.sync.synchronised:  # the policy (README, "The board's clock"), said once at start
            log.warning("host clock %s: get_event_timestamp answers are given, from the current time line, and "
                        "their journal rows say so", self.sync.describe())
        self.steps = 0
        self.last_step: tuple[int, int] | None = None  # (step µs, UTC µs when seen)

    def monotonic_us(self) -> int:
        """The host monotonic clock the MCU clock fit lives on."""
        us = time.monotonic_ns() // 1000
        return us if self._shift is None else us + self._shift.us()

    def realtime_us(self) -> int:
        us = time.time_ns() // 1000
        return us if self._shift is None else us + self._shift.us()

    def boottime_us(self) -> int:
        """CLOCK_BOOTTIME (journal ages): like monotonic, and counting while suspended."""
        us = time.clock_gettime_ns(BOOTTIME) // 1000
        return us if self._shift is None else us + self._shift.us()

    def clock_reading(self) -> ClockReading:
        """For the journal writer (any thread, once per batch): boottime, realtime, then the kernel's
        sync status read afresh (adjtimex, ~10 µs). Not `check`'s cached one: a step clears STA_UNSYNC
        at once, and for up to 0.5 s the cache would still say "synchronised", so the stepped offset
        would be stored as this boot's trusted one and rows of earlier boots would age by it (deleted
        early after a forward step). Read after the clocks: a step between the reads is then seen as
        unsynchronised, never the other way round."""
        boottime, realtime = self.boottime_us(), self.realtime_us()
        return ClockReading(self.boot_id, boottime, realtime, self._read_sync().synchronised)

    def reading(self) -> OffsetReading:
        """The realtime clock read between two monotonic readings, within half the gap between them.
        Two bare reads are not atomic: a preemption between them (a busy board) would shift every time
        mapped with the result by its length. Take the pair that lay closest (at most 5 tries, done
        once it is within 20 µs)."""
        best_gap, best, at = 0, 0, 0
        shift = 0 if self._shift is None else self._shift.us()
        for attempt in range(5):
            before = time.monotonic_ns()
            real = time.time_ns()
            after = time.monotonic_ns()
            if attempt == 0 or after - before < best_gap:
                best_gap, best, at = after - before, real - (before + after) // 2, (before + after) // 2
            if best_gap <= 20_000:
                break
        return OffsetReading(best // 1000, (best_gap + 1999) // 2000, at // 1000 + shift)

    def offset(self) -> tuple[int, int]:
        """(realtime minus monotonic µs, its error bound µs) to derive UTC with now (core.host_time.settle)."""
        value, error = settle(self._settled, self.reading())
        self._settled = value
        return value, error

    @property
    def synchronised(self) -> bool | None:
        return self.sync.synchronised

    def check(self) -> int | None:
        """Log a step of the realtime clock since the last check, and a change of its sync status.
        Returns the step (µs) if there was one. Called every 0.5 s by the daemon's housekeeping."""
        now = self.reading()
        step = step_between(self._last, now)
        self._last = now
        if step is not None:
            self.steps += 1
            self.last_step = (step, now.offset_us + now.at_us)
            self.offset()  # answers follow at once (they would at their next reading anyway)
            log.warning("host clock stepped by %+.6f s (now %s UTC); answers for this host boot's edges "
                        "follow the new time", step / 1e6, format_us(now.offset_us + now.at_us))
        sync = self._read_sync()
        if sync.synchronised != self.sync.synchronised:
            level = logging.INFO if sync.synchronised else logging.WARNING
            log.log(level, "host clock %s", sync.describe())
        self.sync = sync
        return step

    def status(self) -> dict:
        """For status.json (status_report): as of the last `check` and the offset in use (no new
        reading: jitter would make every status differ from the last, which is rewritten only on change)."""
        step = self.last_step
        return {"synchronised": self.sync.synchronised, "state": self.sync.describe(),
                "maxerror_us": self.sync.maxerror_us, "esterror_us": self.sync.esterror_us,
                "realtime_minus_monotonic_us": self._settled, "steps": self.steps,
                "last_step_us": None if step is None else step[0],
                "last_step_at": None if step is None else format_us(step[1]),
                "test_clock_shift": self._shift is not None}
