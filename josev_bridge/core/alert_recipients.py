"""Who alerts go to: recipients with ids (the seed's `alertRecipientIds`), parsed from `[[alerts.recipients]]`.

Three kinds: an MQTT topic on the local broker (not retained: an alert is an event, not a state),
a `notify_event` update on `cs/josev` (Josev reports it to the CSMS), and the system journal (a
log line at WARNING, which journald keeps). Pure: parsing and matching only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .alerts import Alert, AlertType


class RecipientKind(str, Enum):
    MQTT = "mqtt"
    NOTIFY_EVENT = "notify_event"
    SYSTEM_JOURNAL = "system_journal"


class RecipientError(ValueError):
    """A bad `[[alerts.recipients]]` entry; the message names the key."""


@dataclass(frozen=True, slots=True)
class Recipient:
    id: int
    kind: RecipientKind
    topic: str | None = None  # MQTT only
    types: frozenset[AlertType] = frozenset()  # empty: every type
    name: str | None = None

    def wants(self, alert: Alert) -> bool:
        return not self.types or alert.type in self.types


def default_recipients(identity: str) -> tuple[Recipient, ...]:
    """With no recipients configured: all three kinds, ids 1..3."""
    return (Recipient(1, RecipientKind.MQTT, default_topic(identity), name="local broker"),
            Recipient(2, RecipientKind.NOTIFY_EVENT, name="CSMS via Josev"),
            Recipient(3, RecipientKind.SYSTEM_JOURNAL, name="system journal"))


def default_topic(identity: str) -> str:
    return f"josev-bridge/{identity}/alerts"


def parse_recipients(items: Sequence[Mapping[str, Any]], identity: str,
                     where: str = "alerts.recipients") -> tuple[Recipient, ...]:
    if not isinstance(items, (list, tuple)):
        raise RecipientError(f"[{where}]: expected a list of tables ([[{where}]])")
    recipients = tuple(_recipient(item, identity, f"{where}[{i}]") for i, item in enumerate(items))
    ids = [r.id for r in recipients]
    if len(ids) != len(set(ids)):
        raise RecipientError(f"[{where}] id: every recipient needs its own id, got {ids}")
    return recipients


def _recipient(item: Mapping[str, Any], identity: str, where: str) -> Recipient:
    if not isinstance(item, Mapping):
        raise RecipientError(f"[{where}]: expected a table")
    known = {"id", "kind", "topic", "types", "name"}
    for key in item:
        if key not in known:
            raise RecipientError(f"[{where}] {key}: unknown key (known: {', '.join(sorted(known))})")
    ident = item.get("id")
    if isinstance(ident, bool) or not isinstance(ident, int) or ident < 1:
        raise RecipientError(f"[{where}] id: a positive integer is required, got {ident!r}")
    try:
        kind = RecipientKind(item.get("kind"))
    except ValueError:
        raise RecipientError(f"[{where}] kind: one of {', '.join(k.value for k in RecipientKind)}, "
                             f"got {item.get('kind')!r}") from None
    topic = item.get("topic")
    if topic is not None and (kind is not RecipientKind.MQTT or not isinstance(topic, str) or not topic
                              or any(c in topic for c in "+#")):
        raise RecipientError(f"[{where}] topic: a plain MQTT topic, and only for kind \"mqtt\", got {topic!r}")
    types = item.get("types", [])
    try:
        parsed = frozenset(AlertType(t) for t in types)
    except (ValueError, TypeError):
        raise RecipientError(f"[{where}] types: alert types ({', '.join(t.value for t in AlertType)}), "
                             f"got {types!r}") from None
    name = item.get("name")
    if name is not None and not isinstance(name, str):
        raise RecipientError(f"[{where}] name: a string, got {name!r}")
    if kind is RecipientKind.MQTT and topic is None:
        topic = default_topic(identity)
    return Recipient(ident, kind, topic, parsed, name)
