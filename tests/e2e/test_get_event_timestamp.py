"""get_event_timestamp end to end: OCPP-service client -> mosquitto -> bridge <- pty <- simulated MCU."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from josev_bridge.config import MqttConfig
from josev_bridge.core.conditions import TRIGGER_REASONS
from josev_bridge.core.timestamps import is_josev_timestamp, parse_us
from josev_bridge.harness.waiting import wait_until
from josev_bridge.request_client import RequestClient

EVENT_TYPES = ("TxEventStart", "TxEventStop")
SILENCE = 1.0  # how long "no answer" is awaited; an answer normally takes about a millisecond


def client_for(broker) -> RequestClient:
    return RequestClient(MqttConfig(host="127.0.0.1", port=broker.port))


def run(sim, name, event=None, bridge=None):
    """Drive the simulator; with `bridge`, also wait until the bridge has applied every edge."""
    status, body = sim.command(name, event or {})
    assert status == 200, body
    if bridge is not None:
        for e in body["edges"]:
            bridge.wait_log(f"EVSE {e['evse_id']} {e['trigger_reason']} {e['event_type']} at {e['timestamp']}")
    return body["edges"]


def wait_caught_up(bridge, sim, timeout=20.0):
    """Until the bridge (per its status) has applied every record the MCU has made."""
    mcu = sim.status()
    boot, target = f"{mcu['boot_id']:08x}", mcu["next_seq"] - 1
    wait_until(lambda: (link := bridge.status()["mcu_link"])["boot_id"] == boot and (link["last_seq"] or 0) >= target,
               timeout, f"the bridge to apply MCU record {target} of boot {boot}")


def edge_map(edges):
    """(event_type, trigger_reason, evse) -> latest hardware timestamp, as the simulator reported it."""
    out = {}
    for e in edges:
        out[(e["event_type"], e["trigger_reason"], e["evse_id"])] = e["timestamp"]
    return out


def ask(client, event_type, reason, evse_id=None, timeout=5.0):
    data = {"event_type": event_type, "trigger_reason": reason}
    if evse_id is not None:
        data["evse_id"] = evse_id
    return client.send("get_event_timestamp", data, timeout=timeout)


def play_session(sim, bridge):
    """A complete charging session touching every condition; returns the simulator's edges."""
    edges = []
    edges += run(sim, "parking-bay-occupied", {"evse_id": 1}, bridge)
    edges += run(sim, "plug-connector", {"evse_id": 1}, bridge)
    edges += run(sim, "authorize-id-tag", {"evse_id": 1, "id_tag": "TAG-1"}, bridge)
    edges += run(sim, "ev-requests-energy", {"evse_id": 1}, bridge)
    edges += run(sim, "data-signed", {"evse_id": 1}, bridge)
    edges += run(sim, "ev-stops-energy", {"evse_id": 1}, bridge)
    edges += run(sim, "stop-session", {"evse_id": 1}, bridge)
    edges += run(sim, "unplug-connector", {"evse_id": 1}, bridge)
    edges += run(sim, "parking-bay-vacated", {"evse_id": 1}, bridge)
    return edges


def test_every_event_type_and_trigger_reason_matches_hardware_time(broker, sim, bridge):
    edges = edge_map(play_session(sim, bridge))
    with client_for(broker) as client:
        for event_type in EVENT_TYPES:
            for reason in TRIGGER_REASONS:
                expected = edges.get((event_type, reason.value, 1))
                reply = ask(client, event_type, reason.value, timeout=5.0 if expected else SILENCE)
                if expected is None:  # DataSigned has no stop
                    assert (event_type, reason.value) == ("TxEventStop", "DataSigned")
                    assert reply.response is None
                    continue
                assert reply.response is not None, (event_type, reason)
                resp = reply.response
                assert resp["id"] == reply.request["id"] and resp["name"] == "get_event_timestamp"
                assert resp["type"] == "response"
                ts = resp["data"]["timestamp"]
                assert is_josev_timestamp(ts)
                assert abs(parse_us(ts) - parse_us(expected)) <= 1000, (event_type, reason, ts, expected)


def test_answer_uses_the_hardware_time_not_the_time_the_bridge_read_it(broker, sim, bridge):
    edges = run(sim, "plug-connector", {"evse_id": 2}, bridge)
    hardware = parse_us(edges[0]["timestamp"])
    with client_for(broker) as client:
        reply = ask(client, "TxEventStart", "EVConnected", evse_id=2)
    assert reply.response is not None
    assert parse_us(reply.response["data"]["timestamp"]) == hardware  # both truncated to the millisecond


