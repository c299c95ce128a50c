"""How old a journal row truly is when the board's clock may step, and so which rows age retention
may delete (issue 14, "nothing lost"). Pure: every clock reading is passed in.

A row's `created_us` is the board's UTC when it was written. A board without an RTC boots with a
wrong clock and steps it when NTP arrives (+3 years is common): judged by `created_us`, every row
written before the step would look 3 years old and go at the next retention pass, the journal of
the very time the clock was wrong. A backward step would keep rows too long. So retention does not
age rows by `created_us`:

- The writer stamps its batches on **CLOCK_BOOTTIME**, which no step moves. BOOTTIME rather than
  CLOCK_MONOTONIC because it goes on counting while the board is suspended: a row's age is then
  the time that truly passed, where MONOTONIC would under-count it (rows kept too long). Both restart
  with the host, so a stamp is only meaningful with the host boot it was taken in
  (/proc/sys/kernel/random/boot_id).
- Stamping every row would cost bytes per row and an index to delete by. Ids are given in write
  order by the one writer, so the rows of one host boot are one id range, written in boottime order.
  A `Mark` says: the rows from `first_id` up to the next mark were written in host boot `boot_id`,
  at boottime `boottime_us` or later and before `boottime_us + span_us` (the writer takes a new
  mark at its first batch past that, or in another boot). A mark every `span_us` (1 % of the age
  bound, at most an hour) keeps them few (720 for 30 days of continuous writing) and deletes rows at
  most one span late. Deleting is by id range: the primary key, never a scan, whatever the clock did.
- Rows of the current host boot: age = boottime now - boottime at writing, exact.
- Rows of an earlier boot: their true UTC is their boottime plus the realtime-minus-boottime offset of
  that boot, if the kernel ever said the clock was synchronised (adjtimex, `STA_UNSYNC` clear) during
  it: the writer keeps the latest such offset per boot (`synced_offset`). Compared with a trusted now
  (this boot's synchronised offset plus boottime now), they age exactly too, including the rows
  written before that boot's clock was set. A boot whose clock was never known synchronised
  (no NTP, or adjtimex not readable), or a now that is not, leaves their age unknown: they are never
  deleted by age, only by the size bound (`max_size_mb`), oldest first.
- Rows of a version that kept no marks (ids below the first mark): today's rule, `created_us` against
  now, which is right for rows written while the clock was right. It is applied only with a trusted
  now, and only as a prefix in id order (up to the first row that is not old), so a step inside them
  keeps rows rather than deleting them. The rows they could still wrongly delete are those an older
  version wrote with a clock behind, in a boot that has since ended, which that version had not
  itself deleted.

A row's age is measured from when the writer took it (within COMMIT_INTERVAL of its creation, later
while the disk is full): never longer than its true age, so no row goes early; with the margins
(RATE_MARGIN, OFFSET_TOLERANCE_US) and a mark's span, at most about an hour late at 30 days.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

UNKNOWN_BOOT = "unknown"  # /proc/sys/kernel/random/boot_id not readable: never this boot, no offset
OFFSET_TOLERANCE_US = 1_000_000  # a boot's synchronised offset is stored again when it moves by more
# (a step; NTP's slewing, at most 500 ppm, after half an hour or more); ages are judged with this margin
RATE_MARGIN = 500e-6  # of the age bound: a free-running oscillator (no NTP) may be this far off (the most
# the kernel corrects: crystals are within 100 ppm), so boottime ages are judged with this margin
SPAN_MAX_US = 3_600_000_000  # a mark covers at most an hour of writing ...
SPAN_MIN_US = 1_000_000  # ... and at least a second (a tiny max_age in tests)
NO_END = 2**63 - 1  # the newest mark's rows run to whatever id comes next


def span_for(max_age_us: int) -> int:
    """How long one mark covers: 1 % of the age bound, within [SPAN_MIN_US, SPAN_MAX_US]."""
    return max(SPAN_MIN_US, min(SPAN_MAX_US, max_age_us // 100))


@dataclass(frozen=True, slots=True)
class ClockReading:
    """The host's clocks as the journal writer reads them."""

    boot_id: str
    boottime_us: int  # CLOCK_BOOTTIME: never stepped, restarts with the host
    realtime_us: int  # the board's UTC, steps and all
    synchronised: bool | None  # the kernel's word (adjtimex); None: not readable

    @property
    def offset_us(self) -> int:
        """Realtime minus boottime: what turns this boot's boottimes into UTC."""
        return self.realtime_us - self.boottime_us


