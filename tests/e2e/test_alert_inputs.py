"""Faults and EV status end to end: the simulator's FAULT and EV_STATUS records cross a real pty to
the real bridge process, in order, once, on the UTC time line (checked via status and the log)."""

from __future__ import annotations

import json
import re

from josev_bridge.core.timestamps import format_us, parse_us
from josev_bridge.harness.waiting import wait_until

TOLERANCE_US = 2000
TIMESTAMP = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"


def link_counters(bridge) -> dict:
    """The MCU link counters of `josev-bridge status --json`; {} until the bridge wrote a fresh status."""
    doc = json.loads(bridge.cli("status", "--json").stdout)
    return doc["status"]["mcu_link"]["counters"] if doc["ok"] and doc["status"] else {}


def clock_mapped(bridge) -> bool:
    """The bridge maps the MCU's clock: records from now on are timed (before it, they count as untimed)."""
    doc = json.loads(bridge.cli("status", "--json").stdout)
    return bool(doc["status"] and doc["status"]["mcu_link"]["clock"])


def near(text: str, true_us: int) -> bool:
    return abs(parse_us(text) - true_us) <= TOLERANCE_US


def test_fault_and_ev_status_reach_the_bridge_in_order_even_through_a_damaged_frame(sim, bridge):
    wait_until(lambda: clock_mapped(bridge), 30, "the MCU clock mapped")  # a loaded machine may start slowly
    assert sim.command("plug-connector")[0] == 200
    true_now = sim.status()["clock"]["true_us"]
    departure = format_us(true_now + 2 * 3_600_000_000)
    status, ev = sim.command("ev-status", {"soc_percent": 62.5, "battery_capacity_wh": 77_000,
                                           "departure_time": departure})
    assert status == 200 and [r["type"] for r in ev["records"]] == ["EV_STATUS"]
    assert sim.command("link-corrupt-frames", {"count": 1})[0] == 200  # the raised FAULT's frame is damaged...
    status, raised = sim.command("inject-fault", {"error_code": "GroundFailure", "vendor_error_code": "GF-12",
                                                  "info": "31 mA"})
    assert status == 200 and [r["type"] for r in raised["records"]] == ["FAULT"]
    status, cleared = sim.command("clear-fault", {})  # ...the next record shows the gap: replayed
    assert status == 200 and [r["type"] for r in cleared["records"]] == ["FAULT"]

    counters = wait_until(lambda: (c := link_counters(bridge)).get("faults") == 2 and c, 20,
                          "both FAULT records in the bridge's status")
    assert (counters["ev_status"], counters["lost_records"], counters["record_errors"],
            counters["untimed_records"], counters["alert_listener_errors"]) == (1, 0, 0, 0, 0)
    assert counters["crc_errors"] >= 1 and counters["records"] == 4  # EV_CONNECTED, EV_STATUS, 2 FAULTs

    log = bridge.wait_log("fault GroundFailure cleared")
    up = re.search(r"EVSE 1 connector 1 fault GroundFailure raised vendor code 'GF-12' info '31 mA' at "
                   + TIMESTAMP, log)
    down = re.search(r"EVSE 1 connector 1 fault GroundFailure cleared vendor code 'GF-12' at " + TIMESTAMP, log)
    assert up and down and up.start() < down.start()  # in seq order, each once
    assert log.count("fault GroundFailure raised") == 1
    assert near(up.group(1), raised["records"][0]["true_time_us"])
    assert near(down.group(1), cleared["records"][0]["true_time_us"])
    status_line = re.search(r"EVSE 1 connector 1 EV status at " + TIMESTAMP + r": SoC 62.5 %, power 0 W, "
                            r"capacity 77000 Wh, departure " + TIMESTAMP + r" \(ev\)", log)
    assert status_line, log[-3000:]
    assert near(status_line.group(1), ev["records"][0]["true_time_us"])
    assert near(status_line.group(2), parse_us(departure))  # mapped from the MCU clock like every time
