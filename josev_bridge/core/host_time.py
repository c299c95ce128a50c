"""The host's own clocks, as rules: which realtime offset to use, what a clock step is, what the
kernel's synchronisation status means, and what an answer's journal row says about them. Pure.

Edges are kept on the host's monotonic clock; UTC is the monotonic time plus the host's
realtime-minus-monotonic offset *at answer time*, so an edge stored while the board's clock was
wrong (no RTC, NTP not yet synced) is answered with the corrected time once the clock is stepped.
Edges persisted across a host reboot cannot be (monotonic time restarts with the host): they keep
the UTC they had, with how the clock stood when it was fixed (`Basis`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

SETTLE_TOLERANCE_US = 20  # the offset in use moves only when a reading differs by more (plus its error)
STEP_MIN_US = 1_000  # a change of the offset by more than this (beyond slewing and reading errors) is a step
MAX_SLEW = 500e-6  # the most adjtime/NTP slews the clock (500 ppm): slower changes are not steps

STA_UNSYNC = 0x0040  # adjtimex(2) status bit: the clock is not synchronised
TIME_ERROR = 5  # adjtimex(2) return value: the clock is not synchronised


class Basis(str, Enum):
    """What an edge's stored time is, and so how its UTC is derived."""

    MONOTONIC = "monotonic"  # host monotonic µs of the current host boot: UTC = time + offset at answer time
    UTC = "utc"  # UTC fixed in an earlier host boot whose clock was synchronised
    UTC_UNSYNCHRONISED = "utc-unsynchronised"  # ... whose clock was not synchronised (possibly wrong)
    UTC_UNKNOWN = "utc-unknown"  # UTC fixed by an older version, which did not record the clock's state

    @staticmethod
    def fixed(synchronised: bool | None) -> Basis:
        """The basis of a monotonic time fixed to UTC with a clock in this state."""
        return Basis.UTC if synchronised else Basis.UTC_UNKNOWN if synchronised is None else Basis.UTC_UNSYNCHRONISED


@dataclass(slots=True)  # answer path: not frozen (docs/architecture.md)
class OffsetReading:
    """Realtime minus monotonic (µs), read at monotonic time `at_us`, within `error_us`."""

    offset_us: int
    error_us: int
    at_us: int


def settle(settled: int | None, reading: OffsetReading) -> tuple[int, int]:
    """(offset to use, its error bound now).

    Two readings of the offset differ by a few µs of jitter even when the clock did not move; an
    answer derived from one would then differ from the time logged when the edge was stored (and,
    near a millisecond boundary, in the answer's last digit). So the offset in use changes only when
    a reading differs from it by more than the reading's error plus SETTLE_TOLERANCE_US: a step,
    or NTP's slewing (at most 0.5 ms/s) accumulated. Its error is then its distance from the reading
    plus the reading's own error.
    """
    if settled is not None and abs(reading.offset_us - settled) <= reading.error_us + SETTLE_TOLERANCE_US:
        return settled, abs(reading.offset_us - settled) + reading.error_us
    return reading.offset_us, reading.error_us


def step_between(before: OffsetReading, after: OffsetReading) -> int | None:
    """The step of the realtime clock between two readings (µs, + forward), or None if the change is
    what slewing and the two readings' errors allow."""
    change = after.offset_us - before.offset_us
    allowed = STEP_MIN_US + MAX_SLEW * abs(after.at_us - before.at_us) + before.error_us + after.error_us
    return change if abs(change) > allowed else None


@dataclass(frozen=True, slots=True)
class SyncState:
    """The kernel's view of the realtime clock (adjtimex(2) with modes 0): None when it cannot be read."""

    synchronised: bool | None
    maxerror_us: int | None = None  # the kernel's maximum error estimate (NTP's, growing between updates)
    esterror_us: int | None = None  # its estimated error

    @classmethod
    def from_adjtimex(cls, state: int, status: int, maxerror_us: int, esterror_us: int) -> SyncState:
        """adjtimex's return value and `struct timex` fields: synchronised unless it says otherwise."""
        synced = state != TIME_ERROR and not status & STA_UNSYNC
        return cls(synced, maxerror_us, esterror_us)

    def describe(self) -> str:
        if self.synchronised is None:
            return "synchronisation unknown (adjtimex not readable)"
        if not self.synchronised:
            return "not synchronised (adjtimex: STA_UNSYNC)"
        return f"synchronised (adjtimex: estimated error {_ms(self.esterror_us)}, maximum {_ms(self.maxerror_us)})"


def carried_over(host: dict[str, Any] | None, edges_version: object,
                 this_boot: str) -> tuple[int, int, bool | None] | None:
    """(offset, its error, synchronised) to fix an edge snapshot's monotonic times to UTC with, when it
    was saved in another host boot (`host`: what the snapshot recorded of its host); None when there is
    nothing to fix (this very boot, or a version 1 snapshot, whose times are UTC already). ValueError
    on a record that cannot be trusted."""
    if edges_version == 1 or (host is not None and host.get("boot_id") == this_boot):
        return None
    if host is None:
        raise ValueError("edges on the monotonic clock without the host boot they belong to")
    offset, error = host.get("realtime_minus_monotonic_us"), host.get("offset_error_us")
    synced = host.get("synchronised")
    if not (type(offset) is int and type(error) is int and synced in (True, False, None)):
        raise ValueError(f"bad host clock record {host!r}")
    return offset, error, synced


def clock_note(basis: Basis, synchronised: bool | None) -> str:
    """What a journal row adds about the host clock behind an answer; "" for the normal case (an edge
    of this host boot, clock synchronised)."""
    if basis is Basis.MONOTONIC:
        return "" if synchronised else "; host clock synchronisation unknown" if synchronised is None \
            else "; host clock unsynchronised"
    if basis is Basis.UTC:
        return "; UTC fixed in an earlier host boot"
    if basis is Basis.UTC_UNSYNCHRONISED:
        return "; UTC fixed in an earlier host boot whose clock was unsynchronised"
    return "; UTC fixed when stored (state file of an older version)"


def _ms(us: int | None) -> str:
    return "?" if us is None else f"{us / 1000:.3f} ms"
