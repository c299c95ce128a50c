"""The shipped units' system-call filters let the bridge and the simulator do what they do.

The units (systemd/josev-bridge.service, josev-bridge-sim.service) kill the process with SIGSYS on a
system call outside the filter. `systemd-analyze verify` reads the syntax, not whether the daemon's
calls pass, and no test here runs under systemd. So: the daemon and its API process run under strace
through a session that touches every path of a normal day (start-up, the MCU's records and clock
probes, answers, journal and retention, API pages, SIGHUP, the host clock check, a clean stop), and
every call they make must be in the set the unit's SystemCallFilter= lines and Protect*= settings
leave allowed, groups expanded by this machine's `systemd-analyze syscall-filter`. The same for the
simulator, traced while a bridge talks to it and a technician drives it over its control API.

Name-level only: the filters that look at arguments (RestrictNamespaces, MemoryDenyWriteExecute,
RestrictSUIDSGID, RestrictRealtime, LockPersonality) are not checked here; nor are paths this session
does not take (TLS, export, a serial port that disappears).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from functools import cache
from pathlib import Path

import pytest

from josev_bridge.config import MqttConfig
from josev_bridge.harness.bridge_process import BridgeProcess
from josev_bridge.harness.unit_file import parse_unit
from josev_bridge.harness.waiting import wait_until
from josev_bridge.request_client import RequestClient
from josev_bridge.sim.launcher import launch_sim

UNITS = Path(__file__).resolve().parents[2] / "systemd"
YES = {"yes", "true", "on", "1"}
# Made only as root, which the unit never runs the bridge as (User=josev-bridge): SQLite gives its
# journal files the database's owner, and the device-model store hands a file root created to the
# state directory's owner. This test machine runs the bridge as root.
AS_ROOT_ONLY = {"chown", "fchown", "fchownat", "lchown"}
# What the Protect*= settings deny by name (systemd.exec(5)), beyond SystemCallFilter=.
PROTECT_DENIES = {"ProtectClock": ["@clock"], "ProtectKernelModules": ["@module"],
                  "ProtectKernelLogs": ["syslog"], "ProtectHostname": ["sethostname", "setdomainname"]}


@cache
def expand(name: str) -> frozenset[str]:
    """A system call, or a group (@...) expanded recursively by systemd-analyze."""
    if not name.startswith("@"):
        return frozenset({name})
    out = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True, check=True)
    members: set[str] = set()
    for line in out.stdout.splitlines()[1:]:
        item = line.strip()
        if item and not item.startswith("#"):
            members |= expand(item)
    return frozenset(members)


def allowed_by(unit: Path) -> frozenset[str]:
    """The calls the unit lets through: its first SystemCallFilter= line is an allow list (the unit's
    comments say so), later lines add (or with ~, remove) in order; Protect*= settings deny more."""
    service = parse_unit(unit)["Service"]
    lines = service["SystemCallFilter"]
    assert not lines[0].startswith("~"), "the first SystemCallFilter= line must be the allow list"
    allowed: set[str] = set()
    for line in lines:
        deny = line.startswith("~")
        names = set().union(*(expand(n) for n in line.lstrip("~").split()))
        allowed = allowed - names if deny else allowed | names
    for setting, denied in PROTECT_DENIES.items():
        if (service.get(setting) or ["no"])[-1] in YES:
            allowed -= set().union(*(expand(n) for n in denied))
    return frozenset(allowed)


def traced_calls(summary: Path) -> set[str]:
    """System call names from `strace -c` output (the last column of each row)."""
    calls = set()
    for line in summary.read_text().splitlines():
        fields = line.split()
        if fields and fields[0][0].isdigit() and fields[-1] != "total":
            calls.add(fields[-1])
    return calls


def strace(summary: Path) -> list[str]:
    if shutil.which("strace") is None or shutil.which("systemd-analyze") is None:
        pytest.skip("needs strace and systemd-analyze (make system-deps installs both)")
    if subprocess.run(["strace", "-f", "-qq", "-o", os.devnull, "true"], capture_output=True).returncode:
        pytest.skip("strace cannot trace here (ptrace refused: a container's seccomp or yama)")
    return ["strace", "-f", "-qq", "-c", "-o", str(summary)]


def refused_by(unit: Path, summary: Path) -> list[str]:
    calls = traced_calls(summary)
    assert {"execve", "openat"} <= calls, summary.read_text()  # the trace is real
    if os.geteuid() == 0:
        calls -= AS_ROOT_ONLY
    return sorted(calls - allowed_by(unit))


def only_child(pid: int) -> int:
    """The process a wrapper (strace) started."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


