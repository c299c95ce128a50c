"""One EVSE's six conditions as intervals over a window, and the edges the bridge would answer. Pure.

Why two sources merged here: the history of edges is the journal's `mcu_edge` rows (one per edge,
written by the daemon as the ingest applies it), which can lag the ingest by the journal's commit
interval and start only when this version was installed; the edge store's snapshot (`edges.json`,
persisted before the MCU is acknowledged) is the authority on the *current* state and on the last
rise and fall of each condition, which are exactly the edges get_event_timestamp answers with. The
snapshot's edges are merged into the history (same time, same direction: one edge), so the bars
always end in the state the bridge answers from, even before the journal has the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .conditions import START_ONLY, TRIGGER_REASONS, Condition, EventType
from .host_time import Basis


@dataclass(frozen=True, slots=True)
class HistoryEdge:
    """A condition of one EVSE rose or fell at `time_us` (UTC µs, the MCU's time mapped)."""

    evse_id: int
    condition: str
    rising: bool
    time_us: int


@dataclass(frozen=True, slots=True)
class Interval:
    """The condition was true from `start_us` (None: before the window) to `end_us` (None: still)."""

    start_us: int | None
    end_us: int | None


@dataclass(frozen=True, slots=True)
class ConditionLine:
    condition: str
    active: bool
    intervals: tuple[Interval, ...]
    edges: tuple[HistoryEdge, ...]  # the edges inside the window, oldest first
    answer_start_us: int | None  # what TxEventStart with this trigger reason answers for this EVSE
    answer_stop_us: int | None  # TxEventStop's (None for DataSigned: not a stop point)


def utc_times(snapshot: dict[str, Any], state: dict[str, Any], offset_us: int) -> tuple[int | None, int | None]:
    """(rise, fall) of one condition of an `EdgeStore.snapshot()` in UTC: its times are host monotonic
    (version 2, unless fixed to UTC in an earlier host boot: core/host_time) and `offset_us` is the
    realtime-minus-monotonic offset to add (edges.json records the one of its last save)."""
    monotonic = snapshot.get("version") != 1

    def utc(key: str) -> int | None:
        value = state.get(f"{key}_us")
        if value is None:
            return None
        shift = monotonic and state.get(f"{key}_basis", Basis.MONOTONIC.value) == Basis.MONOTONIC.value
        return int(value) + (offset_us if shift else 0)
    return utc("rise"), utc("fall")


def edges_from_snapshot(snapshot: dict[str, Any], evse_id: int,
                        offset_us: int = 0) -> tuple[dict[str, dict[str, Any]], list[HistoryEdge]]:
    """(the conditions' states, their last rise and fall as edges, in UTC: `utc_times`) for one EVSE of
    an `EdgeStore.snapshot()` (edges.json's `edges`); an EVSE it does not know: ({}, [])."""
    states = (snapshot.get("evses") or {}).get(str(evse_id)) or {}
    edges = []
    for name, state in states.items():
        rise, fall = utc_times(snapshot, state, offset_us)
        if rise is not None:
            edges.append(HistoryEdge(evse_id, name, True, rise))
        if fall is not None:
            edges.append(HistoryEdge(evse_id, name, False, fall))
    return states, edges


def _answers(snapshot: dict[str, Any], state: dict[str, Any], condition: Condition,
             offset_us: int) -> tuple[int | None, int | None]:
    """The same rule as EdgeStore.lookup for one EVSE: the last rise; the fall that ended it."""
    rise, fall = utc_times(snapshot, state, offset_us)
    stop = fall if rise is not None and fall is not None and fall >= rise else None
    return rise, None if condition in START_ONLY else stop


def timeline(evse_id: int, since_us: int, until_us: int, history: list[HistoryEdge],
             snapshot: dict[str, Any], offset_us: int = 0) -> list[ConditionLine]:
    """The six trigger reasons' lines for one EVSE over [since_us, until_us].

    `history` are the journal's edges (any EVSE, any order; duplicates allowed). A condition's
    state before the window is inferred: true if its first edge inside the window falls, or, with
    no edge inside, its current state (nothing changed within the window, so it held throughout).
    """
    states, latest = edges_from_snapshot(snapshot, evse_id, offset_us)
    unique = {(e.condition, e.rising, e.time_us): e for e in [*history, *latest] if e.evse_id == evse_id}
    lines = []
    for condition in TRIGGER_REASONS:
        name = condition.value
        state = states.get(name) or {}
        ordered = sorted((e for (c, _, _), e in unique.items() if c == name), key=lambda e: (e.time_us, e.rising))
        inside = [e for e in ordered if since_us <= e.time_us <= until_us]
        before = [e for e in ordered if e.time_us < since_us]
        if before:
            active_at_start = before[-1].rising
        elif inside:
            active_at_start = not inside[0].rising
        else:
            active_at_start = bool(state.get("active"))
        intervals: list[Interval] = []
        start: int | None = None
        active = active_at_start
        for edge in inside:
            if edge.rising and not active:
                start, active = edge.time_us, True
            elif not edge.rising and active:
                intervals.append(Interval(start, edge.time_us))
                start, active = None, False
        if active:
            intervals.append(Interval(start, None))
        answer_start, answer_stop = _answers(snapshot, state, condition, offset_us)
        lines.append(ConditionLine(name, bool(state.get("active", active)), tuple(intervals), tuple(inside),
                                   answer_start, answer_stop))
    return lines


def event_type(edge: HistoryEdge) -> str:
    return str((EventType.START if edge.rising else EventType.STOP).value)
