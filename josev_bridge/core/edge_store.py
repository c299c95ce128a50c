"""Per-EVSE condition state and the last rising/falling edge of each condition. Pure: no I/O.

Feeding it MCU signal records in order yields condition edges; asking it answers
"when did condition X last become true / stop being true". It snapshots to a plain dict so an
adapter can persist it and a restart loses nothing.

Across an MCU reboot (docs/serial-protocol.md §4.3) each known condition becomes *unconfirmed*: its
level and edges are kept until the new boot reports it. A level report (LEVEL) with the same level
keeps the edge and notes that continuity was assumed; one with another level is an edge whose time
the caller worked out (or could not: an *untimed* edge, which orders later edges but is never
answered); a SIGNAL is always an edge, even with the level the store knew (it went the other way,
unseen, during the reboot).

Edge times are host monotonic µs of the current host boot (`Basis.MONOTONIC`): a lookup is given
the realtime-minus-monotonic offset of the moment it answers, so a board clock stepped after the
edge (NTP arriving late) moves the answer with it. `fix_to_utc` turns them into UTC (with how the
clock stood) when the host has rebooted since they were stored (core/host_time).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from .conditions import SIGNAL_CONDITION, Condition, Edge, EventType, Signal, SignalRecord
from .host_time import Basis

SNAPSHOT_VERSION = 2  # 2: times on a basis (host monotonic unless fixed to UTC); 1: every time UTC


@dataclass(slots=True)
class ConditionState:
    active: bool = False
    rise_us: int | None = None  # when it last became true (untimed: the latest it can have been)
    fall_us: int | None = None  # when it last stopped being true (likewise)
    rise_error_us: int | None = None  # the clock mapping's error bound for rise_us (None: not known)
    fall_error_us: int | None = None
    known: bool = False  # a record has told the level at least once
    unconfirmed: str | None = None  # "boot a -> b": the MCU rebooted and has not re-reported this level
    rise_note: str | None = None  # what an answer from rise_us says besides its bound (continuity, inferred)
    fall_note: str | None = None
    rise_untimed: bool = False  # rose at an unknown time: rise_us only orders it, it is never answered
    fall_untimed: bool = False
    rise_basis: Basis = Basis.MONOTONIC  # what rise_us is: host monotonic (this boot) or UTC fixed earlier
    fall_basis: Basis = Basis.MONOTONIC

    def rise_utc_us(self, offset_us: int = 0) -> int | None:
        """rise_us in UTC, with `offset_us` the realtime-minus-monotonic offset now."""
        return _utc(self.rise_us, self.rise_basis, offset_us)

    def fall_utc_us(self, offset_us: int = 0) -> int | None:
        return _utc(self.fall_us, self.fall_basis, offset_us)

    def stop_after_start_us(self, offset_us: int = 0) -> int | None:
        """The fall that ended the latest rise (UTC, with `offset_us`); None while the condition is
        still true or never rose."""
        fall, rise = _utc(self.fall_us, self.fall_basis, offset_us), self.rise_utc_us(offset_us)
        if fall is None or rise is None or fall < rise:
            return None
        return fall


def _utc(time_us: int | None, basis: Basis, offset_us: int) -> int | None:
    if time_us is None or basis is not Basis.MONOTONIC:
        return time_us
    return time_us + offset_us


@dataclass(frozen=True, slots=True)
class EdgeTime:
    """The time an edge is stored with: the time and its bound, what the journal says about it, and
    whether it is known at all (untimed: `time_us` is only the latest it can have been)."""

    time_us: int
    error_us: int | None = None
    note: str | None = None
    untimed: bool = False


class Miss(str, Enum):
    """Why a lookup found no time (also the journal's string response, Flipturn style)."""

    NO_EVENT_RECORDED = "NoEventRecorded"
    NOT_SUPPORTED = "NotSupported"


@dataclass(slots=True)  # answer path: not frozen (docs/architecture.md)
class Found:
    evse_id: int
    time_us: int  # UTC
    error_us: int | None = None  # the bound on |time_us - truth| stated when it was mapped (MCU clock -> host)
    note: str | None = None  # continuity assumed across a reboot, an inferred time, a level not yet re-reported
    basis: Basis = Basis.MONOTONIC  # how time_us became UTC: the offset now, or fixed in an earlier host boot


@dataclass(slots=True)
class Untimed:
    """The edge happened, but when is not known (a level that changed while the MCU rebooted, with
    no time the bridge could infer): never answered with a time; `note` says why."""

    evse_id: int
    note: str


@dataclass(slots=True)
class LevelOutcome:
    """What a level report did: the edges it made, and the conditions whose edges it kept (continuity
    assumed across `label`)."""

    edges: list[Edge]
    kept: list[Condition]
    label: str | None = None


class EdgeStore:
    """The condition edges of every EVSE the MCU has reported."""

    def __init__(self) -> None:
        self._evses: dict[int, dict[Condition, ConditionState]] = {}

    # -- feeding -------------------------------------------------------------------------------
    def apply(self, record: SignalRecord, error_us: int | None = None) -> list[Edge]:
        """Apply one MCU record whose time is host monotonic (this boot) within `error_us`; return the
        edges it caused, with that time
        (none if the state did not change, unless the MCU rebooted since the level was last confirmed:
        then the MCU saw a transition the store did not, and it is an edge)."""
        return self._apply(record.evse_id, record.signal, record.state, EdgeTime(record.time_us, error_us))

    def apply_level(self, evse_id: int, signal: Signal, state: bool, changed: EdgeTime) -> LevelOutcome:
        """A level the MCU re-reported without claiming an edge (LEVEL). The level the store knew: its
        edge is kept (noted, if the MCU rebooted since). Another level, or one never known: an edge at
        `changed` (a 0 never known is no edge at all)."""
        states = self._evse(evse_id)
        condition = SIGNAL_CONDITION[signal]
        s = states[condition]
        if s.known and s.active == state:
            label, s.unconfirmed = s.unconfirmed, None
            kept = [condition] if label else []
            if label:
                _note_continuity(s, label)
            if condition in _POWER_PATH_INPUTS:
                kept += self._confirm_power_path(states)
            return LevelOutcome([], kept, label)
        if not s.known and not state:
            s.known = True
            return LevelOutcome([], [])
        return LevelOutcome(self._apply(evse_id, signal, state, changed), [])

    def begin_reboot(self, label: str) -> None:
        """The MCU rebooted (`label`: "boot a -> b"): every known level is unconfirmed until the new
        boot reports it. Levels and edge times stay (and stay answerable, noted as not re-reported)."""
        for states in self._evses.values():
            for state in states.values():
                if state.known:
                    state.unconfirmed = label

    def _apply(self, evse_id: int, signal: Signal, state: bool, when: EdgeTime) -> list[Edge]:
        states = self._evse(evse_id)
        condition = SIGNAL_CONDITION[signal]
        forced = states[condition].unconfirmed is not None and states[condition].active == state
        edges = self._set(evse_id, states, condition, state, when, force=True)
        if condition in _POWER_PATH_INPUTS:
            if edges:
                both = states[Condition.EV_CONNECTED].active and states[Condition.AUTHORIZED].active
                other = states[Condition.AUTHORIZED if condition is Condition.EV_CONNECTED else Condition.EV_CONNECTED]
                # an input that went the other way and back, unseen, took the power path with it
                # when the other input was true
                edges += self._set(evse_id, states, Condition.POWER_PATH_CLOSED, both, when,
                                   force=forced and other.active, confirm=False)
            self._confirm_power_path(states)
        return edges

    @staticmethod
    def _confirm_power_path(states: dict[Condition, ConditionState]) -> list[Condition]:
        """PowerPathClosed is confirmed once both its inputs are: kept (noted) if it did not change."""
        ppc = states[Condition.POWER_PATH_CLOSED]
        if ppc.unconfirmed is None or any(states[c].unconfirmed is not None for c in _POWER_PATH_INPUTS):
            return []
        label, ppc.unconfirmed = ppc.unconfirmed, None
        if ppc.active != (states[Condition.EV_CONNECTED].active and states[Condition.AUTHORIZED].active):
            ppc.active = not ppc.active  # an input never known: no time to give this edge
            return []
        _note_continuity(ppc, label)
        return [Condition.POWER_PATH_CLOSED]

    def _evse(self, evse_id: int) -> dict[Condition, ConditionState]:
        states = self._evses.get(evse_id)
        if states is None:
            states = self._evses[evse_id] = {c: ConditionState() for c in Condition}
        return states

    @staticmethod
    def _set(evse_id: int, states: dict[Condition, ConditionState], condition: Condition, active: bool,
             when: EdgeTime, force: bool = False, confirm: bool = True) -> list[Edge]:
        """Set a level; an edge if it changed (or if `force` and it was unconfirmed). `confirm`: the
        record speaks of this condition, so it is confirmed even without an edge."""
        state = states[condition]
        unconfirmed = state.unconfirmed is not None
        if confirm:
            state.known, state.unconfirmed = True, None
        if state.active == active and not (force and unconfirmed):
            return []
        state.active, state.known, state.unconfirmed = active, True, None
        if active:
            state.rise_us, state.rise_error_us, state.rise_note, state.rise_untimed, state.rise_basis = \
                when.time_us, when.error_us, when.note, when.untimed, Basis.MONOTONIC
        else:
            state.fall_us, state.fall_error_us, state.fall_note, state.fall_untimed, state.fall_basis = \
                when.time_us, when.error_us, when.note, when.untimed, Basis.MONOTONIC
        return [Edge(evse_id, condition, active, when.time_us)]

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

    # -- asking --------------------------------------------------------------------------------
    def lookup(self, event_type: EventType, condition: Condition,
               evse_id: int | None = None, offset_us: int = 0) -> Found | Untimed | Miss:
        """When did `condition` last become true (START) or stop being true after that (STOP)? In UTC,
        with `offset_us` the realtime-minus-monotonic offset now.

        Without `evse_id`, the EVSE whose matching edge is the most recent answers. An edge whose
        time is unknown is Untimed (with why), never a time.
        """
        candidates = [evse_id] if evse_id is not None else sorted(self._evses)
        best: tuple[int, Found | Untimed] | None = None
        for candidate in candidates:
            states = self._evses.get(candidate)
            if states is None:
                continue
            state = states[condition]
            if event_type is EventType.START:
                time_us, error_us, note, untimed, basis = state.rise_utc_us(offset_us), state.rise_error_us, \
                    state.rise_note, state.rise_untimed, state.rise_basis
            else:
                time_us, error_us, note, untimed, basis = state.stop_after_start_us(offset_us), \
                    state.fall_error_us, state.fall_note, state.fall_untimed, state.fall_basis
            if time_us is None or (best is not None and time_us <= best[0]):
                continue
            if state.unconfirmed is not None:
                note = _joined(note, f"the MCU has not re-reported this level since MCU {state.unconfirmed}")
            best = time_us, (Untimed(candidate, note or "time unknown") if untimed
                             else Found(candidate, time_us, error_us, note, basis))
        return best[1] if best is not None else Miss.NO_EVENT_RECORDED

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
                              "rise_error_us": s.rise_error_us, "fall_error_us": s.fall_error_us, "known": s.known,
                              **{k: getattr(s, k) for k in _OPTIONAL if getattr(s, k)},
                              **{k: b.value for k, b in (("rise_basis", s.rise_basis), ("fall_basis", s.fall_basis))
                                 if b is not Basis.MONOTONIC}}
                    for c, s in states.items()
                    if s.active or s.known or s.rise_us is not None or s.fall_us is not None
                }
                for evse_id, states in self._evses.items()
            },
        }

    @classmethod
    def from_snapshot(cls, data: object) -> EdgeStore:
        """Rebuild from `snapshot()` output; raises ValueError on anything malformed. A version 1
        snapshot (an older bridge) held UTC times whose clock state was not recorded."""
        version = data.get("version") if isinstance(data, dict) else data
        if not isinstance(data, dict) or version not in (1, SNAPSHOT_VERSION):
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
                # absent: stored before level reports; whatever an older version stored, it was told
                state.known = bool(raw.get("known", True))
                for key in ("unconfirmed", "rise_note", "fall_note"):
                    setattr(state, key, _opt_str(raw.get(key)))
                state.rise_untimed, state.fall_untimed = bool(raw.get("rise_untimed")), bool(raw.get("fall_untimed"))
                state.rise_basis = Basis(raw.get("rise_basis", default)) if version != 1 else default
                state.fall_basis = Basis(raw.get("fall_basis", default)) if version != 1 else default
        return store


_POWER_PATH_INPUTS = (Condition.EV_CONNECTED, Condition.AUTHORIZED)
_OPTIONAL = ("unconfirmed", "rise_note", "fall_note", "rise_untimed", "fall_untimed")  # in a snapshot only when set


def _joined(note: str | None, more: str) -> str:
    return f"{note}; {more}" if note else more


def _note_continuity(state: ConditionState, label: str) -> None:
    """The edge that answers for the current level (the rise while active, else the fall) is kept."""
    note = f"continuity assumed across MCU {label}"
    if state.active:
        state.rise_note = _joined(state.rise_note, note)
    elif state.fall_us is not None:
        state.fall_note = _joined(state.fall_note, note)


def _opt_str(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _opt_int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer time, got {value!r}")
    return value
