"""The technician's commands against a running bridge (issue 15, section 2): `status` gives its verdict
first, with reasons and the MCU clock in words; `status --config` never passes another bridge's status
off as its own; `request` says why no answer came; SIGHUP names every section that needs a restart.

One broker, one simulator (MCU clock 5 h 02 min behind UTC) and one bridge serve the whole module:
starting them costs more than every check here together. Each test leaves them as it found them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from josev_bridge.harness.bridge_process import BridgeProcess, write_config
from josev_bridge.harness.broker import Mosquitto
from josev_bridge.harness.waiting import wait_until
from josev_bridge.sim.launcher import start_sim

OFFSET_S = -(5 * 3600 + 2 * 60)  # the MCU clock 5 h 02 min behind UTC


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    work = tmp_path_factory.mktemp("technician")
    with Mosquitto(work / "broker") as broker, \
            start_sim(work / "sim", extra_args=["--clock-offset-s", str(OFFSET_S)]) as sim:
        bridge = BridgeProcess(work / "bridge", broker_port=broker.port, serial_url=str(sim.pty_link),
                               extra={"serial": {"mcu_silence_timeout": 1.0}}, log_level="INFO")
        bridge.start()
        sim.command("plug-connector")
        bridge.wait_log("EVConnected TxEventStart")
        try:
            yield broker, sim, bridge
        finally:
            bridge.stop()


def answering(bridge: BridgeProcess):
    r = bridge.cli("status", "--wide")
    return r if r.returncode == 0 and r.stdout.startswith("answering\n") else None


def test_status_verdict_first_the_clock_in_words_and_a_silent_link_is_not_ok(rig):
    broker, sim, bridge = rig
    ok = wait_until(lambda: answering(bridge), 10, "status: answering")
    (clock,) = [line for line in ok.stdout.splitlines() if line.startswith("MCU clock")]
    assert "  5 h 02 min behind UTC, drift: " in clock and ", mapping error bound " in clock
    assert "vs host monotonic" not in ok.stdout
    sim.command("link-silence", {"seconds": 4})
    silent = wait_until(lambda: (r := bridge.cli("status")).returncode == 1 and r, 5, "status: the silence")
    assert silent.stdout.startswith("degraded: MCU link silent"), silent.stdout
    doc = json.loads(bridge.cli("status", "--json").stdout)
    assert doc["ok"] is False and doc["verdict"]["state"] == "degraded"
    wait_until(lambda: answering(bridge), 10, "status: answering again after the silence")


def test_status_with_another_bridges_config_does_not_show_this_bridges_status(rig, tmp_path):
    broker, sim, bridge = rig
    mine = write_config(tmp_path / "mine.toml", {
        "serial": {"url": "/dev/null"},
        "paths": {"state_dir": str(tmp_path / "mine-state"), "runtime_dir": str(bridge.workdir / "run")}})
    r = subprocess.run([sys.executable, "-m", "josev_bridge", "status", "--config", str(mine)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1
    assert r.stdout.startswith("not answering: no status of this bridge: ")
    assert f"state_dir {(bridge.workdir / 'state').resolve()}" in r.stdout
    assert "give each bridge its own [paths] runtime_dir" in r.stdout
    assert "pid" not in r.stdout  # none of the other bridge's figures


def request(bridge, event_type, reason):
    return bridge.cli("request", "get-event-timestamp", "--event-type", event_type, "--trigger-reason", reason,
                      "--timeout", "0.5")


def test_request_says_why_no_answer_came(rig):
    broker, sim, bridge = rig
    no_edge = request(bridge, "TxEventStop", "EVConnected")
    assert no_edge.returncode == 1
    assert "the bridge stayed silent: NoEventRecorded, no TxEventStop/EVConnected edge recorded by the MCU" \
        in no_edge.stderr
    no_stop = request(bridge, "TxEventStop", "DataSigned")
    assert "NotSupported, DataSigned has no stop event" in no_stop.stderr
    assert bridge.cli("dm", "set", "JOSEV_CTRLR", "EnableGetEventTimestampRequest", "false").returncode == 0
    try:
        flag_off = request(bridge, "TxEventStart", "EVConnected")
        assert "NotSupported, JOSEV_CTRLR.EnableGetEventTimestampRequest is false" in flag_off.stderr
        assert "turn it on: josev-bridge dm set JOSEV_CTRLR EnableGetEventTimestampRequest true" in flag_off.stderr
    finally:
        bridge.cli("dm", "reset", "JOSEV_CTRLR", "EnableGetEventTimestampRequest")


def test_sighup_names_every_section_that_needs_a_restart(rig):
    broker, sim, bridge = rig
    sections = {k: dict(v) for k, v in bridge.sections.items()}
    sections["api"]["rate_limit_per_s"] = 999.0
    sections["journal"] = {"max_age_days": 7}
    sections["get_event_timestamp"] = {"reply_with_current_time_when_unknown": False}
    sections["logging"] = {"level": "DEBUG"}
    write_config(bridge.config, sections)
    mark = len(bridge.log_text())
    try:
        bridge.proc.send_signal(signal.SIGHUP)
        log = bridge.wait_log("configuration reloaded", start=mark)
        assert "reload: [journal], [api] changed; not applied until a restart" in log, log
        assert "applied: [logging]" in log  # [get_event_timestamp] as written equals the default: not a change
        assert "[charger]" not in log
    finally:
        write_config(bridge.config, bridge.sections)
        mark = len(bridge.log_text())
        bridge.proc.send_signal(signal.SIGHUP)
        bridge.wait_log("configuration reloaded", start=mark)


def test_request_when_the_bridge_is_not_running_says_so(rig):
    broker, sim, bridge = rig  # last in the module: it stops the bridge
    bridge.stop()
    r = request(bridge, "TxEventStart", "EVConnected")
    assert r.returncode == 1 and "no answer within 0.5 s: the bridge is not running" in r.stderr
