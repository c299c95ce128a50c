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

import pytest

from josev_bridge.adapters.alert_store import AlertStore
from josev_bridge.adapters.journal_store import JournalStore
from josev_bridge.core.alerts import Alert, AlertType, SessionErrorDetails
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


def test_dm_tables_fit_80_columns(config):
    dm = cli("dm", "list", "--config", config)
    assert dm.returncode == 0 and all(len(line) <= 80 for line in dm.stdout.splitlines()), dm.stdout
    assert "EventTimestampTriggerReasonsSupported" in dm.stdout and "…" in dm.stdout
    assert "DataSigned" in cli("dm", "list", "--wide", "--config", config).stdout
    cli("dm", "set", "JOSEV_CTRLR", "EnableGetEventTimestampRequest", "false", "--config", config)
    history = cli("dm", "history", "--config", config).stdout.splitlines()
    assert all(len(line) <= 80 for line in history) and "true -> false" in history[2], history


def test_dm_set_to_the_value_it_has_is_unchanged_and_records_nothing(config):
    base = ("JOSEV_CTRLR", "EnableGetEventTimestampRequest")
    before = cli("dm", "history", "--json", "--config", config).stdout.splitlines()
    same = cli("dm", "set", *base, "true", "--config", config)
    assert same.returncode == 0 and "unchanged (already true, source default); nothing recorded" in same.stdout
    assert cli("dm", "reset", *base, "--config", config).stdout.endswith("nothing recorded\n")
    assert cli("dm", "history", "--json", "--config", config).stdout.splitlines() == before
    changed = cli("dm", "set", *base, "false", "--config", config)
    assert "true -> false" in changed.stdout
    assert len(cli("dm", "history", "--json", "--config", config).stdout.splitlines()) == len(before) + 1
