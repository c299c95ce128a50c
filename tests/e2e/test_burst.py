"""A burst of requests with no window on the requester's side: backpressure through the broker, no loss.

The bridge acknowledges a request only once the broker acknowledged its answer, and lets the broker
have at most half its outgoing queue of requests in flight (MQTT 5 Receive Maximum; on 3.1.1 the
broker's max_inflight_messages), so the broker holds the rest of a burst and every answer fits.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from josev_bridge.adapters.journal_store import JournalStore
from josev_bridge.core.journal_entry import NoAnswer
from josev_bridge.harness.waiting import wait_until

QUESTION = {"event_type": "TxEventStart", "trigger_reason": "EVConnected"}
MEMORY_MAX_KIB = 128 * 1024  # the unit's MemoryMax


class Requester:
    """Publishes as fast as paho can (no in-flight window), counts every response by id."""

    def __init__(self, port: int) -> None:
        self.answers: Counter[str] = Counter()
        self.bodies: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=f"burst-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(0)  # no window: everything goes out back to back
        self.client.max_queued_messages_set(0)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("cs/ocpp", qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._subscribed.wait(10)

    def _on_message(self, client, userdata, message) -> None:
        body = json.loads(message.payload)
        with self._lock:
            self.answers[body["id"]] += 1
            self.bodies[body["id"]] = body

    def burst(self, n: int) -> list[str]:
        ids = [str(uuid.uuid4()) for _ in range(n)]
        for msg_id in ids:
            self.client.publish("ocpp/cs", json.dumps({"id": msg_id, "name": "get_event_timestamp",
                                                       "type": "request", "data": QUESTION}), qos=1)
        return ids

    def wait_answered(self, ids: list[str], timeout: float) -> None:
        wait_until(lambda: all(self.answers[i] for i in ids), timeout, f"answers to {len(ids)} requests")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def journal_responses(bridge, ids: list[str]) -> dict[str, object]:
    store = JournalStore(bridge.workdir / "state" / "journal.sqlite", readonly=True)
    try:
        wanted = set(ids)
        found: dict[str, object] = {}
        last = 0
        while batch := store.after_id(last, 5000):
            last = batch[-1].id
            found.update((s.entry.correlation_id, s.entry.response) for s in batch
                         if s.entry.correlation_id in wanted)
        return found
    finally:
        store.close()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_5000_requests_back_to_back_are_each_answered_exactly_once(broker, sim, make_bridge, protocol):
    bridge = make_bridge(mqtt={"protocol": protocol}, logging={"level": "INFO"})
    bridge.start()
    status, body = sim.command("plug-connector")
    bridge.wait_log("EVConnected TxEventStart")
    expected = body["edges"][0]["timestamp"]
    requester = Requester(broker.port)
    try:
        ids = requester.burst(5000)
        requester.wait_answered(ids, timeout=120)
        last = requester.burst(1)  # answers come in order: once this one is here, no duplicate is on its way
        requester.wait_answered(last, timeout=30)
        assert sum(requester.answers.values()) == 5001 and set(requester.answers.values()) == {1}
        assert all(requester.bodies[i]["data"] == {"timestamp": expected} for i in ids)
    finally:
        requester.close()
    assert bridge.peak_rss_kib() < MEMORY_MAX_KIB // 2
    rows = wait_until(lambda: (r := journal_responses(bridge, ids)) and len(r) == len(ids) and r, 10,
                      "a journal row for every request")
    assert all(response == {"timestamp": expected} for response in rows.values())  # answered, and said so


def test_answers_the_link_cannot_queue_are_journaled_as_not_sent(broker, sim, make_bridge):
    """3.1.1 has no Receive Maximum: with the broker's window (1000) far above a tiny outgoing queue,
    some answers cannot be queued. Each row must then say NotSent, and only the sent ones answered."""
    bridge = make_bridge(mqtt={"protocol": "3.1.1", "max_queued_messages": 4}, logging={"level": "INFO"})
    bridge.start()
    status, body = sim.command("plug-connector")
    bridge.wait_log("EVConnected TxEventStart")
    requester = Requester(broker.port)
    try:
        ids = requester.burst(500)
        rows = wait_until(lambda: (r := journal_responses(bridge, ids)) and len(r) == len(ids) and r, 60,
                          "a journal row for every request")
        last = requester.burst(1)
        requester.wait_answered(last, timeout=30)
    finally:
        requester.close()
    not_sent = {i for i, response in rows.items() if response is NoAnswer.NOT_SENT}
    answered = {i for i, response in rows.items() if isinstance(response, dict)}
    assert not_sent, "the queue of 4 never overflowed: the test proves nothing"
    assert answered | not_sent == set(ids)
    assert {i for i in ids if requester.answers[i]} == answered  # a row says answered exactly when it was
