import pytest

from josev_bridge.core.alert_recipients import (
    Recipient,
    RecipientError,
    RecipientKind,
    default_recipients,
    parse_recipients,
)
from josev_bridge.core.alerts import Alert, AlertType, OfflineDetails


def test_defaults_are_the_three_kinds():
    kinds = [(r.id, r.kind, r.topic) for r in default_recipients("CP-1")]
    assert kinds == [(1, RecipientKind.MQTT, "josev-bridge/CP-1/alerts"), (2, RecipientKind.NOTIFY_EVENT, None),
                     (3, RecipientKind.SYSTEM_JOURNAL, None)]


def test_parse_with_types_and_default_topic():
    (r,) = parse_recipients([{"id": 7, "kind": "mqtt", "types": ["offlineCharger"], "name": "ops"}], "CP-1")
    assert r == Recipient(7, RecipientKind.MQTT, "josev-bridge/CP-1/alerts", frozenset({AlertType.OFFLINE_CHARGER}),
                          "ops")
    offline = Alert(AlertType.OFFLINE_CHARGER, None, None, 0, OfflineDetails(5))
    assert r.wants(offline)


@pytest.mark.parametrize("items,key", [
    ([{"id": 0, "kind": "mqtt"}], "id"), ([{"id": True, "kind": "mqtt"}], "id"),
    ([{"id": 1, "kind": "email"}], "kind"), ([{"id": 1, "kind": "notify_event", "topic": "x"}], "topic"),
    ([{"id": 1, "kind": "mqtt", "topic": "a/#"}], "topic"), ([{"id": 1, "kind": "mqtt", "types": ["nope"]}], "types"),
    ([{"id": 1, "kind": "mqtt", "colour": 1}], "colour"),
    ([{"id": 1, "kind": "mqtt"}, {"id": 1, "kind": "mqtt"}], "id"),
])
def test_errors_name_the_key(items, key):
    with pytest.raises(RecipientError, match=rf"\] {key}"):
        parse_recipients(items, "CP-1")
