"""The MCU link under faults, end to end over a real pty: every event still answers with its
hardware time (within 2 ms), and the bridge reports exactly the records it could not recover."""

from __future__ import annotations

import json

from josev_bridge.config import MqttConfig
from josev_bridge.core.timestamps import parse_us
from josev_bridge.harness.waiting import wait_until
from josev_bridge.request_client import RequestClient

TOLERANCE_US = 2000
CYCLE = [("plug-connector", {}), ("authorize-id-tag", {"id_tag": "T"}), ("ev-requests-energy", {}),
         ("ev-stops-energy", {}), ("stop-session", {}), ("unplug-connector", {})]


def latest_edges(edges):
    out = {}
    for e in edges:
        out[(e["evse_id"], e["event_type"], e["trigger_reason"])] = e["timestamp"]
    return out


def drive(sim, n_cycles, evse_ids=(1, 2), before_command=None):
    """Charging sessions on several EVSEs; returns every edge the simulator reported."""
    edges = []
    for i in range(n_cycles):
        for evse in evse_ids:
            for name, event in CYCLE:
                if before_command:
                    before_command()
                status, body = sim.command(name, {"evse_id": evse, **event})
                assert status == 200, body
                edges += body["edges"]
    return edges


def status(bridge) -> dict:
    return json.loads(bridge.cli("status", "--json").stdout)["status"]


def wait_applied(bridge, sim):
    """Until the bridge has applied every record the simulator created (per its status)."""
    target = sim.status()["next_seq"] - 1
    wait_until(lambda: (s := status(bridge)) and s["mcu_link"]["last_seq"] >= target
               and s["mcu_link"]["counters"]["records"] >= 1, 20, f"the bridge to apply seq {target}")


def check_answers(broker, edges):
    with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port)) as client:
        for (evse, event_type, reason), expected in latest_edges(edges).items():
            reply = client.send("get_event_timestamp", {"event_type": event_type, "trigger_reason": reason,
                                                        "evse_id": evse})
            assert reply.response is not None, (evse, event_type, reason)
            got = parse_us(reply.response["data"]["timestamp"])
            assert abs(got - parse_us(expected)) <= TOLERANCE_US, (evse, event_type, reason, got, expected)


def test_one_percent_of_frames_corrupted(broker, sim, bridge):
    commands = iter(range(10_000))
    damaged = {7, 40, 77}  # ~1% of the ~200 frames this drive sends

    def maybe_corrupt():
        if next(commands) in damaged:
            assert sim.command("link-corrupt-frames", {"count": 1})[0] == 200

    edges = drive(sim, 8, before_command=maybe_corrupt)
    wait_applied(bridge, sim)
    check_answers(broker, edges)
    counters = status(bridge)["mcu_link"]["counters"]
    assert counters["crc_errors"] + counters["cobs_errors"] == len(damaged)  # the faults really happened
    assert counters["lost_records"] == 0


def test_bridge_killed_and_restarted_while_the_mcu_keeps_producing(broker, sim, bridge):
    edges = drive(sim, 2)
    bridge.kill()
    edges += drive(sim, 3)  # records pile up in the MCU's ring while nobody reads
    bridge.start()
    wait_applied(bridge, sim)
    check_answers(broker, edges)
    assert status(bridge)["mcu_link"]["counters"]["lost_records"] == 0
