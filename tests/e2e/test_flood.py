"""A flood of large messages faster than the journal writer: memory stays bounded by bytes.

The issue's full case (800 messages/s of 60 KB for 25 s) is `bench/overload.py`; this is the same
flood, shorter and unpaced, through the real broker and daemon.
"""

from __future__ import annotations

import json
import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from josev_bridge.config import MqttConfig
from josev_bridge.harness.waiting import wait_until
from josev_bridge.request_client import RequestClient

MEMORY_MAX_KIB = 128 * 1024  # the unit's MemoryMax
MESSAGES = 3000
PAYLOAD = 60_000


def flood(port: int, count: int, size: int) -> None:
    """`count` messages of `size` bytes that another service would handle (journaled, not answered)."""
    done = threading.Event()
    acked = [0]

    def on_publish(client, userdata, mid, reason_code, properties):
        acked[0] += 1
        if acked[0] == count:
            done.set()

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"flood-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    filler = "x" * (size - 120)
    try:
        for i in range(count):
            client.publish("ocpp/cs", json.dumps({"id": str(i), "name": "heartbeat", "type": "request",
                                                  "data": {"blob": filler}}), qos=1)
        assert done.wait(120), f"only {acked[0]} of {count} flood messages reached the broker"
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_flood_of_60_kb_messages_keeps_memory_bounded_and_answers_flowing(broker, sim, make_bridge):
    bridge = make_bridge(logging={"level": "INFO"}, journal={"max_size_mb": 8})  # a small file: the writer
    bridge.start()  # spends its time deleting, as on a board whose journal is full
    status, body = sim.command("plug-connector")
    bridge.wait_log("EVConnected TxEventStart")
    flood(broker.port, MESSAGES, PAYLOAD)
    with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port)) as client:
        reply = client.send("get_event_timestamp", {"event_type": "TxEventStart", "trigger_reason": "EVConnected"},
                            timeout=60)
    assert reply.response["data"] == {"timestamp": body["edges"][0]["timestamp"]}
    # every message becomes a row, or a counted drop (status.json is refreshed every 0.5 s: poll it)
    journal = wait_until(lambda: (j := bridge.status()["journal"]) and j["written"] + j["dropped"] >= MESSAGES
                         and j, 60, "a journal row (or a counted drop) for every message")
    assert journal["payloads_shed"] > 0  # the flood did outrun the writer: the bound was what held it
    peak = bridge.peak_rss_kib()
    assert peak < MEMORY_MAX_KIB * 3 // 4, f"peak RSS {peak} KiB"
