"""Per-EVSE condition state and the last rising/falling edge of each condition. Pure: no I/O.

Feeding it MCU signal records in order yields condition edges; asking it answers
"when did condition X last become true / stop being true". It snapshots to a plain dict so an
adapter can persist it and a restart loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from .conditions import SIGNAL_CONDITION, Condition, Edge, EventType, SignalRecord

SNAPSHOT_VERSION = 1


@dataclass(slots=True)
class ConditionState:
    active: bool = False
    rise_us: int | None = None  # when it last became true
    fall_us: int | None = None  # when it last stopped being true
    rise_error_us: int | None = None  # the clock mapping's error bound for rise_us (None: not known)
    fall_error_us: int | None = None

    def stop_after_start_us(self) -> int | None:
        """The fall that ended the latest rise; None while the condition is still true or never rose."""
        if self.fall_us is None or self.rise_us is None or self.fall_us < self.rise_us:
            return None
        return self.fall_us


class Miss(str, Enum):
    """Why a lookup found no time (also the journal's string response, Flipturn style)."""

    NO_EVENT_RECORDED = "NoEventRecorded"
    NOT_SUPPORTED = "NotSupported"


@dataclass(slots=True)  # answer path: not frozen (docs/architecture.md)
class Found:
    evse_id: int
    time_us: int
    error_us: int | None = None  # the bound on |time_us - truth| stated when it was mapped to UTC


class EdgeStore:
    """The condition edges of every EVSE the MCU has reported."""

    def __init__(self) -> None:
        self._evses: dict[int, dict[Condition, ConditionState]] = {}

    # -- feeding -------------------------------------------------------------------------------
    def apply(self, record: SignalRecord, error_us: int | None = None) -> list[Edge]:
        """Apply one MCU record whose time is in UTC within `error_us`; return the edges it caused
        (none if the state did not change)."""
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
            state.rise_us, state.rise_error_us = time_us, error_us
        else:
            state.fall_us, state.fall_error_us = time_us, error_us
        return [Edge(evse_id, condition, active, time_us)]

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
    def lookup(self, event_type: EventType, condition: Condition, evse_id: int | None = None) -> Found | Miss:
        """When did `condition` last become true (START) or stop being true after that (STOP)?

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
                time_us, error_us = state.rise_us, state.rise_error_us
            else:
                time_us, error_us = state.stop_after_start_us(), state.fall_error_us
            if time_us is not None and (best is None or time_us > best.time_us):
                best = Found(candidate, time_us, error_us)
        return best if best is not None else Miss.NO_EVENT_RECORDED

    def state(self, evse_id: int, condition: Condition) -> ConditionState | None:
        states = self._evses.get(evse_id)
        return None if states is None else states[condition]

    def evse_ids(self) -> list[int]:
        return sorted(self._evses)

    # -- persistence ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
            "evses": {
                str(evse_id): {
                    c.value: {"active": s.active, "rise_us": s.rise_us, "fall_us": s.fall_us,
                              "rise_error_us": s.rise_error_us, "fall_error_us": s.fall_error_us}
                    for c, s in states.items()
                    if s.active or s.rise_us is not None or s.fall_us is not None
                }
                for evse_id, states in self._evses.items()
            },
        }

    @classmethod
    def from_snapshot(cls, data: object) -> EdgeStore:
        """Rebuild from `snapshot()` output; raises ValueError on anything malformed."""
        if not isinstance(data, dict) or data.get("version") != SNAPSHOT_VERSION:
            version = data.get("version") if isinstance(data, dict) else data
            raise ValueError(f"unsupported edge snapshot version: {version!r}")
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
        return store


def _opt_int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer time, got {value!r}")
    return value
