"""Keeps the bridge's device model in step with Josev: answers set_variable_validate on cs/josev.

Josev (API >= 3.5) asks the CS to validate a value before it sets it. Only variables this bridge
defines are ours; anything else belongs to another CS component on the same bus and is ignored
without a reply. An accepted value is applied at once with source `csms`. A QoS 1 redelivery gets
the router's cached answer, so it makes no second change in the audit trail.
"""

from __future__ import annotations

import logging
import sqlite3

from ..adapters.device_model_store import DeviceModelStore
from ..core.device_model import DeviceModelError, Source
from ..core.journal_entry import NoAnswer
from ..messages import Message, Outcome

log = logging.getLogger("josev_bridge.device_model_sync")

NAME = "set_variable_validate"


class DeviceModelSync:
    """Decides set_variable_validate answers; the router sends them (messages.Router)."""

    def __init__(self, store: DeviceModelStore) -> None:
        self._store = store

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
            return Outcome(no_answer=NoAnswer.IGNORED.value, note="a variable this bridge does not define")
        component, variable = data["component"]["name"], data["variable"]["name"]
        try:
            change = self._store.set(component, variable, data["attribute_value"], source=Source.CSMS, user="csms",
                                     attribute=data.get("attribute_type", "Actual"))
        except DeviceModelError as exc:
            log.warning("set_variable_validate %s: rejected: %s", message.id, exc)
            return Outcome({"result": "rejected"}, note=str(exc))
        except (sqlite3.Error, OSError) as exc:  # a full or read-only disk: not applied, so not accepted
            log.error("set_variable_validate %s: rejected: cannot store %s.%s in %s: %s", message.id, component,
                      variable, self._store.path, exc)
            return Outcome({"result": "rejected"}, note=f"not stored: {exc}")
        log.info("set_variable_validate %s: %s.%s = %r accepted and applied (was %r)", message.id,
                 component, variable, change.new_value, change.old_value)
        return Outcome({"result": "accepted"})