def test_flag_off_and_on_at_run_time(broker, sim, bridge):
    run(sim, "plug-connector", None, bridge)
    with client_for(broker) as client:
        assert ask(client, "TxEventStart", "EVConnected").response is not None
        off = bridge.cli("dm", "set", "JOSEV_CTRLR", "EnableGetEventTimestampRequest", "false")
        assert off.returncode == 0, off.stderr
        assert "true -> false" in off.stdout
        reply = ask(client, "TxEventStart", "EVConnected", timeout=SILENCE)
        assert reply.response is None
        bridge.wait_log("asked while JOSEV_CTRLR.EnableGetEventTimestampRequest is false")
        on = bridge.cli("dm", "set", "JOSEV_CTRLR", "EnableGetEventTimestampRequest", "true")
        assert on.returncode == 0, on.stderr
        assert ask(client, "TxEventStart", "EVConnected").response is not None
    got = bridge.cli("dm", "get", "JOSEV_CTRLR", "EnableGetEventTimestampRequest")
    assert got.stdout.strip() == "true"


def test_flag_change_survives_a_restart(broker, sim, bridge):
    run(sim, "plug-connector", None, bridge)
    assert bridge.cli("dm", "set", "JOSEV_CTRLR", "EnableGetEventTimestampRequest", "false").returncode == 0
    bridge.stop()
    bridge.start()
    with client_for(broker) as client:
        assert ask(client, "TxEventStart", "EVConnected", timeout=SILENCE).response is None
    assert "get_event_timestamp disabled" in bridge.log_text()


def test_bridge_restart_between_event_and_request(broker, sim, bridge):
    edges = edge_map(run(sim, "plug-connector", None, bridge) + run(sim, "authorize-id-tag", {"id_tag": "T"}, bridge))
    bridge.wait_log("PowerPathClosed TxEventStart")
    bridge.kill()  # SIGKILL: no chance to save anything on the way out
    bridge.start()
    # Online is not caught up: edges applied within the 50 ms before the kill were neither saved nor
    # acknowledged, so they come back by the MCU's replay, which a busy host may finish after the
    # bridge is online. Until then the bridge stays silent (no edge, no answer); wait for the replay.
    wait_caught_up(bridge, sim)
    with client_for(broker) as client:
        reply = ask(client, "TxEventStart", "PowerPathClosed")
    assert reply.response["data"]["timestamp"] == edges[("TxEventStart", "PowerPathClosed", 1)]


def test_events_while_the_bridge_is_down_are_not_lost(broker, sim, bridge):
    bridge.stop()
    edges = edge_map(run(sim, "parking-bay-occupied"))  # the bridge is down: nothing to wait for
    bridge.start()
    bridge.wait_log("ParkingBayOccupancy TxEventStart")
    with client_for(broker) as client:
        reply = ask(client, "TxEventStart", "ParkingBayOccupancy")
    assert reply.response["data"]["timestamp"] == edges[("TxEventStart", "ParkingBayOccupancy", 1)]


def test_requests_published_while_the_bridge_is_away_are_answered(broker, sim, bridge):
    edges = edge_map(run(sim, "plug-connector", None, bridge))
    bridge.wait_log("EVConnected TxEventStart")
    bridge.stop()
    with client_for(broker) as client:
        request = {"id": str(uuid.uuid4()), "name": "get_event_timestamp", "type": "request",
                   "data": {"event_type": "TxEventStart", "trigger_reason": "EVConnected"}}
        result = {}
        t = threading.Thread(target=lambda: result.update(r=client.send_raw(request, timeout=20)))
        t.start()
        bridge.start()  # the broker kept our persistent session and queued the request
        t.join()
    assert result["r"].response["data"]["timestamp"] == edges[("TxEventStart", "EVConnected", 1)]


def test_broker_restart_between_two_requests(broker, sim, bridge):
    edges = edge_map(run(sim, "plug-connector", None, bridge))
    expected = edges[("TxEventStart", "EVConnected", 1)]
    with client_for(broker) as client:
        assert ask(client, "TxEventStart", "EVConnected").response["data"]["timestamp"] == expected
    mark = len(bridge.log_text())
    broker.restart()
    bridge.wait_log("connected to broker", timeout=15, start=mark)
    with client_for(broker) as client:
        reply = ask(client, "TxEventStart", "EVConnected", timeout=15)
    assert reply.response is not None and reply.response["data"]["timestamp"] == expected


