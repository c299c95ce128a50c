"""Journal export with the real daemon: OCPP client -> board mosquitto -> bridge -> journal -> fleet mosquitto.

The fleet's broker is a second, real mosquitto; the fleet's consumer is a persistent MQTT 5 session
on it, so it misses nothing across that broker's restart and sees rows in order of arrival.
"""

from __future__ import annotations

import json
import os
import signal
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from josev_bridge.config import MqttConfig
from josev_bridge.harness.waiting import wait_until
from josev_bridge.request_client import RequestClient

IDENTITY = "test-charger"  # BridgeProcess's default identity
TOPIC = f"josev-bridge/{IDENTITY}/journal"
SILENCE = 0.5  # seconds a request known to get no answer is waited for


class Fleet:
    """The fleet's consumer of `josev-bridge/+/journal`, QoS 1, persistent session."""

    def __init__(self, port: int) -> None:
        self.rows: list[dict] = []
        self.topics: set[str] = set()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fleet-e2e-{os.getpid()}-{port}",
                                  protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.on_connect = lambda c, *a: c.subscribe("josev-bridge/+/journal", qos=1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, 30, clean_start=False, properties=props)
        self.client.loop_start()
        assert subscribed.wait(10), "fleet consumer not subscribed"

    def _on_message(self, client, userdata, message) -> None:
        self.topics.add(message.topic)
        self.rows.append(json.loads(message.payload))

    def unique(self) -> dict[int, dict]:
        """Rows de-duplicated by id, in order of first arrival."""
        out: dict[int, dict] = {}
        for row in list(self.rows):
            out.setdefault(row["id"], row)
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def fleet(upstream):
    consumer = Fleet(upstream.port)
    yield consumer
    consumer.close()


def export_section(upstream) -> dict:
    return {"enabled": True, "host": "127.0.0.1", "port": upstream.port, "tls": False,
            "reconnect_min_delay": 0.1, "reconnect_max_delay": 0.5}


def ask(client, event_type, reason, timeout=5.0):
    return client.send("get_event_timestamp", {"event_type": event_type, "trigger_reason": reason}, timeout=timeout)


def journal_last_id(bridge) -> int:
    return bridge.status()["journal"]["last_id"]


def test_rows_of_real_requests_reach_the_fleet_broker(broker, sim, make_bridge, upstream, fleet):
    bridge = make_bridge(export=export_section(upstream)).start()
    assert sim.command("plug-connector", {"evse_id": 1})[0] == 200
    bridge.wait_log("EVSE 1 EVConnected TxEventStart")
    with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port)) as client:
        answered = ask(client, "TxEventStart", "EVConnected")
        unknown = ask(client, "TxEventStop", "Authorized", timeout=SILENCE)
    assert answered.response is not None and unknown.response is None

    def exported(request_id):
        return next((r for r in fleet.unique().values() if r["correlationId"] == request_id), None)
    row = wait_until(lambda: exported(answered.request["id"]), 10, "the answered request's row at the fleet")
    assert row["messageType"] == "get_event_timestamp"
    assert row["messagePayload"] == answered.request["data"]
    assert row["messageResponse"] == answered.response["data"]
    assert row["ocppChargerIdentity"] == IDENTITY and row["protocol"] == "ocpp2.0.1"
    assert row["direction"] == "in" and row["topic"] == "ocpp/cs" and row["latencyMs"] is not None
    silent = wait_until(lambda: exported(unknown.request["id"]), 10, "the unanswered request's row at the fleet")
    assert silent["messageResponse"] == "NoEventRecorded"
    assert fleet.topics == {TOPIC}

    def caught_up():
        status = bridge.status()
        export = status["export"]
        return export["connected"] and export["backlog"] == 0 and export["watermark"] == status["journal"]["last_id"]
    wait_until(caught_up, 10, "status.json: export connected with no backlog")
    export = bridge.status()["export"]
    assert export["acked"] >= 2 and export["published"] >= export["acked"]
    assert export["topic"] == TOPIC and export["lost_to_retention"] == 0
    every = set(range(1, export["watermark"] + 1))  # events and requests alike, none missing
    wait_until(lambda: every <= set(fleet.unique()), 10, f"rows 1..{export['watermark']} at the fleet")
    assert list(fleet.unique())[:len(every)] == sorted(every)  # in order of first arrival


def test_fleet_broker_down_and_bridge_killed_nothing_missing_in_order(broker, sim, make_bridge, upstream, fleet):
    bridge = make_bridge(export=export_section(upstream)).start()
    assert sim.command("plug-connector", {"evse_id": 1})[0] == 200
    bridge.wait_log("EVSE 1 EVConnected TxEventStart")
    with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port)) as client:
        for _ in range(20):
            assert ask(client, "TxEventStart", "EVConnected").response is not None
        wait_until(lambda: len(fleet.unique()) >= 20, 10, "the first rows at the fleet")

        upstream.stop()
        wait_until(lambda: not bridge.status()["export"]["connected"], 10, "status: export disconnected")
        during = [ask(client, "TxEventStart", "EVConnected") for _ in range(30)]
        assert all(reply.response is not None for reply in during)  # answers never wait for the uplink
        wait_until(lambda: bridge.status()["export"]["backlog"] >= 30, 10, "a backlog of the rows made while down")

    bridge.stop(signal.SIGKILL)  # a crash with rows pending: the outbox is on disk, not in memory
    bridge.start()
    upstream.start()  # same port and persistence directory
    last = wait_until(lambda: (s := bridge.status()["export"])["connected"] and s["backlog"] == 0 and s["watermark"],
                      20, "the backlog delivered after the restarts")
    wait_until(lambda: len(fleet.unique()) >= last, 10, f"rows 1..{last} at the fleet")
    ids = list(fleet.unique())
    assert ids[:last] == list(range(1, last + 1))  # every row, none missing, in order of first arrival
    exported = {row["correlationId"] for row in fleet.unique().values()}
    assert {reply.request["id"] for reply in during} <= exported
