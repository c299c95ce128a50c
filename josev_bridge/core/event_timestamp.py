"""The get_event_timestamp rule: from a question and the edge store to an answer or a reasoned silence.

Pure: the caller passes the flag values and the current time, so every branch is unit-testable.
"""

from __future__ import annotations

from dataclasses import dataclass

from .conditions import START_ONLY, Condition, EventType
from .edge_store import EdgeStore, Found, Miss, Untimed
from .host_time import Basis
from .timestamps import format_us


@dataclass(slots=True)  # answer path: not frozen (docs/architecture.md)
class Query:
    event_type: EventType
    condition: Condition
    evse_id: int | None = None


@dataclass(slots=True)  # answer path: not frozen (docs/architecture.md)
class Answer:
    timestamp: str  # RFC 3339, UTC, Z, milliseconds truncated
    evse_id: int | None  # the EVSE whose edge answered; None for a current-time fallback
    from_hardware: bool  # False only for the opt-in current-time fallback
    error_us: int | None = None  # the clock mapping's bound on the hardware time's error (None: unknown)
    note: str | None = None  # what the journal row adds: continuity assumed across a reboot, an inferred time
    basis: Basis = Basis.MONOTONIC  # UTC from the host's offset now, or fixed in an earlier host boot


@dataclass(slots=True)  # answer path: not frozen (docs/architecture.md)
class Silence:
    """No reply is sent. `reason` is the journal's string response; `detail` is the log line;
    `cause` is the short why, for the journal row's note (a NotSupported has three causes)."""

    reason: str
    detail: str
    cause: str


DISABLED = "NotSupported"
FLAG_OFF = "JOSEV_CTRLR.EnableGetEventTimestampRequest is false"


def answer(query: Query, store: EdgeStore, *, enabled: bool, supported: frozenset[Condition],
           reply_with_current_time_when_unknown: bool, now_us: int, offset_us: int = 0,
           offset_error_us: int = 0) -> Answer | Silence:
    """Decide what to send for one get_event_timestamp request.

    `offset_us` is the host's realtime-minus-monotonic offset now, within `offset_error_us`: an edge
    of this host boot is answered with its monotonic time plus it, and its bound includes that error.
    """
    if not enabled:
        return Silence(Miss.NOT_SUPPORTED.value, f"get_event_timestamp {_what(query)} asked while "
                       "JOSEV_CTRLR.EnableGetEventTimestampRequest is false; not answering", FLAG_OFF)
    if query.condition not in supported:
        return Silence(Miss.NOT_SUPPORTED.value,
                       f"get_event_timestamp {_what(query)}: this hardware cannot time {query.condition.value}",
                       f"trigger reason {query.condition.value} not in EventTimestampTriggerReasonsSupported")
    if query.event_type is EventType.STOP and query.condition in START_ONLY:
        return Silence(Miss.NOT_SUPPORTED.value,
                       f"get_event_timestamp {_what(query)}: {query.condition.value} has no stop event",
                       f"{query.condition.value} has no stop event")
    found = store.lookup(query.event_type, query.condition, query.evse_id, offset_us)
    if isinstance(found, Found):
        error_us = found.error_us
        if error_us is not None and found.basis is Basis.MONOTONIC:
            error_us += offset_error_us
        return Answer(format_us(found.time_us), found.evse_id, True, error_us, found.note, found.basis)
    if reply_with_current_time_when_unknown:
        return Answer(format_us(now_us), None, False)
    if isinstance(found, Untimed):  # the edge happened; its time is not known, and is not invented
        return Silence(Miss.NO_EVENT_RECORDED.value,
                       f"get_event_timestamp {_what(query)}: EVSE {found.evse_id}: {found.note}; not answering",
                       f"EVSE {found.evse_id} {_what(query)}: {found.note}")
    return Silence(Miss.NO_EVENT_RECORDED.value,
                   f"get_event_timestamp {_what(query)}: no such edge recorded by the MCU; not answering",
                   f"no {_what(query)} edge recorded by the MCU")


def _what(query: Query) -> str:
    """The question, for a log line (built only when one is written: an answer is the hot path)."""
    on = f" on EVSE {query.evse_id}" if query.evse_id is not None else ""
    return f"{query.event_type.value}/{query.condition.value}{on}"
