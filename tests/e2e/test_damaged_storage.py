"""Damaged, full or read-only storage at start (and a full disk at run time), with the real bridge.

Damaged records (journal, alerts, edges) are moved aside and the bridge answers as usual; a damaged
device model is recovered as far as SQLite can read it and the loss shows in `status`; a read-only
or full state directory stops the start with one line naming the path and the errno.
Read-only and full file systems are real (a small tmpfs, mounted as root); elsewhere those tests skip.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from josev_bridge.adapters.alert_store import AlertStore
from josev_bridge.adapters.device_model_store import DeviceModelStore, load_definitions
from josev_bridge.adapters.journal_store import JournalStore
from josev_bridge.adapters.log_output import level_of
from josev_bridge.config import MqttConfig
from josev_bridge.core.device_model import Source
from josev_bridge.core.journal_entry import Direction, JournalEntry
from josev_bridge.harness.waiting import wait_until
from josev_bridge.request_client import RequestClient

FLAG = ("JOSEV_CTRLR", "EnableGetEventTimestampRequest")


# -- damage, made the way it happens ------------------------------------------------------------------
def real_journal(path: Path) -> None:
    store = JournalStore(path)
    store.insert(JournalEntry(1_700_000_000_000_000 + i, Direction.IN, "get_event_timestamp", "ocpp/cs", f"id{i}",
                              {"event_type": "TxEventStart", "pad": "x" * 100}, None, 500) for i in range(5000))
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


def real_alerts(path: Path) -> None:
    store = AlertStore(path)
    store.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    db.executemany("INSERT INTO alerts (episode_id, type, start_us, end_us, muted, alert) VALUES (?,?,?,?,?,?)",
                   [(str(uuid.uuid4()), "lowBattery", i, i + 1, 0, json.dumps({"pad": "y" * 200}))
                    for i in range(3000)])
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def damage(path: Path, kind: str, make_real) -> None:
    """random: not a database at all; truncated: the second half gone; malformed: pages overwritten."""
    if kind == "random":
        path.write_bytes(os.urandom(64 * 1024))
        return
    make_real(path)
    size = path.stat().st_size
    if kind == "truncated":
        os.truncate(path, size // 2)
    else:
        with path.open("r+b") as f:
            f.seek(size // 2 // 4096 * 4096)
            f.write(os.urandom(3 * 4096))


def ask(broker, timeout=5.0):
    with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port)) as client:
        reply = client.send("get_event_timestamp", {"event_type": "TxEventStart", "trigger_reason": "EVConnected"},
                            timeout=timeout)
    return reply.response["data"]["timestamp"] if reply.response else None


def plug_and_ask(sim, bridge, broker) -> None:
    """The bridge's job, unchanged: the hardware time of a new plug-in."""
    status, body = sim.command("plug-connector")
    assert status == 200
    bridge.wait_log(f"EVConnected TxEventStart at {body['edges'][0]['timestamp']}")
    assert ask(broker) == body["edges"][0]["timestamp"]


def moved_aside(state: Path, name: str) -> list[Path]:
    return sorted(state.glob(f"{name}.corrupt-*"))


def no_traceback(bridge) -> None:
    assert "Traceback" not in bridge.log_text()


# -- journal and alerts: moved aside, new ones work, answers go on ---------------------------------------
def start_on_damaged(make_bridge, sim, broker, name: str, kind: str, make_real) -> tuple:
    """A bridge started on a state_dir whose `name` is damaged (`kind`); it answers; the file went aside."""
    bridge = make_bridge()
    state = bridge.workdir / "state"
    state.mkdir(parents=True)
    damage(state / name, kind, make_real)
    bridge.start()
    plug_and_ask(sim, bridge, broker)
    assert moved_aside(state, name)
    return bridge, state


@pytest.mark.parametrize("kind", ["random", "truncated", "malformed"])
def test_damaged_journal_is_moved_aside_and_the_bridge_answers(broker, sim, make_bridge, kind):
    bridge, _ = start_on_damaged(make_bridge, sim, broker, "journal.sqlite", kind, real_journal)
    rows = wait_until(lambda: [json.loads(line) for line in bridge.cli("messages", "--json").stdout.splitlines()
                               if '"get_event_timestamp"' in line], 5, "the answer in the new journal")
    assert rows[-1]["messageResponse"] and rows[-1]["messageResponse"]["timestamp"]
    no_traceback(bridge)


@pytest.mark.parametrize("kind", ["random", "truncated", "malformed"])
def test_damaged_alert_store_is_moved_aside_and_the_bridge_answers(broker, sim, make_bridge, kind):
    bridge, _ = start_on_damaged(make_bridge, sim, broker, "alerts.sqlite", kind, real_alerts)
    listed = bridge.cli("alerts", "--json")
    assert listed.returncode == 0 and listed.stdout == ""  # a new, empty, readable store
    no_traceback(bridge)


# -- edges.json ----------------------------------------------------------------------------------------
def test_edges_file_of_random_bytes_is_moved_aside_and_the_bridge_answers(broker, sim, make_bridge):
    bridge = make_bridge()
    state = bridge.workdir / "state"
    state.mkdir(parents=True)
    (state / "edges.json").write_bytes(os.urandom(2048))
    bridge.start()
    plug_and_ask(sim, bridge, broker)
    assert moved_aside(state, "edges.json")
    no_traceback(bridge)


