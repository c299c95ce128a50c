"""Sequence bookkeeping for MCU records: duplicates, gaps, replays, reboots. Pure.

Records carry a sequence number within one MCU boot. The bridge applies each (boot, seq) once and
**in seq order**: a record that arrives after a gap is held until the missing ones arrive (the MCU
replays everything not acknowledged), and only the contiguous prefix is acknowledged. Records are
declared lost only when the MCU says it no longer has them (HELLO's oldest_seq) or when holding
more would exceed the bound; a loss is reported, never silent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, Self, TypeVar

T = TypeVar("T")

MAX_HELD = 4096


class Verdict(str, Enum):
    NEW = "new"  # applied now (with any held records it unblocked)
    DUPLICATE = "duplicate"  # seen before: skipped
    HELD = "held"  # after a gap: kept until the gap fills; ask the MCU to replay


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    verdict: Verdict
    released: tuple[tuple[int, T], ...] = ()  # (seq, record) to apply now, in seq order
    lost: int = 0  # records declared unrecoverable by this step


@dataclass
class SequenceTracker(Generic[T]):
    boot_id: int | None = None
    last_seq: int = 0  # every record up to here was applied: the ack point
    held: dict[int, T] = field(default_factory=dict)
    max_held: int = MAX_HELD

    @property
    def gap(self) -> bool:
        return bool(self.held)

    def hello(self, boot_id: int, oldest_seq: int | None = None) -> tuple[bool, Outcome[T]]:
        """The MCU announced its boot (and the oldest record it still holds). Returns (new boot?, outcome)."""
        new_boot = boot_id != self.boot_id
        if new_boot:
            self.boot_id, self.last_seq = boot_id, 0
            self.held.clear()
        if oldest_seq is not None and oldest_seq > self.last_seq + 1:
            return new_boot, self._skip_to(oldest_seq - 1)
        return new_boot, Outcome(Verdict.NEW)

    def accept(self, seq: int, record: T) -> Outcome[T]:
        if seq <= self.last_seq or seq in self.held:
            return Outcome(Verdict.DUPLICATE)
        if seq != self.last_seq + 1:
            self.held[seq] = record
            if len(self.held) > self.max_held:  # the gap will not fill in time: give it up, loudly
                return self._skip_to(min(self.held) - 1)
            return Outcome(Verdict.HELD)
        self.last_seq = seq
        return Outcome(Verdict.NEW, ((seq, record),) + self._release())

    def _skip_to(self, seq: int) -> Outcome[T]:
        """Declare everything missing up to `seq` lost and apply what was held behind it."""
        lost = sum(1 for s in range(self.last_seq + 1, seq + 1) if s not in self.held)
        released = tuple((s, self.held.pop(s)) for s in sorted(s for s in self.held if s <= seq))
        self.last_seq = max(self.last_seq, seq)
        return Outcome(Verdict.NEW, released + self._release(), lost)

    def _release(self) -> tuple[tuple[int, T], ...]:
        out = []
        while self.last_seq + 1 in self.held:
            self.last_seq += 1
            out.append((self.last_seq, self.held.pop(self.last_seq)))
        return tuple(out)

    def snapshot(self) -> dict[str, Any]:
        """Only the ack point is persisted: held records are not acknowledged, so the MCU replays them."""
        return {"boot_id": self.boot_id, "last_seq": self.last_seq}

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> Self:
        boot_id, last_seq = data.get("boot_id"), data.get("last_seq", 0)
        if (boot_id is not None and not isinstance(boot_id, int)) or not isinstance(last_seq, int):
            raise ValueError(f"bad link snapshot {data!r}")
        return cls(boot_id, last_seq)
