"""Sequence bookkeeping for MCU records: duplicates, gaps, reboots. Pure.

Records carry a sequence number within one MCU boot. The bridge accepts each (boot, seq) once:
a replay after a reconnect or a bridge restart is skipped, a jump is reported as a gap, and a new
boot id (announced by HELLO) starts counting again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Verdict(str, Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    GAP = "gap"  # new, but records before it were never received


@dataclass(frozen=True, slots=True)
class Acceptance:
    verdict: Verdict
    missing: int = 0  # records skipped over when verdict is GAP

    @property
    def accepted(self) -> bool:
        return self.verdict is not Verdict.DUPLICATE


@dataclass
class SequenceTracker:
    boot_id: int | None = None
    last_seq: int = 0

    def hello(self, boot_id: int) -> bool:
        """The MCU announced its boot; True if this is a different boot than the one we tracked."""
        if boot_id == self.boot_id:
            return False
        self.boot_id = boot_id
        self.last_seq = 0
        return True

    def accept(self, seq: int) -> Acceptance:
        if seq <= self.last_seq:
            return Acceptance(Verdict.DUPLICATE)
        missing = seq - self.last_seq - 1
        self.last_seq = seq
        return Acceptance(Verdict.GAP, missing) if missing else Acceptance(Verdict.NEW)

    def snapshot(self) -> dict:
        return {"boot_id": self.boot_id, "last_seq": self.last_seq}

    @classmethod
    def from_snapshot(cls, data: dict) -> "SequenceTracker":
        boot_id, last_seq = data.get("boot_id"), data.get("last_seq", 0)
        if (boot_id is not None and not isinstance(boot_id, int)) or not isinstance(last_seq, int):
            raise ValueError(f"bad link snapshot {data!r}")
        return cls(boot_id, last_seq)
