"""Answers get_event_timestamp on cs/ocpp: device-model gate, edge lookup, response validation.

Runs in the MQTT network thread, so it must be quick and must not block: a dict lookup under a
short lock, a cached device-model read, one schema validation, one non-blocking publish.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Callable

from . import schemas
from .adapters.device_model_store import DeviceModelStore
from .config import Config
from .core.conditions import TRIGGER_REASONS, Condition, EventType
from .core.device_model import as_bool
from .core.event_timestamp import Answer, Query, answer
from .mcu_ingest import McuIngest
from .messages import Message, ReplyCache, encode_response

log = logging.getLogger("josev_bridge.get_event_timestamp")

NAME = "get_event_timestamp"
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
        self._supported_cache: tuple[str | None, frozenset[Condition]] = (None, frozenset(TRIGGER_REASONS))
        self.answered = 0
        self.silent = 0

    def reconfigure(self, config: Config) -> None:
        self._config = config

    def enabled(self) -> bool:
        value = self._dm.get(*FLAG)
        return as_bool(value.value if value else None)

    def supported(self) -> frozenset[Condition]:
        """The trigger reasons this hardware can time (all six when the variable is not defined)."""
        if SUPPORTED not in self._dm.definitions:
            return frozenset(TRIGGER_REASONS)
        stored = self._dm.get(*SUPPORTED)
        text = stored.value if stored else ""
        if text != self._supported_cache[0]:
            self._supported_cache = (text, frozenset(Condition(v) for v in text.split(",") if v))
        return self._supported_cache[1]

    def handle(self, message: Message) -> None:
        topic = self._config.mqtt.response_topic
        cached = self._replies.get(message.id)
        if cached is not None:
            log.info("request %s seen again (QoS 1 redelivery); repeating the same answer", message.id)
            self._publish(topic, cached)
            return
        data = message.data
        query = Query(EventType(data["event_type"]), Condition(data["trigger_reason"]), data.get("evse_id"))
        enabled, supported = self.enabled(), self.supported()  # device model read outside the edge lock
        with self._ingest.lock:
            result = answer(query, self._ingest.store, enabled=enabled, supported=supported,
                            reply_with_current_time_when_unknown=
                            self._config.get_event_timestamp.reply_with_current_time_when_unknown,
                            now_us=self._clock_us())
        if not isinstance(result, Answer):
            self.silent += 1
            log.warning("request %s: %s", message.id, result.detail)
            return
        payload = encode_response(message, {"timestamp": result.timestamp})
        if not self._response_validator.is_valid(json.loads(payload)):
            raise ResponseInvalid(f"response to {message.id} fails its schema: {payload!r}")
        self._replies.put(message.id, payload)
        self._publish(topic, payload)
        self.answered += 1
        if not result.from_hardware:
            log.warning("request %s: no %s/%s edge recorded; answered with the current time as configured",
                        message.id, query.event_type.value, query.condition.value)
        else:
            log.debug("request %s: %s/%s -> %s (EVSE %s)", message.id, query.event_type.value,
                      query.condition.value, result.timestamp, result.evse_id)