@dataclass(frozen=True, slots=True)
class Mark:
    """Rows from `first_id` to the next mark's were written in host boot `boot_id`, at a boottime
    in [boottime_us, boottime_us + span_us) and not after the next mark of the same boot."""

    first_id: int
    boot_id: str
    boottime_us: int
    span_us: int


def needs_mark(last: Mark | None, now: ClockReading) -> bool:
    """Whether rows written at `now` need a new mark: `last` (the newest) does not cover them."""
    return (last is None or last.boot_id != now.boot_id
            or not last.boottime_us <= now.boottime_us < last.boottime_us + last.span_us)


def synced_offset(stored: int | None, now: ClockReading) -> int | None:
    """The offset to store as this boot's synchronised one (None: keep what is stored). Only while the
    kernel says synchronised; again when it moved by more than OFFSET_TOLERANCE_US (a step)."""
    if now.synchronised is not True or now.boot_id == UNKNOWN_BOOT:
        return None
    if stored is None or abs(now.offset_us - stored) > OFFSET_TOLERANCE_US:
        return now.offset_us
    return None


def trusted_utc(offsets: Mapping[str, int], now: ClockReading) -> int | None:
    """UTC now if this boot's clock was ever known synchronised (its latest synchronised offset); else None."""
    offset = offsets.get(now.boot_id) if now.boot_id != UNKNOWN_BOOT else None
    return None if offset is None else now.boottime_us + offset


def boot_cutoff(boot_id: str, offsets: Mapping[str, int], now: ClockReading, max_age_us: int) -> int | None:
    """The boottime (of `boot_id`) before which a row of that boot is older than `max_age_us`; None
    when the age of its rows cannot be known."""
    if boot_id == UNKNOWN_BOOT:
        return None
    bound = max_age_us + round(max_age_us * RATE_MARGIN)
    if boot_id == now.boot_id:
        return now.boottime_us - bound
    utc, offset = trusted_utc(offsets, now), offsets.get(boot_id)
    if utc is None or offset is None:
        return None
    return utc - bound - offset - 2 * OFFSET_TOLERANCE_US  # each offset within the tolerance of the truth


@dataclass(frozen=True, slots=True)
class AgePlan:
    """What age retention may delete now."""

    ranges: tuple[tuple[int, int], ...]  # id ranges [first, end): every row in them is older than the bound
    legacy_below: int  # rows with a lower id were written by a version that kept no marks ...
    legacy_cutoff_us: int | None  # ... and may go, as a prefix, while created_us is below this (None: none may)


def age_plan(marks: Sequence[Mark], offsets: Mapping[str, int], now: ClockReading, max_age_us: int) -> AgePlan:
    """The rows older than `max_age_us` at `now`, from the marks (in first_id order) and each boot's
    synchronised offset. The newest mark's rows run to NO_END (the rows written next are its own).

    A mark's rows are older than the bound when every one of them was written before its boot's cutoff:
    before `boottime_us + span_us`, or before the next mark of the same boot (whichever is earlier).
    Within a boot those ends grow with the id, so each boot's deletable rows are a prefix of them.
    """
    ranges: list[tuple[int, int]] = []
    cutoffs: dict[str, int | None] = {}
    for i, mark in enumerate(marks):
        following = marks[i + 1] if i + 1 < len(marks) else None
        if mark.boot_id not in cutoffs:
            cutoffs[mark.boot_id] = boot_cutoff(mark.boot_id, offsets, now, max_age_us)
        cutoff = cutoffs[mark.boot_id]
        if cutoff is None:
            continue
        written_before = mark.boottime_us + mark.span_us
        if following is not None and following.boot_id == mark.boot_id:
            written_before = min(written_before, following.boottime_us + 1)  # "not after the next mark"
        if written_before > cutoff:
            continue
        end = following.first_id if following is not None else NO_END
        if ranges and ranges[-1][1] == mark.first_id:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((mark.first_id, end))
    utc = trusted_utc(offsets, now)
    return AgePlan(tuple(ranges), marks[0].first_id if marks else NO_END, None if utc is None else utc - max_age_us)
