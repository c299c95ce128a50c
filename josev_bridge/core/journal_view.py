"""A journal row in a few words, for an 80-column table (`josev-bridge messages`). Pure.

The default table has one column for what happened (`what`), with the part a technician looks
for first: the question and its answer or why none was sent; a device-model change's old -> new;
the MCU link's state. When the column has to be cut, the end goes, so these come first.
"""

from __future__ import annotations

import json

from .journal_entry import DEVICE_MODEL_CHANGE, MCU_LINK, JournalEntry, NoAnswer
from .timestamps import format_us

#: The message types the bridge journals: the Josev messages it answers or sends, its own events,
#: and `unknown` (a message without a usable name). Messages for other services on the shared
#: topic are journaled under their own name too; `messages --type` accepts any name the journal holds.
MESSAGE_TYPES = ("get_event_timestamp", "set_variable_validate", "notify_event", DEVICE_MODEL_CHANGE, MCU_LINK,
                 "unknown")

# Why the bridge stayed silent, in a few words, from the row's note (core/event_timestamp's causes).
_SHORT_CAUSES = (("EnableGetEventTimestampRequest is false", "flag off"),
                 ("not in EventTimestampTriggerReasonsSupported", "reason not supported"),
                 ("has no stop event", "no stop event"))


def what(entry: JournalEntry) -> str:
    """The row in words: `TxEventStart/EVConnected -> 10:20:30.123Z`, `TxEventStop/DataSigned: silent, no stop
    event`,
    `true -> false JOSEV_CTRLR.EnableGetEventTimestampRequest (local, by alice)`, `link open, boot 0000002a`."""
    payload = entry.payload if isinstance(entry.payload, dict) else {}
    if entry.message_type == DEVICE_MODEL_CHANGE:
        return (f"{payload.get('oldValue')} -> {payload.get('newValue')} "
                f"{payload.get('component')}.{payload.get('variable')} "
                f"({payload.get('source')}, by {payload.get('user')})")
    if entry.message_type == MCU_LINK:
        parts = [f"link {payload.get('state')}"]
        if payload.get("mcuBootId"):
            parts.append(f"boot {payload['mcuBootId']}")
        if payload.get("lostRecords"):
            parts.append(f"{payload['lostRecords']} records LOST")
        if payload.get("changed"):
            parts.append(f"changed: {', '.join(payload['changed'])}")
        return ", ".join(parts)
    question, answer = _question(entry), _answer(entry)
    if not question:
        return answer
    return f"{question}: {answer}" if isinstance(entry.response, NoAnswer) else f"{question} -> {answer}"


def _question(entry: JournalEntry) -> str:
    payload = entry.payload
    if isinstance(payload, dict) and "event_type" in payload:
        on = f" EVSE {payload['evse_id']}" if payload.get("evse_id") is not None else ""
        return f"{payload.get('event_type')}/{payload.get('trigger_reason')}{on}"
    if isinstance(payload, dict) and "component" in payload:  # set_variable_validate
        name = f"{_name(payload.get('component'))}.{_name(payload.get('variable'))}"
        return f"{name} = {payload.get('attribute_value')!r}"
    if payload is None:
        return ""
    return brief(payload, 40)


def _answer(entry: JournalEntry) -> str:
    response = entry.response
    if isinstance(response, NoAnswer):
        return _no_answer(response, entry.note or "")
    if isinstance(response, dict) and set(response) == {"timestamp"}:
        stamp = str(response["timestamp"])
        same_day = stamp[:10] == format_us(entry.created_us)[:10]
        return stamp[11:] if same_day else stamp  # the date is on the row already
    if isinstance(response, dict) and len(response) == 1:  # set_variable_validate's {"status": "accepted"}
        return brief(next(iter(response.values())), 40)
    if response is None:
        return "-"
    return brief(response, 40)


def _no_answer(reason: NoAnswer, note: str) -> str:
    """`silent, flag off`, `silent, no edge recorded`, `invalid: <why>`: the API's NoAnswer in words."""
    if reason is NoAnswer.NO_EVENT_RECORDED:
        return "silent, no edge recorded"
    if reason is NoAnswer.NOT_SUPPORTED:
        return "silent, " + next((short for needle, short in _SHORT_CAUSES if needle in note), "not supported")
    if reason is NoAnswer.IGNORED:
        return "ignored (for another service)"
    if reason is NoAnswer.NOT_SENT:
        return f"NOT SENT: {note}" if note else "NOT SENT"
    return f"invalid: {note}" if note else "invalid"


def _name(value: object) -> object:
    """A component or variable as Josev sends it: a name, or an object with a `name`."""
    return value.get("name") if isinstance(value, dict) else value


def brief(value: object, width: int = 60) -> str:
    """Compact JSON of a payload, cut to `width` with an ellipsis."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= width else text[:width - 1] + "…"


def day_of(time_us: int) -> str:
    """`2026-02-17`: the date line a table prints when the day changes (rows then show the time only)."""
    return format_us(time_us)[:10]


def time_of_day(time_us: int, ms: bool = False) -> str:
    """`10:20:30` (UTC), or `10:20:30.412`."""
    return format_us(time_us)[11:23 if ms else 19]
