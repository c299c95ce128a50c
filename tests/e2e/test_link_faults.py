"""The MCU link under faults, end to end over a real pty: every event still answers with its
hardware time, within the clock-mapping error bound the bridge states for that edge (plus the
millisecond truncation of the two timestamps compared), and the bridge reports exactly the records
it could not recover."""

from __future__ import annotations

import json
import re

import pytest

from josev_bridge.config import MqttConfig
from josev_bridge.core.timestamps import parse_us
from josev_bridge.harness.bridge_process import BridgeProcess
from josev_bridge.harness.waiting import wait_until
from josev_bridge.request_client import RequestClient
from josev_bridge.sim.launcher import start_sim

TRUNCATION_US = 1000  # both timestamps compared are truncated to the millisecond
SANE_BOUND_US = 100_000  # a bound this wide would say the mapping is broken, not that the board is busy
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
    for _ in range(n_cycles):
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
    mcu = sim.status()
    target, boot = mcu["next_seq"] - 1, f"{mcu['boot_id']:08x}"
    wait_until(lambda: (s := status(bridge)) and s["mcu_link"]["boot_id"] == boot
               and s["mcu_link"]["last_seq"] >= target
               and s["mcu_link"]["counters"]["records"] >= 1, 20, f"the bridge to apply seq {target} of boot {boot}")


def stated_edges(bridge) -> dict:
    """(evse, event_type, reason) -> (logged time, error bound in µs) of the last edge the bridge applied."""
    out = {}
    for m in re.finditer(r"EVSE (\d+) (\w+) (TxEvent\w+) at (\S+) \(clock mapping error <= ([\d.]+) ms\)",
                         bridge.log_text()):
        out[(int(m[1]), m[3], m[2])] = (m[4], round(float(m[5]) * 1000))
    return out


def check_answers(broker, edges, bridge):
    """Every latest edge answers with the time the bridge applied, within the bound it stated for it."""
    stated = stated_edges(bridge)
    with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port)) as client:
        for (evse, event_type, reason), expected in latest_edges(edges).items():
            reply = client.send("get_event_timestamp", {"event_type": event_type, "trigger_reason": reason,
                                                        "evse_id": evse})
            assert reply.response is not None, (evse, event_type, reason)
            answer = reply.response["data"]["timestamp"]
            logged, bound_us = stated[(evse, event_type, reason)]
            assert answer == logged, (evse, event_type, reason)  # the edge the bridge applied last
            assert bound_us < SANE_BOUND_US, (evse, event_type, reason, bound_us)
            error = abs(parse_us(answer) - parse_us(expected))
            assert error <= bound_us + TRUNCATION_US, (evse, event_type, reason, answer, expected, bound_us)


def test_one_percent_of_frames_corrupted(broker, sim, bridge):
    commands = iter(range(10_000))
    damaged = {7, 40, 77}  # ~1% of the ~200 frames this drive sends

    def maybe_corrupt():
        if next(commands) in damaged:
            assert sim.command("link-corrupt-frames", {"count": 1})[0] == 200

    edges = drive(sim, 8, before_command=maybe_corrupt)
    wait_applied(bridge, sim)
    check_answers(broker, edges, bridge)
    counters = status(bridge)["mcu_link"]["counters"]
    assert counters["crc_errors"] + counters["cobs_errors"] == len(damaged)  # the faults really happened
    assert counters["lost_records"] == 0


def test_bridge_killed_and_restarted_while_the_mcu_keeps_producing(broker, sim, bridge):
    edges = drive(sim, 2)
    bridge.kill()
    edges += drive(sim, 3)  # records pile up in the MCU's ring while nobody reads
    bridge.start()
    wait_applied(bridge, sim)
    check_answers(broker, edges, bridge)
    assert status(bridge)["mcu_link"]["counters"]["lost_records"] == 0


def test_pty_unplugged_mid_session_and_replugged(broker, sim, bridge):
    edges = drive(sim, 1)
    status_, body = sim.command("plug-connector", {"evse_id": 1})
    edges += body["edges"]
    assert sim.command("link-unplug", {"seconds": 1.0})[0] == 200
    for name, event in CYCLE[1:]:  # the session goes on while the USB adapter is out
        status_, body = sim.command(name, {"evse_id": 1, **event})
        edges += body["edges"]
    bridge.wait_log("closed: I/O error", timeout=10)
    wait_applied(bridge, sim)
    check_answers(broker, edges, bridge)
    counters = status(bridge)["mcu_link"]["counters"]
    assert counters["lost_records"] == 0 and counters["opens"] >= 2


