"""MCU records waiting for their boot's clock: kept in order until a clock sample lets them be mapped.

A record is applied once its MCU boot's clock is mapped; one stamped during an outage (past the
newest low-latency sample) once a sample after it makes its time an interpolation, for at most
FRESH_SAMPLE_TRIES samples (then it is mapped as it is, with its bound). Nothing overtakes a waiting
record, and none is acknowledged while it waits. While records wait, the serial link probes the MCU's
clock every 0.1 s (`wanted`).

A HELLO of another boot ends the wait: those records will not get their clock. The ones its replay
sends again are set aside (applied when they come back); the rest are lost with their boot. Pure:
services/mcu_ingest feeds it on the serial thread, and counts and logs what it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from .clock_map import ClockMap

R = TypeVar("R")

FRESH_SAMPLE_TRIES = 10  # samples a record stamped past the newest low-latency one waits for (~1 s)


class ClockWait(Generic[R]):
    """The records waiting, as (seq, record) in seq order, and the probe answers since they began to wait."""

    def __init__(self) -> None:
        self.records: list[tuple[int, R]] = []
        self._samples = 0  # probe answers since the first waiting record started to wait
        self._hello_heard = False  # a HELLO came since the port was (re)opened (its HOST_HELLO's answer)

    def clock_for(self, seq: int, record: R, time_us: int, clock: ClockMap | None) -> ClockMap | None:
        """The clock to map `record` (stamped `time_us`, 0: none) with now, or None: it waits, kept
        behind those waiting already (its boot's clock is not mapped yet, or it wants a fresh sample)."""
        if self.records or clock is None or not clock.ready or self._wants_fresh_sample(time_us, clock):
            self.records.append((seq, record))  # order is kept: nothing overtakes a waiting record
            return None
        return clock

    def _wants_fresh_sample(self, time_us: int, clock: ClockMap) -> bool:
        """Stamped well past the newest low-latency sample (during an outage): wait for one after it, to
        interpolate, for at most FRESH_SAMPLE_TRIES samples (then it is mapped as it is, with its bound)."""
        return bool(time_us) and not clock.covers(time_us) and self._samples < FRESH_SAMPLE_TRIES

    def sample_answered(self) -> None:
        """A probe was answered (an answer of 0 too: the wanted probes stop after a few)."""
        if self.records:
            self._samples += 1

    def release(self, apply: Callable[[int, R], None]) -> None:
        """A clock sample was added: each waiting record, in order, goes to `apply`, which asks
        `clock_for` again (a record still waiting keeps the ones after it waiting too)."""
        if self.records:
            waiting, self.records = self.records, []
            for seq, record in waiting:
                apply(seq, record)
            if not self.records:
                self._samples = 0

    def wanted(self) -> bool:
        """True while records wait for a clock sample: for a boot not mapped yet, or for a sample after
        records stamped during an outage."""
        return bool(self.records) and self._samples < FRESH_SAMPLE_TRIES

    def hello(self, rebooted: bool, oldest_seq: int | None, next_seq: int | None) -> tuple[list[int], int]:
        """A HELLO came; after one of another boot (`rebooted`), the waiting records will not get their
        clock. Returns the seqs its replay sends again (set aside: applied when they come back, so
        nothing is lost) and how many are lost with their boot; ([], 0) when none were waiting."""
        first_in_session, self._hello_heard = not self._hello_heard, True
        if not rebooted:
            return [], 0
        again = [seq for seq, _ in self.records if replayed_after(seq, first_in_session, oldest_seq, next_seq)]
        lost = len(self.records) - len(again)
        self.records, self._samples = [], 0
        return again, lost

    def link_closed(self) -> None:
        """The port closed: the next opening's HOST_HELLO is answered by a HELLO and a replay."""
        self._hello_heard = False


def replayed_after(seq: int, first_in_session: bool, oldest_seq: int | None, next_seq: int | None) -> bool:
    """Whether the record `seq`, received before a HELLO of another boot than the bridge followed,
    comes again in the replay after it (docs/serial-protocol.md §4.1, §3).

    Only the first HELLO since the port opened can be followed by records received before it: it
    answers the bridge's HOST_HELLO, and such a record came from the MCU before it saw that request
    (a live record at start-up; it is never acknowledged while it waits). After a later HELLO of
    another boot, the waiting records are the previous boot's, which the new boot does not have.
    The HELLO says which seqs it replays, `oldest_seq` up to `next_seq`; a version-1 HELLO does not,
    and replays every record not acknowledged."""
    if not first_in_session:
        return False
    if oldest_seq is None or next_seq is None:
        return True
    return oldest_seq <= seq < next_seq
