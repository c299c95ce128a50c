"""One journal record, and its public shape: a row of Flipturn's `GET /api/ocpp-messages`.

A request and its response share one entry; when no answer was sent, `response` is a plain string
saying why, in the seed's style (`NotSupported`, `NoEventRecorded`, `InvalidMessage`, `Ignored`).
Device-model changes and MCU link events are entries too, told apart by `direction == "event"`
and their own `message_type`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from .timestamps import format_us

PROTOCOL = "ocpp2.0.1"


class Direction(str, Enum):
    IN = "in"  # a message the bridge received (and, in the same row, what it answered)
    OUT = "out"  # a message the bridge sent on its own (no request behind it)
    EVENT = "event"  # not a message: a device-model change or an MCU link event


class NoAnswer(str, Enum):
    """Why a received message got no response (`messageResponse` as a plain string)."""

    NOT_SUPPORTED = "NotSupported"  # feature disabled, or trigger reason not supported by this hardware
    NO_EVENT_RECORDED = "NoEventRecorded"  # no such edge recorded for the EVSE
    INVALID_MESSAGE = "InvalidMessage"  # malformed JSON, not an envelope, schema violation, oversized
    IGNORED = "Ignored"  # a name/type another service on the shared topic handles
    NOT_SENT = "NotSent"  # an answer was computed but the MQTT link did not take it (the note says why)


#: `message_type` of event entries.
DEVICE_MODEL_CHANGE = "device_model_change"
MCU_LINK = "mcu_link"
MCU_EDGE = "mcu_edge"  # a condition edge as applied (created_us: its hardware time): the status page's timeline


@dataclass(slots=True)  # answer path: not frozen (docs/architecture.md)
class JournalEntry:
    created_us: int  # when the bridge received the message (or the event happened), UTC us
    direction: Direction
    message_type: str  # the Josev `name`, or an event type
    topic: str | None = None
    correlation_id: str | None = None  # the message `id`
    payload: Any = None  # the request's `data` (or the raw text, when it was not JSON)
    response: Any = None  # the response's `data`, or a NoAnswer value, or None for events
    latency_us: int | None = None  # receipt to response published
    note: str | None = None  # why a message was invalid or ignored (the log line's detail)


def to_row(row_id: int, entry: JournalEntry, identity: str, charger_id: int) -> dict[str, Any]:
    """The Flipturn row plus our own `direction`, `topic`, `correlationId`, `latencyMs` and `note`."""
    response = entry.response.value if isinstance(entry.response, NoAnswer) else entry.response
    return {
        "id": row_id,
        "createdAt": format_us(entry.created_us),
        "ocppChargerIdentity": identity,
        "messageType": entry.message_type,
        "messagePayload": entry.payload,
        "messageResponse": response,
        "chargerId": charger_id,
        "protocol": PROTOCOL,
        "direction": entry.direction.value,
        "topic": entry.topic,
        "correlationId": entry.correlation_id,
        "latencyMs": None if entry.latency_us is None else round(entry.latency_us / 1000, 3),
        "note": entry.note,
    }
