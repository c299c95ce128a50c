"""The broker SIGKILLed while requests wait for the bridge in its persistent session.

With the persistence settings of the shipped snippet (systemd/mosquitto-josev-bridge.conf, read by
the harness, so these tests check what ships), mosquitto saves every SAVE_S seconds; once it has
saved the session and its queued QoS 1 requests, a kill loses none of them: after the restart the
bridge's session is present and every queued request is answered exactly once. With mosquitto's
default autosave (every 1800 s) the same kill loses the session and every request queued since the
last save: what the shipped lines buy.
"""

from __future__ import annotations

import json
import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from josev_bridge.config import MqttConfig
from josev_bridge.harness.bridge_process import BridgeProcess
from josev_bridge.harness.broker import Mosquitto, shipped_directives
from josev_bridge.harness.waiting import wait_until
from josev_bridge.request_client import RequestClient

N_QUEUED = 20
PERSISTENCE = ("persistence", "autosave_on_changes", "autosave_interval")
SAVE_S = int(dict(shipped_directives())["autosave_interval"])  # seconds between the broker's saves


class Josev:
    """Plays Josev's OCPP service: publishes requests (QoS 1, until PUBACK) and counts every response."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.responses: dict[str, list[dict]] = {}
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"josev-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, *a: c.subscribe("cs/ocpp", qos=1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "no SUBACK for cs/ocpp"

    def _on_message(self, client, userdata, message) -> None:
        obj = json.loads(message.payload)
        if obj.get("type") == "response":
            with self._lock:
                self.responses.setdefault(obj["id"], []).append(obj)

    def publish(self, event_type: str, reason: str) -> str:
        request_id = str(uuid.uuid4())
        request = {"id": request_id, "name": "get_event_timestamp", "type": "request",
                   "data": {"event_type": event_type, "trigger_reason": reason}}
        info = self.client.publish("ocpp/cs", json.dumps(request), qos=1)
        info.wait_for_publish(10)
        assert info.is_published(), "no PUBACK from the broker"
        return request_id

    def barrier(self) -> None:
        """A live request answered: anything the broker had queued for the bridge was delivered before it
        (one session, in order), so what has not arrived by now is not coming."""
        with RequestClient(MqttConfig(host="127.0.0.1", port=self.port)) as client:
            reply = client.send("get_event_timestamp", {"event_type": "TxEventStart",
                                                         "trigger_reason": "EVConnected"}, timeout=20)
        assert reply.response is not None, "the bridge does not answer a live request"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def plug_and_authorize(sim, bridge) -> dict:
    """Edges to ask about; returns (event_type, trigger_reason) -> hardware timestamp."""
    edges = {}
    for name, event in (("plug-connector", {}), ("authorize-id-tag", {"id_tag": "T"})):
        status, body = sim.command(name, event)
        assert status == 200, body
        for e in body["edges"]:
            bridge.wait_log(f"EVSE {e['evse_id']} {e['trigger_reason']} {e['event_type']} at {e['timestamp']}")
            edges[(e["event_type"], e["trigger_reason"])] = e["timestamp"]
    return edges


ASKED = [("TxEventStart", "EVConnected"), ("TxEventStart", "Authorized"), ("TxEventStart", "PowerPathClosed")]


def queue_requests_while_the_bridge_is_away(broker, bridge) -> list[tuple[str, tuple]]:
    bridge.stop()  # clean disconnect: the broker keeps the session (expiry 3600 s) and queues for it
    josev = Josev(broker.port)
    asked = [(josev.publish(*ASKED[i % len(ASKED)]), ASKED[i % len(ASKED)]) for i in range(N_QUEUED)]
    josev.close()
    return asked


def test_the_harness_broker_runs_the_shipped_persistence_settings(broker):
    shipped = dict(shipped_directives())
    conf = broker.conf.read_text().splitlines()
    for key in PERSISTENCE:
        assert f"{key} {shipped[key]}" in conf, key
    # a time, not a count of changes (in mosquitto 2.0 every QoS 1 delivery would be a save)
    assert shipped["persistence"] == "true" and shipped["autosave_on_changes"] == "false"
    assert 1 <= SAVE_S <= 10  # what the README promises: at most 11 s of changes lost (10 < whole seconds)


def test_requests_queued_for_the_bridge_survive_a_broker_sigkill(broker, sim, bridge):
    edges = plug_and_authorize(sim, bridge)
    asked = queue_requests_while_the_bridge_is_away(broker, bridge)

    # mosquitto saves every SAVE_S seconds: poll the file, no sleep
    wait_until(lambda: broker.db_path.exists()
               and all(rid.encode() in broker.db_path.read_bytes() for rid, _ in asked),
               SAVE_S + 10, f"every queued request saved in {broker.db_path}")
    saved = broker.db_path.stat()
    broker.kill()
    assert broker.db_path.stat().st_mtime_ns == saved.st_mtime_ns  # SIGKILL wrote nothing more
    broker.start()  # same port, same persistence file

    josev = Josev(broker.port)
    try:
        # the session and its subscription came back: a request published now, with the bridge still
        # away, is queued for it (a broker without that session would have no subscriber to queue for)
        late = (josev.publish("TxEventStart", "EVConnected"), ("TxEventStart", "EVConnected"))
        mark = len(bridge.log_text())
        bridge.start()
        assert "(session present: True)" in bridge.wait_log("connected to broker", start=mark)
        every = asked + [late]
        wait_until(lambda: all(rid in josev.responses for rid, _ in every), 30,
                   "an answer to every request queued before the kill")
        josev.barrier()
        for rid, key in every:
            answers = josev.responses[rid]
            assert len(answers) == 1, (rid, answers)  # exactly once: nothing redelivered by the restored queue
            assert answers[0]["data"]["timestamp"] == edges[key], (rid, key)
    finally:
        josev.close()


def test_with_mosquittos_default_autosave_a_sigkill_loses_the_queue(tmp_path, sim):
    """What the shipped autosave lines buy: without them (a save every 1800 s, the default) nothing
    saved since the broker started survives; the bridge comes back to a new session and the
    requests queued for it are gone."""
    default = Mosquitto(tmp_path / "default-autosave",
                        overrides={"autosave_on_changes": None, "autosave_interval": None})
    with default:
        assert not [line for line in default.conf.read_text().splitlines() if line.startswith("autosave")]
        bridge = BridgeProcess(tmp_path / "b-default", broker_port=default.port, serial_url=str(sim.pty_link))
        bridge.start()
        try:
            plug_and_authorize(sim, bridge)
            asked = queue_requests_while_the_bridge_is_away(default, bridge)
            default.kill()
            assert not default.db_path.exists()  # never saved
            default.start()
            josev = Josev(default.port)
            try:
                mark = len(bridge.log_text())
                bridge.start()
                assert "(session present: False)" in bridge.wait_log("connected to broker", start=mark)
                josev.barrier()
                assert not any(rid in josev.responses for rid, _ in asked)  # lost with the broker's memory
            finally:
                josev.close()
        finally:
            bridge.stop()


def test_broker_sigkilled_under_a_connected_bridge(broker, sim, bridge):
    """Once the broker saved the bridge's session, a kill does not lose it: the bridge reconnects to
    it, and answers."""
    edges = plug_and_authorize(sim, bridge)
    client_id = bridge.sections["mqtt"]["client_id"].encode()
    wait_until(lambda: broker.db_path.exists() and client_id in broker.db_path.read_bytes(), SAVE_S + 10,
               "the bridge's session saved")
    mark = len(bridge.log_text())
    broker.kill()
    bridge.wait_log("disconnected from broker", start=mark)
    broker.start()
    assert "(session present: True)" in bridge.wait_log("connected to broker", timeout=15, start=mark)
    with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port)) as client:
        reply = client.send("get_event_timestamp", {"event_type": "TxEventStart", "trigger_reason": "Authorized"},
                            timeout=15)
    assert reply.response is not None and reply.response["data"]["timestamp"] == edges[("TxEventStart", "Authorized")]


def test_a_broker_absent_at_start_is_named_once_and_connected_to_when_it_comes(tmp_path, sim):
    """mosquitto starting after the bridge (or down): one line naming it, not one per attempt and not
    silence, and the line that ends the outage counts it."""
    late = Mosquitto(tmp_path / "late-broker")  # its port chosen, nothing listening yet
    bridge = BridgeProcess(tmp_path / "bridge", broker_port=late.port, serial_url=str(sim.pty_link))
    bridge.start(online=False)
    try:
        first = bridge.wait_log("cannot connect to broker", timeout=15)
        assert f"127.0.0.1:{late.port}" in first and "WARNING" in first
        wait_until(lambda: bridge.status()["mqtt"]["failed_connects"] >= 3, 30, "three failed attempts")
        assert not bridge.status()["mqtt"]["connected"]
        with late:
            bridge.wait_online(30)
            connected = bridge.wait_log("connected to broker", timeout=15)
            assert "failed attempt(s) over" in connected
        assert bridge.log_text().count("cannot connect to broker") == 1
    finally:
        bridge.stop()
