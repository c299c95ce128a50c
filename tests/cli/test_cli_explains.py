"""A command line that explains itself (issue 15, section 2): help, known types, 80-column tables,
`dm set` to the same value, `alerts --follow` closures. The CLI runs as a real subprocess against
real SQLite files, written here with the daemon's own stores (no daemon needed)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from josev_bridge.adapters.alert_store import AlertStore
from josev_bridge.adapters.device_model_store import DeviceModelStore, load_definitions
from josev_bridge.adapters.journal_store import JournalStore
from josev_bridge.cli import parser_for_docs
from josev_bridge.core.alerts import Alert, AlertType, SessionErrorDetails
from josev_bridge.core.device_model import Source
from josev_bridge.core.journal_entry import DEVICE_MODEL_CHANGE, Direction, JournalEntry, NoAnswer
from josev_bridge.harness.bridge_process import write_config

ENV = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}  # a pipe: 80 columns


def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "josev_bridge", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


@pytest.fixture
def config(tmp_path):
    (tmp_path / "state").mkdir()
    return str(write_config(tmp_path / "c.toml", {"serial": {"url": "/dev/null"},
                                                  "paths": {"state_dir": str(tmp_path / "state"),
                                                            "runtime_dir": str(tmp_path / "run")},
                                                  "charger": {"identity": "CP-1"}}))


def now_us() -> int:
    return time.time_ns() // 1000


def commands(parser=None, path=()):
    """Every command and subcommand of the parser, as argv prefixes."""
    import argparse

    parser = parser or parser_for_docs()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from commands(sub, (*path, name))


def test_every_command_has_a_description_examples_and_exit_codes_within_80_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps to the terminal; a technician's is often 80
    names = []
    for path, sub in commands():
        names.append(" ".join(path))
        assert sub.description, f"{path} has no description"
        text = sub.format_help()
        assert "examples:" in text and "exit codes:" in text and "\n  0  " in text, path
        assert all(len(line) <= 80 for line in text.splitlines()), f"{path}: a help line is over 80 columns"
    assert {"run", "check-config", "sim", "status", "dm set", "request get-event-timestamp"} <= set(names)
    r = cli("run", "--help")  # and the installed entry point prints the same
    assert r.returncode == 0 and "Run the bridge in the foreground" in r.stdout


@pytest.mark.parametrize("command,action", [("dm", "history"), ("request", "get-event-timestamp")])
def test_a_command_without_its_action_shows_that_commands_help(command, action):
    r = cli(command)
    assert r.returncode == 2
    assert r.stdout.startswith(f"usage: josev-bridge {command} ") and action in r.stdout


def test_an_unknown_message_type_is_an_error_listing_the_known_ones(config, tmp_path):
    store = JournalStore(tmp_path / "state" / "journal.sqlite")
    store.insert([JournalEntry(now_us(), Direction.IN, "authorize", "ocpp/cs", "a", {}, NoAnswer.IGNORED)])
    r = cli("messages", "--type", "get_event_timestmp", "--config", config)
    assert r.returncode == 2 and r.stdout == ""
    assert "--type get_event_timestmp: no such message type (did you mean get_event_timestamp?)" in r.stderr
    assert "known: device_model_change, get_event_timestamp, mcu_link" in r.stderr
    other = cli("messages", "--type", "authorize", "--config", config)  # another service's name the journal holds
    assert other.returncode == 0 and "authorize" in other.stdout


def test_an_unknown_alert_type_is_an_error_listing_the_known_ones(config):
    r = cli("alerts", "--type", "lowbattery", "--config", config)
    assert r.returncode == 2 and "invalid choice: 'lowbattery'" in r.stderr and "'lowBattery'" in r.stderr


def test_messages_fit_80_columns_and_a_device_model_change_shows_old_and_new(config, tmp_path):
    store = JournalStore(tmp_path / "state" / "journal.sqlite")
    t = now_us() - 60_000_000
    store.insert([
        JournalEntry(t, Direction.IN, "get_event_timestamp", "ocpp/cs", "0b4c2f1e-0000-4000-8000-000000000000",
                     {"event_type": "TxEventStart", "trigger_reason": "ParkingBayOccupancy", "evse_id": 2},
                     {"timestamp": "2026-02-17T10:20:30.123Z"}, 580, note="MCU time, mapping error bound 0.231 ms"),
        JournalEntry(t + 1, Direction.EVENT, DEVICE_MODEL_CHANGE, payload={
            "component": "JOSEV_CTRLR", "variable": "EnableGetEventTimestampRequest", "attribute": "Actual",
            "oldValue": "true", "newValue": "false", "source": "local", "user": "alice (sudo by bob)"})])
    r = cli("messages", "--config", config)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), r.stdout
    (change,) = [line for line in lines if "device_model_change" in line]
    assert "true -> false" in change
    wide = cli("messages", "--wide", "--config", config)
    assert "alice (sudo by bob)" in wide.stdout and "0b4c2f1e-0000-4000-8000-000000000000" in wide.stdout
    assert max(map(len, wide.stdout.splitlines())) > 80


def store_of(config: str) -> DeviceModelStore:
    """The daemon's own store on the CLI's state directory, for what a test sets up or checks."""
    state = Path(config).parent / "state"
    store = DeviceModelStore(state, load_definitions())
    store.seed_defaults()
    return store


@pytest.mark.slow
def test_dm_tables_fit_80_columns(config):
    store_of(config).set("JOSEV_CTRLR", "EnableGetEventTimestampRequest", "false", source=Source.LOCAL,
                         user="alice")
    dm = cli("dm", "list", "--config", config)
    assert dm.returncode == 0 and all(len(line) <= 80 for line in dm.stdout.splitlines()), dm.stdout
    assert "EventTimestampTriggerReasonsSupported" in dm.stdout and "…" in dm.stdout
    history = cli("dm", "history", "--config", config).stdout.splitlines()
    assert all(len(line) <= 80 for line in history) and "true -> false" in history[2], history
    assert "DataSigned" in cli("dm", "list", "--wide", "--config", config).stdout


@pytest.mark.slow
def test_dm_set_to_the_value_it_has_is_unchanged_and_records_nothing(config):
    base = ("JOSEV_CTRLR", "EnableGetEventTimestampRequest")
    store = store_of(config)
    before = store.history(limit=100)
    same = cli("dm", "set", *base, "true", "--config", config)
    assert same.returncode == 0 and "unchanged (already true, source default); nothing recorded" in same.stdout
    assert cli("dm", "reset", *base, "--config", config).stdout.endswith("nothing recorded\n")
    assert store.history(limit=100) == before and store.get(*base).source == "default"
    changed = cli("dm", "set", *base, "false", "--config", config)
    assert "true -> false" in changed.stdout and len(store.history(limit=100)) == len(before) + 1


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], deadline - time.monotonic())
        if ready:
            return proc.stdout.readline()
    raise TimeoutError("no line from alerts --follow")


@pytest.mark.slow
def test_alerts_follow_prints_closures_as_well_as_openings(config, tmp_path):
    store = AlertStore(tmp_path / "state" / "alerts.sqlite")
    start = now_us() - 5_000_000

    def fault(code: str, end_us=None) -> Alert:
        details = SessionErrorDetails("Faulted", code, None, None, None)
        return Alert(AlertType.CHARGING_SESSION_ERROR, 1, 1, start, details,
                     end_us=end_us)

    old = store.record(fault("GroundFailure"), False, (1,))  # open before --follow starts
    proc = subprocess.Popen([sys.executable, "-m", "josev_bridge", "alerts", "--follow", "--json", "--config", config],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        assert json.loads(read_line(proc, 10))["id"] == old  # the listing
        new = store.record(fault("WeakSignal"), False, (1,))
        opened = json.loads(read_line(proc, 5))
        assert opened["id"] == new and opened["endTimestamp"] is None
        store.record(fault("GroundFailure", end_us=start + 2_000_000), False, (1,))
        closed = json.loads(read_line(proc, 5))
        assert closed["id"] == old and closed["endTimestamp"] is not None
    finally:
        proc.terminate()
        proc.wait(5)
