"""Answers get_event_timestamp on cs/ocpp: device-model gate, edge lookup, response validation.

Runs in the MQTT network thread, so it must be quick and must not block: a dict lookup under a
short lock, a cached device-model read, one schema validation, one non-blocking publish.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Callable

from . import schemas
from .adapters.device_model_store import DeviceModelStore
from .config import Config
from .core.conditions import TRIGGER_REASONS, Condition, EventType
from .core.device_model import as_bool
from .core.event_timestamp import Answer, Query, answer
from .mcu_ingest import McuIngest
from .messages import Message, Outcome, ReplyCache, encode_response

log = logging.getLogger("josev_bridge.get_event_timestamp")

NAME = "get_event_timestamp"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_EVENT_TYPES = {e.value: e for e in EventType}  # dict lookups: calling an Enum by value costs ~0.6 us
_REASONS = {c.value: c for c in TRIGGER_REASONS}
VALIDATED_TIMESTAMPS = 4096


def certainly_valid_request(obj: dict) -> bool:
    """The common, well-formed request in ~4 us instead of the schema's ~150 us.

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
    """The response envelope, by formatting when the id is a canonical UUID (the usual case: 0.3 us
    instead of the encoder's 1.5). Both the id and the timestamp (format_us: digits, '-', ':', 'T',
    '.', 'Z') then hold nothing JSON would escape; a test holds it equal to encode_response."""
    if _UUID.match(request.id):
        return _RESPONSE % (request.id.encode(), timestamp.encode())
    return encode_response(request, {"timestamp": timestamp})


_RESPONSE = b'{"id":"%s","name":"' + NAME.encode() + b'","type":"response","data":{"timestamp":"%s"}}'
FLAG = ("JOSEV_CTRLR", "EnableGetEventTimestampRequest")
SUPPORTED = ("JOSEV_CTRLR", "EventTimestampTriggerReasonsSupported")


class ResponseInvalid(RuntimeError):
    """We built a response our own schema rejects: a bug, never sent."""


class EventTimestampService:
    def __init__(self, config: Config, ingest: McuIngest, device_model: DeviceModelStore,
                 publish: Callable[[str, bytes], bool], clock_us: Callable[[], int] | None = None) -> None:
        self._config = config
        self._ingest = ingest
        self._dm = device_model
        self._publish = publish
        self._clock_us = clock_us or (lambda: time.time_ns() // 1000)
        self._replies = ReplyCache()
        self._response_validator = schemas.validator("get_event_timestamp.response")
        self._validated: set[str] = set()
        self._settings_cache: tuple[int, tuple[bool, frozenset[Condition]]] = (-1, (False, frozenset()))
        self.answered = 0
        self.silent = 0

    def _check_response(self, timestamp: str, payload: bytes) -> None:
        """Validate the outgoing response with its schema, once per distinct timestamp.

        The rest of a response is the request's id (already checked against the same uuid format)
        and two constants, so a timestamp that passed once passes again; this keeps the schema
        check on every answer's content without paying ~150 us on each repeat.
        """
        if timestamp in self._validated:
            return
        if not self._response_validator.is_valid(json.loads(payload)):
            raise ResponseInvalid(f"response fails its schema: {payload!r}")
        if len(self._validated) >= VALIDATED_TIMESTAMPS:
            self._validated.clear()
        self._validated.add(timestamp)

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
        topic = self._config.mqtt.response_topic
        cached = self._replies.get(message.id)
        if cached is not None:
            log.info("request %s seen again (QoS 1 redelivery); repeating the same answer", message.id)
            self._publish(topic, cached)
            return Outcome(json.loads(cached)["data"])
        data = message.data
        query = Query(_EVENT_TYPES[data["event_type"]], _REASONS[data["trigger_reason"]], data.get("evse_id"))
        enabled, supported = self._settings()  # device model read outside the edge lock
        with self._ingest.lock:
            result = answer(query, self._ingest.store, enabled=enabled, supported=supported,
                            reply_with_current_time_when_unknown=
                            self._config.get_event_timestamp.reply_with_current_time_when_unknown,
                            now_us=self._clock_us())
        if not isinstance(result, Answer):
            self.silent += 1
            log.warning("request %s: %s", message.id, result.detail)
            return Outcome(no_answer=result.reason)
        payload = response_bytes(message, result.timestamp)
        self._check_response(result.timestamp, payload)
        self._replies.put(message.id, payload)
        self._publish(topic, payload)
        self.answered += 1
        if not result.from_hardware:
            log.warning("request %s: no %s/%s edge recorded; answered with the current time as configured",
                        message.id, query.event_type.value, query.condition.value)
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("request %s: %s/%s -> %s (EVSE %s)", message.id, query.event_type.value,
                      query.condition.value, result.timestamp, result.evse_id)
        return Outcome({"timestamp": result.timestamp})
