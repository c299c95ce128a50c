"""Issue 14 items 1, 2 and 5 end to end: OCPP-service client -> mosquitto -> bridge <- real pty <- sim.

- An MCU reboot mid-session keeps the session's start times (a level re-reported is not an edge),
  says so in the answers' journal rows, and a level that changed during the reboot is answered
  within the bound the bridge states for it (docs/serial-protocol.md §4.3).
- The last record of a session, lost on the line, is applied within 2 s (§4.6).
- An MCU of protocol version 1 is accepted with reduced guarantees, and the status says so (§4.7).
  (The sign of the clock rate in the status is tested on a real clock fit in tests/cli: here its
  slope would need 10 s of probes.)
"""

from __future__ import annotations

import json
import time
import urllib.request
from urllib.parse import urlencode

from josev_bridge.config import MqttConfig
from josev_bridge.core.timestamps import parse_us
from josev_bridge.harness.bridge_process import BridgeProcess
from josev_bridge.harness.waiting import wait_until
from josev_bridge.request_client import RequestClient
from josev_bridge.sim.launcher import start_sim

TRUNCATION_US = 1000  # answers and the sim's edges are both truncated to the millisecond
LOST_RECORD_DEADLINE_S = 2.0  # issue 14 item 2


def run(sim, name: str, event: dict | None = None) -> list[dict]:
    status, body = sim.command(name, event or {})
    assert status == 200, body
    return body["edges"]


def edge(edges: list[dict], event_type: str, reason: str, evse_id: int = 1) -> str:
    return [e["timestamp"] for e in edges if (e["event_type"], e["trigger_reason"], e["evse_id"]) ==
            (event_type, reason, evse_id)][-1]


def caught_up(bridge: BridgeProcess, sim) -> None:
    """Until the bridge (per its status) has applied every record the MCU has made in its boot."""
    mcu = sim.status()
    boot, target = f"{mcu['boot_id']:08x}", mcu["next_seq"] - 1
    wait_until(lambda: (link := bridge.status()["mcu_link"])["boot_id"] == boot and (link["last_seq"] or 0) >= target,
               20, f"the bridge to apply MCU record {target} of boot {boot}")


def ask(client: RequestClient, event_type: str, reason: str, evse_id: int = 1, timeout: float = 5.0):
    reply = client.send("get_event_timestamp", {"event_type": event_type, "trigger_reason": reason,
                                                "evse_id": evse_id}, timeout=timeout)
    return reply.request["id"], None if reply.response is None else reply.response["data"]["timestamp"]


def journal_note(bridge: BridgeProcess, correlation_id: str) -> str:
    """The journal row's note for one request (the journal writes asynchronously: wait for the row)."""
    def row():
        url = bridge.api_url("/api/ocpp-messages") + "?" + urlencode({"chargerId": "test-charger"})
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {bridge.api_token()}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            rows = json.loads(response.read())["data"]
        return next((r for r in rows if r["correlationId"] == correlation_id), None)
    return wait_until(row, 10, f"the journal row of {correlation_id}")["note"] or ""


def test_a_cold_mcu_reboot_mid_session_keeps_the_sessions_start_times(broker, sim, bridge):
    edges = run(sim, "parking-bay-occupied") + run(sim, "start-session")  # plugged, authorized, charging
    caught_up(bridge, sim)
    reboot = sim.command("link-reboot", {})[1]  # cold: the cable and the car stay, authorization is lost
    label = f"boot {sim.boot_id:08x} -> {reboot['boot_id']:08x}"
    assert [r["type"] for r in reboot["records"]] == ["LEVEL"] * 12
    caught_up(bridge, sim)
    unplugged = run(sim, "unplug-connector")  # after the reboot: a real edge the MCU saw
    caught_up(bridge, sim)
    with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port)) as client:
        for reason in ("EVConnected", "ParkingBayOccupancy", "PowerPathClosed"):
            request_id, answer = ask(client, "TxEventStart", reason)
            assert answer == edge(edges, "TxEventStart", reason), reason  # not the reboot's time
            if reason != "PowerPathClosed":  # (which the lost authorization ended: not continuous)
                assert f"continuity assumed across MCU {label}" in journal_note(bridge, request_id), reason
        # what the reboot did change: inferred from the reboot's interval, within the bound stated for it
        request_id, answer = ask(client, "TxEventStop", "Authorized")
        note = journal_note(bridge, request_id)
        assert "inferred: changed while the MCU rebooted" in note, note
        bound_us = round(float(note.split("mapping error bound ")[1].split(" ms")[0]) * 1000)
        assert bound_us <= 5_000_000 + TRUNCATION_US  # a reboot's interval, not an outage's
        truth = parse_us(edge(reboot["edges"], "TxEventStop", "Authorized"))
        assert abs(parse_us(answer) - truth) <= bound_us + TRUNCATION_US
        assert ask(client, "TxEventStop", "EVConnected")[1] == edge(unplugged, "TxEventStop", "EVConnected")
    counters = wait_until(lambda: (c := bridge.status()["mcu_link"]["counters"])["continuity_assumed"] and c, 5,
                          "the status to count the levels kept")
    assert counters["continuity_assumed"] >= 2 and counters["untimed_edges"] == 0
    assert f"EVConnected still true after the MCU reboot ({label}): continuity assumed" in bridge.log_text()


