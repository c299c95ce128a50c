"""RequestClient's message callback, without a broker: what arrives on the response topic is not trusted."""

from __future__ import annotations

import json
import threading

import paho.mqtt.client as mqtt
import pytest

from josev_bridge.request_client import RequestClient


def _client_waiting_for(msg_id: str) -> tuple[RequestClient, threading.Event, list]:
    client = RequestClient.__new__(RequestClient)  # the callback alone: no connection
    event, box = threading.Event(), []
    client._pending = {msg_id: (event, box)}
    return client, event, box


def _message(payload: object) -> mqtt.MQTTMessage:
    message = mqtt.MQTTMessage(topic=b"cs/ocpp")
    message.payload = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return message


@pytest.mark.parametrize("bad", [
    b"not json", [1, 2], {"id": ["a"], "type": "response"}, {"id": {"a": 1}, "type": "response"},
    {"id": 7, "type": "response"}, {"id": "other", "type": "response"}, {"id": "wanted", "type": "request"},
])
def test_a_reply_that_is_not_ours_is_ignored_without_raising(bad):
    """An exception in on_message would end paho's network thread, and with it every later reply."""
    client, event, box = _client_waiting_for("wanted")
    client._on_message(None, None, _message(bad))
    assert not event.is_set() and box == []


def test_our_reply_is_delivered():
    client, event, box = _client_waiting_for("wanted")
    client._on_message(None, None, _message({"id": "wanted", "type": "response", "name": "x", "data": {}}))
    assert event.is_set() and box[0][1]["id"] == "wanted"
