"""The HTTP API in a process of its own (issue 12 item 6), against the real daemon, mosquitto and the sim.

It answers from a process other than the daemon's; a stopped API process leaves get_event_timestamp
answered; a killed one is started again by the daemon and answers again; a daemon killed with
SIGKILL leaves no API process behind, and one stopped with SIGTERM stops it; SIGHUP's log level
reaches it; a port in use is still the daemon's one-line start-up error.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

from josev_bridge.adapters.log_output import level_of
from josev_bridge.api.supervisor import bind_listener
from josev_bridge.config import MqttConfig
from josev_bridge.harness.bridge_process import BridgeProcess, write_config
from josev_bridge.harness.waiting import process_gone, wait_until
from josev_bridge.request_client import RequestClient

IDENTITY = "test-charger"
QUESTION = {"event_type": "TxEventStart", "trigger_reason": "EVConnected"}


def get(bridge: BridgeProcess, timeout: float = 10.0) -> int | None:
    """The status of one GET /api/ocpp-messages, or None when nothing answered."""
    request = urllib.request.Request(bridge.api_url(f"/api/ocpp-messages?chargerId={IDENTITY}"),
                                     headers={"Authorization": f"Bearer {bridge.api_token()}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            json.loads(response.read())
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def parent_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no PPid for {pid}")


def test_the_api_answers_from_its_own_process_and_a_stopped_one_does_not_hold_up_answers(broker, sim, bridge):
    child = bridge.api_pid()
    assert child != bridge.proc.pid and parent_of(child) == bridge.proc.pid
    assert b"josev_bridge.api" in Path(f"/proc/{child}/cmdline").read_bytes()
    assert get(bridge) == 200
    assert sim.command("plug-connector", {"evse_id": 1})[0] == 200
    bridge.wait_log("EVSE 1 EVConnected TxEventStart", timeout=15)

    result: dict = {}
    os.kill(child, signal.SIGSTOP)  # the API process frozen: its pages cannot be served by anyone else
    try:
        page = threading.Thread(target=lambda: result.update(status=get(bridge, timeout=30)), daemon=True)
        page.start()
        with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port)) as client:
            answered = client.send("get_event_timestamp", QUESTION, timeout=10)
        assert answered.response is not None  # the answer path does not need the API process
        page.join(0.5)  # the daemon would have served this page in milliseconds
        assert page.is_alive() and not result
    finally:
        os.kill(child, signal.SIGCONT)
    page.join(30)
    assert result == {"status": 200}  # it waited in the listen backlog, then the API process answered


def test_a_killed_api_process_is_started_again_and_the_api_answers_again(bridge):
    first = bridge.api_pid()
    offset = len(bridge.log_text())
    os.kill(first, signal.SIGKILL)
    bridge.wait_log(f"API process (pid {first}) killed by SIGKILL", timeout=15, start=offset)
    second = bridge.api_pid(other_than=first)
    assert parent_of(second) == bridge.proc.pid and process_gone(first)
    assert wait_until(lambda: get(bridge) == 200, 15, "the API to answer again")
    api = wait_until(lambda: (a := bridge.status()["api"])["restarts"] == 1 and a, 10, "the restart in status")
    assert api["last_exit"] == "killed by SIGKILL" and api["pid"] == second and api["up"]
    status = bridge.cli("status", "--wide")  # long lines unwrapped
    assert f"process {second} up, restarted 1 time(s), last exit: killed by SIGKILL" in status.stdout, status
    warnings = [line for line in bridge.log_text()[offset:].splitlines() if level_of(line) == "WARNING"]
    assert len(warnings) == 1, warnings  # one clear line per crash


def test_a_daemon_killed_with_sigkill_leaves_no_api_process_behind(bridge):
    child = bridge.api_pid()
    port = int(bridge.status()["api"]["listen"].rsplit(":", 1)[1])
    bridge.kill()
    wait_until(lambda: process_gone(child), 15, "the API process to exit after its daemon")
    bind_listener("127.0.0.1", port).close()  # nobody listens on the API's port any more


def test_a_daemon_stopped_with_sigterm_stops_its_api_process(bridge):
    child = bridge.api_pid()
    assert bridge.stop() == 0
    assert process_gone(child)  # the daemon waited for it before exiting
    assert "API process" not in bridge.log_text()  # a requested stop is not reported as a crash
    assert "Fatal Python error" not in bridge.log_text()  # nor ends in an abort at interpreter shutdown


def test_a_unit_stop_that_signals_both_processes_is_not_reported_as_a_crash(bridge):
    """systemd's KillMode=control-group sends SIGTERM to every process of the unit at once. The worst
    case for the daemon's supervision: the API process has already exited when the daemon wakes to
    its own SIGTERM (the daemon is held stopped meanwhile, so no scheduling can reorder it)."""
    child, daemon = bridge.api_pid(), bridge.proc.pid
    os.kill(daemon, signal.SIGSTOP)
    try:
        os.kill(child, signal.SIGTERM)
        wait_until(lambda: process_gone(child), 15, "the API process to exit")
        os.kill(daemon, signal.SIGTERM)
    finally:
        os.kill(daemon, signal.SIGCONT)
    assert bridge.proc.wait(15) == 0
    assert process_gone(child)
    assert "API process (pid" not in bridge.log_text()  # no "killed by", no "starting it again"


def test_sighup_passes_the_new_log_level_to_the_api_process(make_bridge):
    bridge = make_bridge(logging={"level": "INFO"})
    bridge.start()
    bridge.api_pid()
    request_line = 'DEBUG josev_bridge.api: 127.0.0.1 "GET /api/ocpp-messages'
    assert get(bridge) == 200 and request_line not in bridge.log_text()  # logged (or not) before the answer
    write_config(bridge.config, {**bridge.sections, "logging": {"level": "DEBUG"}})
    offset = len(bridge.log_text())
    bridge.proc.send_signal(signal.SIGHUP)
    bridge.wait_log("configuration reloaded", timeout=15, start=offset)
    assert wait_until(lambda: get(bridge) == 200 and request_line in bridge.log_text()[offset:], 15,
                      "the API process's DEBUG line")


def test_a_port_in_use_is_still_the_daemons_one_line_refusal_and_names_the_address(tmp_path, broker, sim):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        bridge = BridgeProcess(tmp_path / "bridge", broker_port=broker.port, serial_url=str(sim.pty_link),
                               extra={"api": {"listen": listen}})
        r = subprocess.run([sys.executable, "-m", "josev_bridge", "run", "--config", str(bridge.config)],
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 1  # may heal by itself: systemd tries again
    errors = [line for line in r.stderr.splitlines() if level_of(line) == "ERROR"]
    assert len(errors) == 1, r.stderr
    assert errors[0].endswith(f"cannot start: the API address {listen} ([api] listen in {bridge.config}) is in use "
                              "by another process; stop it or change [api] listen"), r.stderr
    assert "Traceback" not in r.stderr
