"""Per-EVSE condition state and the last rising/falling edge of each condition. Pure: no I/O.

Feeding it MCU signal records in order yields condition edges; asking it answers
"when did condition X last become true / stop being true". It snapshots to a plain dict so an
adapter can persist it and a restart loses nothing.

Edge times are host monotonic µs of the current host boot (`Basis.MONOTONIC`): a lookup is given
the realtime-minus-monotonic offset of the moment it answers, so a board clock stepped after the
edge (NTP arriving late) moves the answer with it. `fix_to_utc` turns them into UTC (with how the
clock stood) when the host has rebooted since they were stored (core/host_time).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .conditions import SIGNAL_CONDITION, Condition, Edge, EventType, SignalRecord
from .host_time import Basis

SNAPSHOT_VERSION = 2  # 2: times on a basis (host monotonic unless fixed to UTC); 1: every time UTC


@dataclass(slots=True)
class ConditionState:
    active: bool = False
    rise_us: int | None = None  # when it last became true
    fall_us: int | None = None  # when it last stopped being true
    rise_error_us: int | None = None  # the clock mapping's error bound for rise_us (None: not known)
    fall_error_us: int | None = None
    rise_basis: Basis = Basis.MONOTONIC  # what rise_us is: host monotonic (this boot) or UTC fixed earlier
    fall_basis: Basis = Basis.MONOTONIC

    def rise_utc_us(self, offset_us: int) -> int | None:
        return _utc(self.rise_us, self.rise_basis, offset_us)

    def stop_after_start_us(self, offset_us: int = 0) -> int | None:
        """The fall that ended the latest rise (UTC with `offset_us`, realtime minus monotonic); None
        while the condition is still true or never rose."""
        fall, rise = _utc(self.fall_us, self.fall_basis, offset_us), self.rise_utc_us(offset_us)
        if fall is None or rise is None or fall < rise:
            return None
        return fall


def _utc(time_us: int | None, basis: Basis, offset_us: int) -> int | None:
    if time_us is None or basis is not Basis.MONOTONIC:
        return time_us
    return time_us + offset_us


class Miss(str, Enum):
    """Why a lookup found no time (also the journal's string response, Flipturn style)."""

    NO_EVENT_RECORDED = "NoEventRecorded"
    NOT_SUPPORTED = "NotSupported"


@dataclass(slots=True)  # answer path: not frozen (docs/architecture.md)
class Found:
    evse_id: int
    time_us: int  # UTC
    error_us: int | None = None  # the bound on |time_us - truth| stated when it was mapped (MCU clock -> host)
    basis: Basis = Basis.MONOTONIC  # how time_us became UTC: the offset now, or fixed in an earlier host boot


class EdgeStore:
    """The condition edges of every EVSE the MCU has reported."""

    def __init__(self) -> None:
        self._evses: dict[int, dict[Condition, ConditionState]] = {}

    # -- feeding -------------------------------------------------------------------------------
    def apply(self, record: SignalRecord, error_us: int | None = None) -> list[Edge]:
        """Apply one MCU record whose time is host monotonic (this boot) within `error_us`; return the
        edges it caused (none if the state did not change), with that time."""
        states = self._evse(record.evse_id)
        condition = SIGNAL_CONDITION[record.signal]
        edges = self._set(record.evse_id, states, condition, record.state, record.time_us, error_us)
        if edges and condition in (Condition.EV_CONNECTED, Condition.AUTHORIZED):
            both = states[Condition.EV_CONNECTED].active and states[Condition.AUTHORIZED].active
            edges += self._set(record.evse_id, states, Condition.POWER_PATH_CLOSED, both, record.time_us, error_us)
        return edges

    def _evse(self, evse_id: int) -> dict[Condition, ConditionState]:
        states = self._evses.get(evse_id)
        if states is None:
            states = self._evses[evse_id] = {c: ConditionState() for c in Condition}
        return states

    @staticmethod
    def _set(evse_id: int, states: dict[Condition, ConditionState], condition: Condition,
             active: bool, time_us: int, error_us: int | None) -> list[Edge]:
        state = states[condition]
        if state.active == active:
            return []
        state.active = active
        if active:
            state.rise_us, state.rise_error_us, state.rise_basis = time_us, error_us, Basis.MONOTONIC
        else:
            state.fall_us, state.fall_error_us, state.fall_basis = time_us, error_us, Basis.MONOTONIC
        return [Edge(evse_id, condition, active, time_us)]

    def fix_to_utc(self, offset_us: int, offset_error_us: int, synchronised: bool | None) -> int:
        """The host rebooted since these edges were stored: their monotonic times mean nothing now.
        Fix each to UTC with the offset (and its error) last known in their boot; returns how many."""
        basis, fixed = Basis.fixed(synchronised), 0
        for states in self._evses.values():
            for s in states.values():
                if s.rise_us is not None and s.rise_basis is Basis.MONOTONIC:
                    s.rise_us, s.rise_basis = s.rise_us + offset_us, basis
                    s.rise_error_us = None if s.rise_error_us is None else s.rise_error_us + offset_error_us
                    fixed += 1
                if s.fall_us is not None and s.fall_basis is Basis.MONOTONIC:
                    s.fall_us, s.fall_basis = s.fall_us + offset_us, basis
                    s.fall_error_us = None if s.fall_error_us is None else s.fall_error_us + offset_error_us
                    fixed += 1
        return fixed

    def forget_states(self) -> None:
        """The MCU rebooted: what is true now is unknown until it reports again.

        Every condition becomes inactive *without* a falling edge (we do not know when, if ever, it
        fell, and never invent a time); the stored edge times stay answerable. The MCU's next
        report of a true signal then yields a rising edge with the hardware's time.
        """
        for states in self._evses.values():
            for state in states.values():
                state.active = False

    # -- asking --------------------------------------------------------------------------------
    def lookup(self, event_type: EventType, condition: Condition, evse_id: int | None = None,
               offset_us: int = 0) -> Found | Miss:
        """When did `condition` last become true (START) or stop being true after that (STOP)? In UTC,
        with `offset_us` the realtime-minus-monotonic offset now.

        Without `evse_id`, the EVSE whose matching edge is the most recent answers.
        """
        candidates = [evse_id] if evse_id is not None else sorted(self._evses)
        best: Found | None = None
        for candidate in candidates:
            states = self._evses.get(candidate)
            if states is None:
                continue
            state = states[condition]
            if event_type is EventType.START:
                time_us, error_us, basis = state.rise_utc_us(offset_us), state.rise_error_us, state.rise_basis
            else:
                time_us, error_us, basis = state.stop_after_start_us(offset_us), state.fall_error_us, state.fall_basis
            if time_us is not None and (best is None or time_us > best.time_us):
                best = Found(candidate, time_us, error_us, basis)
        return best if best is not None else Miss.NO_EVENT_RECORDED

    def state(self, evse_id: int, condition: Condition) -> ConditionState | None:
        states = self._evses.get(evse_id)
        return None if states is None else states[condition]

    def evse_ids(self) -> list[int]:
        return sorted(self._evses)

    # -- persistence ---------------------------------------------------------------------------
    def snapshot(self) -> dict:
        return {
            "version": SNAPSHOT_VERSION,
            "evses": {
                str(evse_id): {
                    c.value: {"active": s.active, "rise_us": s.rise_us, "fall_us": s.fall_us,
                              "rise_error_us": s.rise_error_us, "fall_error_us": s.fall_error_us,
                              "rise_basis": s.rise_basis.value, "fall_basis": s.fall_basis.value}
                    for c, s in states.items()
                    if s.active or s.rise_us is not None or s.fall_us is not None
                }
                for evse_id, states in self._evses.items()
            },
        }

    @classmethod
    def from_snapshot(cls, data: dict) -> "EdgeStore":
        """Rebuild from `snapshot()` output; raises ValueError on anything malformed. A version 1
        snapshot (an older bridge) held UTC times whose clock state was not recorded."""
        version = data.get("version") if isinstance(data, dict) else data
        if version not in (1, SNAPSHOT_VERSION):
            raise ValueError(f"unsupported edge snapshot version: {version!r}")
        default = Basis.UTC_UNKNOWN if version == 1 else Basis.MONOTONIC
        store = cls()
        for evse_key, conditions in data.get("evses", {}).items():
            states = store._evse(int(evse_key))
            for name, raw in conditions.items():
                state = states[Condition(name)]
                state.active = bool(raw["active"])
                state.rise_us = _opt_int(raw.get("rise_us"))
                state.fall_us = _opt_int(raw.get("fall_us"))
                state.rise_error_us = _opt_int(raw.get("rise_error_us"))  # absent: stored by an older version
                state.fall_error_us = _opt_int(raw.get("fall_error_us"))
                state.rise_basis = Basis(raw.get("rise_basis", default)) if version != 1 else default
                state.fall_basis = Basis(raw.get("fall_basis", default)) if version != 1 else default
        return store


def _opt_int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer time, got {value!r}")
    return value
