"""Decides get_event_timestamp answers: device-model gate, edge lookup, the answer rule.

Runs in the MQTT network thread, so it must be quick and must not block: a dict lookup under a
short lock and a cached device-model read. The router (messages.py) encodes, checks and sends.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from ..adapters.device_model_store import DeviceModelStore
from ..config import Config
from ..core.conditions import TRIGGER_REASONS, Condition, EventType
from ..core.device_model import as_bool
from ..core.event_timestamp import Answer, Query
from ..core.host_time import Basis, clock_note
from ..messages import Message, Outcome, encode_response
from .mcu_ingest import McuIngest

log = logging.getLogger("josev_bridge.get_event_timestamp")

NAME = "get_event_timestamp"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_EVENT_TYPES = {e.value: e for e in EventType}  # dict lookups: calling an Enum by value is slower
_REASONS = {c.value: c for c in TRIGGER_REASONS}


def certainly_valid_request(obj: dict) -> bool:
    """The common, well-formed request, checked in a fraction of the time jsonschema takes.

    True only for what schemas/get_event_timestamp.request.schema.json certainly accepts (a
    canonical UUID, the constants, the enums, an int evse_id in range); anything unusual (a float
    evse_id, a braced UUID, ...) returns False and the full validator decides.
    """
    data = obj.get("data")
    msg_id = obj.get("id")
    if type(data) is not dict or type(msg_id) is not str or not _UUID.match(msg_id):
        return False
    if obj.get("name") != NAME or obj.get("type") != "request":
        return False
    event_type, reason = data.get("event_type"), data.get("trigger_reason")
    if type(event_type) is not str or event_type not in _EVENT_TYPES or type(reason) is not str \
            or reason not in _REASONS:
        return False
    if "evse_id" in data:
        evse_id = data["evse_id"]
        return type(evse_id) is int and 1 <= evse_id <= 255
    return True


def response_bytes(request: Message, timestamp: str) -> bytes:
    """The response envelope, by formatting when the id is a canonical UUID (the usual case: a
    fraction of the encoder's time). Both the id and the timestamp (format_us: digits, '-', ':', 'T',
    '.', 'Z') then hold nothing JSON would escape; a test holds it equal to encode_response."""
    if _UUID.match(request.id):
        return _RESPONSE % (request.id.encode(), timestamp.encode())
    return encode_response(request, {"timestamp": timestamp})


_RESPONSE = b'{"id":"%s","name":"' + NAME.encode() + b'","type":"response","data":{"timestamp":"%s"}}'
FLAG = ("JOSEV_CTRLR", "EnableGetEventTimestampRequest")
SUPPORTED = ("JOSEV_CTRLR", "EventTimestampTriggerReasonsSupported")


def encode(request: Message, data: dict) -> bytes:
    """The router's encoder for this route: the formatted envelope for the one-key answer."""
    return response_bytes(request, data["timestamp"])


FALLBACK_NOTE = "not a hardware time: the board's current time (reply_with_current_time_when_unknown)"


class EventTimestampService:
    """Decides the answer; the router sends it (messages.Router owns the reply path)."""

    def __init__(self, config: Config, ingest: McuIngest, device_model: DeviceModelStore,
                 clock_us: Callable[[], int] | None = None) -> None:
        self._config = config
        self._ingest = ingest
        self._dm = device_model
        self._clock_us = clock_us or (lambda: time.time_ns() // 1000)
        self._settings_cache: tuple[int, tuple[bool, frozenset[Condition]]] = (-1, (False, frozenset()))

    def reconfigure(self, config: Config) -> None:
        self._config = config

    def enabled(self) -> bool:
        return self._settings()[0]

    def supported(self) -> frozenset[Condition]:
        """The trigger reasons this hardware can time (all six when the variable is not defined)."""
        return self._settings()[1]

    def _settings(self) -> tuple[bool, frozenset[Condition]]:
        """Both device-model settings, re-derived only when the store's generation moved."""
        generation = self._dm.generation()
        if generation != self._settings_cache[0]:
            flag = self._dm.get(*FLAG)
            if SUPPORTED in self._dm.definitions:
                stored = self._dm.get(*SUPPORTED)
                supported = frozenset(Condition(v) for v in (stored.value if stored else "").split(",") if v)
            else:
                supported = frozenset(TRIGGER_REASONS)
            self._settings_cache = (generation, (as_bool(flag.value if flag else None), supported))
        return self._settings_cache[1]

    def handle(self, message: Message) -> Outcome:
        data = message.data
        query = Query(_EVENT_TYPES[data["event_type"]], _REASONS[data["trigger_reason"]], data.get("evse_id"))
        enabled, supported = self._settings()  # device model read outside the edge lock
        result = self._ingest.lookup(query, enabled=enabled, supported=supported,
                                     reply_with_current_time_when_unknown=
                                     self._config.get_event_timestamp.reply_with_current_time_when_unknown,
                                     clock_us=self._clock_us)
        if not isinstance(result, Answer):
            log.warning("request %s: %s", message.id, result.detail)
            return Outcome(no_answer=result.reason, note=result.cause)
        if not result.from_hardware:
            log.warning("request %s: no %s/%s edge recorded; answered with the current time as configured",
                        message.id, query.event_type.value, query.condition.value)
            return Outcome({"timestamp": result.timestamp}, note=FALLBACK_NOTE)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("request %s: %s/%s -> %s (EVSE %s)", message.id, query.event_type.value,
                      query.condition.value, result.timestamp, result.evse_id)
        return Outcome({"timestamp": result.timestamp},
                       note=bound_note(result.error_us, result.note, result.basis,
                                       self._ingest.host_clock.synchronised))


def bound_note(error_us: int | None, edge_note: str | None = None, basis: Basis = Basis.MONOTONIC,
               synchronised: bool | None = True) -> str:
    """The journal row's statement of how true the answer is: the clock mapping's error bound for this
    answer (the edge's, plus the error of the host offset it was converted with); when the board's
    clock was not known to be synchronised, that too (README, "The board's clock"); and what else is
    known of the edge (continuity assumed across an MCU reboot, an inferred time)."""
    if error_us is None:
        note = "MCU time; mapping error bound not recorded (edge stored by an older version)"
    else:
        note = f"MCU time, mapping error bound {error_us / 1000:.3f} ms"
    note += clock_note(basis, synchronised)
    return f"{note}; {edge_note}" if edge_note else note