# -- device model: recovered as far as it can be, the loss shown ---------------------------------------
def test_device_model_of_random_bytes_falls_back_to_defaults_and_status_names_the_loss(broker, sim, make_bridge):
    bridge = make_bridge()
    state = bridge.workdir / "state"
    state.mkdir(parents=True)
    (state / "device_model.sqlite").write_bytes(os.urandom(16 * 1024))
    bridge.start()
    plug_and_ask(sim, bridge, broker)  # the flag is back at its default, true
    assert moved_aside(state, "device_model.sqlite")
    dm = bridge.status()["device_model"]
    assert dm["recovered_from"] == str(moved_aside(state, "device_model.sqlite")[0])
    assert dm["lost"] == ["JOSEV_CTRLR.EnableGetEventTimestampRequest"]
    shown = bridge.cli("status")
    assert "LOST" in shown.stdout and "JOSEV_CTRLR.EnableGetEventTimestampRequest" in shown.stdout
    no_traceback(bridge)


def test_device_model_with_a_damaged_audit_page_keeps_the_flag_that_was_set(broker, sim, make_bridge):
    bridge = make_bridge()
    state = bridge.workdir / "state"
    state.mkdir(parents=True)
    store = DeviceModelStore(state, load_definitions())
    store.seed_defaults()
    for i in range(150):  # an audit trail of several pages, written after the values' page
        store.set(*FLAG, "true" if i % 2 else "false", source=Source.LOCAL, user="alice")
    store.set(*FLAG, "false", source=Source.LOCAL, user="alice")
    store.close()
    path = state / "device_model.sqlite"
    with path.open("r+b") as f:  # the last page: a leaf of the audit table
        f.seek(path.stat().st_size - 4096)
        f.write(os.urandom(4096))
    bridge.start()
    assert bridge.cli("dm", "get", *FLAG).stdout.strip() == "false"  # recovered, not flipped to the default
    status = bridge.status()
    assert status["get_event_timestamp"]["enabled"] is False
    dm = status["device_model"]
    assert dm["recovered_from"] and dm["lost"] == [] and "JOSEV_CTRLR.EnableGetEventTimestampRequest" in dm["recovered"]
    assert 0 < dm["audit_rows_recovered"] < 152
    no_traceback(bridge)


def test_dm_command_on_a_damaged_file_says_so_in_one_line(make_bridge):
    bridge = make_bridge()
    state = bridge.workdir / "state"
    state.mkdir(parents=True)
    (state / "device_model.sqlite").write_bytes(os.urandom(16 * 1024))
    result = bridge.cli("dm", "get", *FLAG)
    assert result.returncode == 1
    assert str(state / "device_model.sqlite") in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# -- read-only and full file systems (a real tmpfs; root only) ------------------------------------------
@pytest.fixture
def small_fs(tmp_path):
    """Mount a 2 MiB tmpfs at tmp_path/bridge/state; yields it; unmounts. Skips without the privilege."""
    mount_point = tmp_path / "bridge" / "state"
    mount_point.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory: Path) -> None:
    """Write until the file system says ENOSPC."""
    with (directory / "filler").open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def start_expecting_failure(bridge) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "josev_bridge", "run", "--config", str(bridge.config)],
                          capture_output=True, text=True, timeout=30)


def assert_one_line_naming(result: subprocess.CompletedProcess, path: Path, errno_text: str) -> None:
    assert result.returncode != 0  # Restart=on-failure: systemd tries again
    errors = [line for line in result.stderr.splitlines() if level_of(line) == "ERROR"]
    assert len(errors) == 1, result.stderr
    assert str(path) in errors[0] and errno_text in errors[0], errors[0]
    assert "Traceback" not in result.stderr


def test_read_only_state_dir_stops_the_start_with_one_line(small_fs, make_bridge):
    bridge = make_bridge()
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    assert_one_line_naming(start_expecting_failure(bridge), small_fs, "[Errno 30]")


def test_full_state_dir_stops_the_start_with_one_line(small_fs, make_bridge):
    bridge = make_bridge()
    fill(small_fs)
    assert_one_line_naming(start_expecting_failure(bridge), small_fs, "[Errno 28]")


def test_disk_full_at_run_time_rejects_set_variable_validate_and_dm_set_says_why(small_fs, broker, sim, make_bridge):
    bridge = make_bridge()
    bridge.start()
    fill(small_fs)
    with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port, request_topic="josev/cs",
                                  response_topic="cs/josev")) as client:
        reply = client.send("set_variable_validate", {"attribute_value": "false", "attribute_type": "Actual",
                                                      "component": {"name": FLAG[0]}, "variable": {"name": FLAG[1]}},
                            timeout=5.0)
    assert reply.response is not None and reply.response["data"] == {"result": "rejected"}
    result = bridge.cli("dm", "set", *FLAG, "false")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert str(small_fs / "device_model.sqlite") in result.stderr and "[Errno 28]" in result.stderr
    (small_fs / "filler").unlink()
    assert bridge.cli("dm", "get", *FLAG).stdout.strip() == "true"  # nothing was half-applied
    plug_and_ask(sim, bridge, broker)
    no_traceback(bridge)