def test_a_warm_reboot_times_a_level_whose_edge_was_lost_by_the_mcus_age(broker, sim, bridge):
    caught_up(bridge, sim)
    bridge.stop()
    edges = run(sim, "plug-connector", {"evse_id": 2})  # while the bridge is down: only in the MCU's ring...
    reboot = sim.command("link-reboot", {"warm": True})[1]  # ...which this reboot loses (keep_ring false)
    assert reboot["lost"] == 1 and reboot["edges"] == []
    bridge.start()
    caught_up(bridge, sim)
    with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port)) as client:
        request_id, answer = ask(client, "TxEventStart", "EVConnected", evse_id=2)
    note = journal_note(bridge, request_id)
    assert "time from the MCU's level report" in note, note  # a warm boot kept the edge's time
    bound_us = round(float(note.split("mapping error bound ")[1].split(" ms")[0]) * 1000)
    assert abs(parse_us(answer) - parse_us(edge(edges, "TxEventStart", "EVConnected", 2))) <= bound_us + TRUNCATION_US


def test_the_last_record_of_a_session_lost_on_the_line_is_applied_within_2_s(broker, sim, bridge):
    run(sim, "plug-connector")
    caught_up(bridge, sim)
    assert sim.command("link-corrupt-frames", {"count": 1})[0] == 200
    mark = len(bridge.log_text())
    unplugged = run(sim, "unplug-connector")  # its one record, EV_CONNECTED 0, is damaged on the line
    sent = time.monotonic()
    stop = edge(unplugged, "TxEventStop", "EVConnected")
    bridge.wait_log(f"EVSE 1 EVConnected TxEventStop at {stop}", timeout=LOST_RECORD_DEADLINE_S, start=mark)
    assert time.monotonic() - sent <= LOST_RECORD_DEADLINE_S
    with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port)) as client:
        assert ask(client, "TxEventStop", "EVConnected")[1] == stop
    counters = wait_until(lambda: (c := bridge.status()["mcu_link"]["counters"])["keepalive_gaps"] and c, 5,
                          "the status to count the lost record")  # (status.json is refreshed each second)
    assert counters["crc_errors"] == 1 and counters["keepalive_gaps"] == 1 and counters["lost_records"] == 0


def test_an_mcu_of_protocol_version_1_is_accepted_with_reduced_guarantees(broker, tmp_path):
    with start_sim(tmp_path / "v1", extra_args=["--protocol-version", "1"]) as old:
        bridge = BridgeProcess(tmp_path / "b-v1", broker_port=broker.port, serial_url=str(old.pty_link))
        bridge.start()
        try:
            edges = run(old, "parking-bay-occupied") + run(old, "start-session")
            caught_up(bridge, old)
            reboot = old.command("link-reboot", {"warm": True})[1]
            assert {r["type"] for r in reboot["records"]} == {"SIGNAL"}  # how version 1 re-reports its 1s
            caught_up(bridge, old)
            with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port)) as client:
                for reason in ("EVConnected", "ParkingBayOccupancy", "PowerPathClosed", "EnergyTransfer"):
                    request_id, answer = ask(client, "TxEventStart", reason)
                    assert answer == edge(edges, "TxEventStart", reason), reason  # re-reports are no edges
                assert "(MCU protocol v1)" in journal_note(bridge, request_id)
            assert bridge.status()["mcu_link"]["protocol_version"] == 1
            assert "speaks serial protocol v1, the bridge v2: accepted with reduced guarantees" in bridge.log_text()
            shown = bridge.cli("status").stdout
            assert "protocol v1 (OLD: reduced guarantees" in shown, shown
        finally:
            bridge.stop()
