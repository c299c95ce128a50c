"""Keeps the bridge's device model in step with Josev: answers set_variable_validate on cs/josev.

Josev (API >= 3.5) asks the CS to validate a value before it sets it. Only variables this bridge
defines are ours; anything else belongs to another CS component on the same bus and is ignored
without a reply. An accepted value is applied at once with source `csms`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import Callable

from . import schemas
from .adapters.device_model_store import DeviceModelStore
from .core.device_model import DeviceModelError, Source
from .core.journal_entry import NoAnswer
from .messages import Message, Outcome, ReplyCache, encode_response

log = logging.getLogger("josev_bridge.device_model_sync")

NAME = "set_variable_validate"


class DeviceModelSync:
    def __init__(self, store: DeviceModelStore, publish: Callable[[str, bytes], bool], response_topic: str) -> None:
        self._store = store
        self._publish = publish
        self._topic = response_topic
        self._replies = ReplyCache(1024)
        self._validator = schemas.validator("set_variable_validate.response")

    def owns(self, data: dict) -> bool:
        component, variable = data["component"], data["variable"]
        station_level = not any(k in component for k in ("instance", "evse_id", "connector_id"))
        return station_level and "instance" not in variable and \
            (component["name"], variable["name"]) in self._store.definitions

    def handle(self, message: Message) -> Outcome:
        data = message.data
        if not self.owns(data):
            log.debug("set_variable_validate %s for %s.%s: not ours, ignored", message.id,
                      data["component"]["name"], data["variable"]["name"])
            return Outcome(no_answer=NoAnswer.IGNORED.value)
        cached = self._replies.get(message.id)
        if cached is not None:  # a QoS 1 redelivery: same answer, no second change in the audit trail
            self._publish(self._topic, cached)
            return Outcome(json.loads(cached)["data"])
        component, variable = data["component"]["name"], data["variable"]["name"]
        try:
            change = self._store.set(component, variable, data["attribute_value"], source=Source.CSMS, user="csms",
                                     attribute=data.get("attribute_type", "Actual"))
            result = "accepted"
            log.info("set_variable_validate %s: %s.%s = %r accepted and applied (was %r)", message.id,
                     component, variable, change.new_value, change.old_value)
        except DeviceModelError as exc:
            result = "rejected"
            log.warning("set_variable_validate %s: rejected: %s", message.id, exc)
        except (sqlite3.Error, OSError) as exc:  # a full or read-only disk: not applied, so not accepted
            result = "rejected"
            log.error("set_variable_validate %s: rejected: cannot store %s.%s in %s: %s", message.id, component,
                      variable, self._store.path, exc)
        payload = encode_response(message, {"result": result})
        if not self._validator.is_valid(json.loads(payload)):
            raise RuntimeError(f"set_variable_validate response fails its schema: {payload!r}")
        self._replies.put(message.id, payload)
        self._publish(self._topic, payload)
        return Outcome({"result": result})