BAD_INPUTS = [
    (b"{not json", "malformed json"),
    (b"[1, 2, 3]", "not an envelope"),
    (json.dumps({"id": "x", "name": "get_event_timestamp", "type": "request",
                 "data": {"event_type": "TxEventStart", "trigger_reason": "EVConnected"}}).encode(),
     "schema violation"),
    (json.dumps({"id": str(uuid.uuid4()), "name": "get_event_timestamp", "type": "request",
                 "data": {"event_type": "TxEventMiddle", "trigger_reason": "EVConnected"}}).encode(),
     "schema violation"),
    (json.dumps({"id": str(uuid.uuid4()), "name": "get_event_timestamp", "type": "request",
                 "data": {"event_type": 1, "trigger_reason": ["EVConnected"]}}).encode(), "schema violation"),
    (json.dumps({"id": str(uuid.uuid4()), "name": "get_event_timestamp", "type": "request",
                 "data": {"event_type": "TxEventStart", "trigger_reason": "EVConnected", "evse_id": "1"}}).encode(),
     "schema violation"),
    (b'{"id": "' + b"a" * 70000 + b'"}', "oversized"),
    (b"\xff\xfe\x00garbage", "malformed json"),
]


@pytest.mark.parametrize("payload,kind", BAD_INPUTS, ids=[k + str(i) for i, (_, k) in enumerate(BAD_INPUTS)])
def test_bad_input_is_logged_and_the_next_good_request_is_answered(broker, sim, bridge, payload, kind):
    run(sim, "plug-connector", None, bridge)
    with client_for(broker) as client:
        mark = len(bridge.log_text())
        client.publish_raw(payload)
        bridge.wait_log(f"dropping {kind} message", start=mark)
        reply = ask(client, "TxEventStart", "EVConnected")
    assert reply.response is not None
    assert bridge.proc.poll() is None


def test_other_names_and_types_are_ignored_without_reply(broker, sim, bridge):
    run(sim, "plug-connector", None, bridge)
    with client_for(broker) as client:
        other = client.send("set_charging_profile", {"x": 1}, timeout=SILENCE)
        assert other.response is None
        # a response-typed message on the request topic is not a request
        resp = client.send_raw({"id": str(uuid.uuid4()), "name": "get_event_timestamp", "type": "response",
                                "data": {"timestamp": "2026-01-01T00:00:00Z"}}, timeout=SILENCE)
        assert resp.response is None
        assert ask(client, "TxEventStart", "EVConnected").response is not None
    assert "ignoring message" in bridge.log_text()
    assert "dropping" not in bridge.log_text()


def test_a_redelivered_request_id_gets_the_same_answer(broker, sim, bridge):
    run(sim, "plug-connector", None, bridge)
    msg_id = str(uuid.uuid4())
    with client_for(broker) as client:
        first = client.send("get_event_timestamp", {"event_type": "TxEventStart", "trigger_reason": "EVConnected"},
                            msg_id=msg_id)
        run(sim, "unplug-connector", None, bridge)
        run(sim, "plug-connector", None, bridge)  # a newer EVConnected edge now exists
        again = client.send("get_event_timestamp", {"event_type": "TxEventStart", "trigger_reason": "EVConnected"},
                            msg_id=msg_id)
        fresh = ask(client, "TxEventStart", "EVConnected")
    assert again.response == first.response
    assert fresh.response["data"]["timestamp"] != first.response["data"]["timestamp"]


def test_no_edge_means_no_reply_by_default(broker, sim, bridge):
    with client_for(broker) as client:
        assert ask(client, "TxEventStart", "Authorized", timeout=SILENCE).response is None
    bridge.wait_log("no such edge recorded by the MCU")


def test_current_time_fallback_is_opt_in(broker, sim, make_bridge):
    bridge = make_bridge(get_event_timestamp={"reply_with_current_time_when_unknown": True})
    bridge.start()
    before = time.time_ns() // 1000
    with client_for(broker) as client:
        reply = ask(client, "TxEventStart", "Authorized")
    ts = parse_us(reply.response["data"]["timestamp"])
    assert before - 1000 <= ts <= time.time_ns() // 1000
    bridge.wait_log("answered with the current time as configured")


def test_evse_id_extension_and_most_recent_evse_without_it(broker, sim, bridge):
    e1 = edge_map(run(sim, "plug-connector", {"evse_id": 1}, bridge))
    e2 = edge_map(run(sim, "plug-connector", {"evse_id": 2}, bridge))
    bridge.wait_log("EVSE 2 EVConnected")
    with client_for(broker) as client:
        assert ask(client, "TxEventStart", "EVConnected", evse_id=1).response["data"]["timestamp"] == \
            e1[("TxEventStart", "EVConnected", 1)]
        assert ask(client, "TxEventStart", "EVConnected").response["data"]["timestamp"] == \
            e2[("TxEventStart", "EVConnected", 2)]