@pytest.fixture
def traced_bridge(tmp_path, broker, sim):
    summary = tmp_path / "strace-summary.txt"
    bridge = BridgeProcess(tmp_path / "bridge", broker_port=broker.port, serial_url=str(sim.pty_link),
                           command=[*strace(summary), sys.executable, "-m", "josev_bridge"],
                           extra={"journal": {"max_age_days": 30}})
    bridge.start(timeout=60)
    yield bridge, summary
    bridge.stop()


def test_every_call_of_a_days_work_passes_the_units_filter(traced_bridge, broker, sim):
    bridge, summary = traced_bridge
    daemon = bridge.status()["pid"]
    assert sim.command("plug-connector", {"evse_id": 1})[0] == 200
    bridge.wait_log("EVSE 1 EVConnected TxEventStart", timeout=30)
    with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port)) as client:
        for _ in range(5):
            assert client.send("get_event_timestamp", {"event_type": "TxEventStart",
                                                        "trigger_reason": "EVConnected"}, timeout=30).response
    request = urllib.request.Request(bridge.api_url("/api/ocpp-messages?chargerId=test-charger&limit=50"),
                                     headers={"Authorization": f"Bearer {bridge.api_token()}"})
    with urllib.request.urlopen(request, timeout=30) as page:
        assert page.status == 200
    passes = bridge.status()["journal"]["retention_passes"]
    os.kill(daemon, signal.SIGHUP)
    bridge.wait_log("configuration reloaded from", timeout=30)
    wait_until(lambda: bridge.status()["journal"]["retention_passes"] > passes, 30, "an age-retention pass")
    os.kill(daemon, signal.SIGTERM)  # the daemon, not strace: a clean stop, API process included
    assert bridge.proc.wait(60) == 0  # strace exits with its tracee's status, after writing the summary

    assert "clock_adjtime" in traced_calls(summary) or "adjtimex" in traced_calls(summary)  # the clock was read
    refused = refused_by(UNITS / "josev-bridge.service", summary)
    assert not refused, f"the unit's filter would kill the bridge (SIGSYS) at: {', '.join(refused)}"


def test_every_call_of_the_simulator_passes_its_units_filter(tmp_path, broker):
    summary = tmp_path / "strace-summary.txt"
    sim = launch_sim(tmp_path / "sim", wrapper=strace(summary), ready_timeout=60)
    try:
        bridge = BridgeProcess(tmp_path / "bridge", broker_port=broker.port, serial_url=str(sim.pty_link))
        bridge.start(timeout=60)
        try:
            assert sim.command("plug-connector", {"evse_id": 1})[0] == 200
            bridge.wait_log("EVSE 1 EVConnected TxEventStart", timeout=30)
            assert sim.command("unplug-connector", {"evse_id": 1})[0] == 200
            bridge.wait_log("EVSE 1 EVConnected TxEventStop", timeout=30)
            assert sim.status()["charger_id"] == sim.charger_id
        finally:
            bridge.stop()
        os.kill(only_child(sim.process.pid), signal.SIGTERM)  # the sim, not strace
        assert sim.process.wait(60) == 0
    finally:
        sim.stop()
    refused = refused_by(UNITS / "josev-bridge-sim.service", summary)
    assert not refused, f"the sim unit's filter would kill the simulator (SIGSYS) at: {', '.join(refused)}"