@pytest.mark.parametrize("keep_ring", [True, False])
def test_mcu_reboot_mid_session(broker, sim, bridge, keep_ring):
    edges = drive(sim, 1)
    before = sim.command("plug-connector", {"evse_id": 1})[1]["edges"]
    before += sim.command("authorize-id-tag", {"evse_id": 1, "id_tag": "T"})[1]["edges"]  # charging session open
    if not keep_ring:
        wait_applied(bridge, sim)  # a reboot that loses the ring loses nothing the bridge still needs
    status_, reboot = sim.command("link-reboot", {"keep_ring": keep_ring})
    assert status_ == 200
    bridge.wait_log(f"MCU boot {reboot['boot_id']:08x}", timeout=10)
    after = drive(sim, 1)  # the rebooted MCU reports the session again from scratch
    wait_applied(bridge, sim)
    check_answers(broker, edges + before + after, bridge)
    link = status(bridge)["mcu_link"]
    assert link["counters"]["lost_records"] == 0
    assert link["boot_id"] == f"{reboot['boot_id']:08x}"


def test_ring_overflow_is_reported_exactly(broker, tmp_path, make_bridge):
    with start_sim(tmp_path / "small", extra_args=["--ring-size", "4"]) as small:
        bridge = BridgeProcess(tmp_path / "b2", broker_port=broker.port, serial_url=str(small.pty_link))
        bridge.start()
        try:
            drive(small, 1, evse_ids=(1,))
            wait_applied(bridge, small)
            bridge.kill()
            drive(small, 1, evse_ids=(1,))  # 10 records while down; the ring keeps the last 4
            n_records = small.status()["next_seq"] - 1 - status_last_seq(bridge)
            bridge.start()
            wait_applied(bridge, small)
            assert status(bridge)["mcu_link"]["counters"]["lost_records"] == n_records - 4
            assert "records lost" in bridge.log_text()
        finally:
            bridge.stop()


def status_last_seq(bridge) -> int:
    return json.loads((bridge.workdir / "state" / "edges.json").read_text())["link"]["last_seq"]


def test_noise_bursts(broker, sim, bridge):
    edges = drive(sim, 2, before_command=lambda: sim.command("link-noise", {"bytes": 300}))
    wait_applied(bridge, sim)
    check_answers(broker, edges, bridge)
    counters = status(bridge)["mcu_link"]["counters"]
    assert counters["discarded_bytes"] > 0 and counters["lost_records"] == 0


def test_ten_seconds_of_silence(broker, sim, bridge):
    assert sim.command("link-silence", {"seconds": 10})[0] == 200
    edges = drive(sim, 1)
    bridge.wait_log("MCU link silent", timeout=15)
    bridge.wait_log("MCU link open: MCU heard", timeout=15)
    wait_applied(bridge, sim)
    check_answers(broker, edges, bridge)
    assert status(bridge)["mcu_link"]["counters"]["lost_records"] == 0


@pytest.mark.parametrize("offset_s,ppm", [(3 * 3600, 100.0), (-5 * 3600, -100.0)])
def test_mcu_clock_off_by_hours_and_drifting(broker, tmp_path, offset_s, ppm):
    args = ["--clock-offset-s", str(offset_s), "--clock-drift-ppm", str(ppm)]
    with start_sim(tmp_path / "drift", extra_args=args) as drifting:
        bridge = BridgeProcess(tmp_path / "b3", broker_port=broker.port, serial_url=str(drifting.pty_link))
        bridge.start()
        try:
            code, first = drifting.command("parking-bay-occupied", {"evse_id": 1})
            record = first["records"][0]
            assert abs(record["time_us"] - record["true_time_us"] - offset_s * 1_000_000) < 1_000_000  # hours off
            edges = first["edges"] + drive(drifting, 2)
            wait_applied(bridge, drifting)
            # true times within the stated bound, though the MCU clock is hours off
            check_answers(broker, edges, bridge)
            assert status(bridge)["mcu_link"]["clock"]["samples"] >= 2
        finally:
            bridge.stop()
