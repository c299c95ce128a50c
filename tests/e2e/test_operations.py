"""What a technician and an integrator touch: the request CLI, MQTT 3.1.1, the retained status topic."""

from __future__ import annotations

import json
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from josev_bridge.config import MqttConfig
from josev_bridge.harness.waiting import wait_until
from josev_bridge.request_client import RequestClient


def retained(broker, topic, timeout=5.0) -> bytes | None:
    got: list[bytes] = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="retained-probe")
    client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
    client.on_message = lambda c, u, m: (got.append(m.payload), done.set())
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        done.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0] if got else None


def test_request_cli_prints_the_answer(sim, bridge):
    status, body = sim.command("plug-connector")
    bridge.wait_log("EVConnected TxEventStart")
    r = bridge.cli("request", "get-event-timestamp", "--event-type", "TxEventStart", "--trigger-reason", "EVConnected")
    assert r.returncode == 0, r.stderr
    response = json.loads(r.stdout.splitlines()[-1])
    assert response["data"]["timestamp"] == body["edges"][0]["timestamp"]
    assert "answered in" in r.stderr
    silent = bridge.cli("request", "get-event-timestamp", "--event-type", "TxEventStop",
                        "--trigger-reason", "EVConnected", "--timeout", "1")
    assert silent.returncode == 1 and "no answer within 1 s" in silent.stderr


def test_mqtt_311_works_too(broker, sim, make_bridge):
    bridge = make_bridge(mqtt={"protocol": "3.1.1"})
    bridge.start()
    status, body = sim.command("plug-connector")
    bridge.wait_log("EVConnected TxEventStart")
    with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port, protocol="3.1.1")) as client:
        reply = client.send("get_event_timestamp", {"event_type": "TxEventStart", "trigger_reason": "EVConnected"})
    assert reply.response["data"]["timestamp"] == body["edges"][0]["timestamp"]


def test_status_is_retained_online_then_offline(broker, bridge):
    assert retained(broker, bridge.status_topic) == b"online"
    bridge.stop()
    assert retained(broker, bridge.status_topic) == b"offline"


def test_status_shows_link_clock_and_counters_and_notices_a_dead_bridge(sim, bridge):
    sim.command("plug-connector")
    bridge.wait_log("EVConnected TxEventStart")

    def fresh():
        r = bridge.cli("status", "--json")
        doc = json.loads(r.stdout)
        return doc if doc["ok"] and doc["status"]["mcu_link"]["counters"]["records"] >= 1 else None

    doc = wait_until(fresh, 10, "a status with the record applied")
    link = doc["status"]["mcu_link"]
    assert link["state"] == "open" and link["boot_id"] == f"{sim.boot_id:08x}"
    assert link["clock"]["samples"] >= 1 and link["clock"]["best_rtt_us"] >= 0
    assert link["counters"]["lost_records"] == 0 and doc["status"]["mqtt"]["connected"]
    human = bridge.cli("status")
    assert human.returncode == 0 and "MCU clock" in human.stdout and "faults" in human.stdout
    lines = {line.split()[0]: line for line in human.stdout.splitlines() if line.strip()}
    assert "rows written" in lines["journal"] and "http://127.0.0.1:" in lines["API"]
    assert "0 open" in lines["alerts"] and "export" not in lines  # export is off by default
    bridge.kill()
    dead = bridge.cli("status")
    assert dead.returncode == 1 and dead.stdout.startswith("not answering: the bridge is not running")
