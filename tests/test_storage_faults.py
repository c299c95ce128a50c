"""Storage faults without root: a full database (SQLite's max_page_count), random bytes in JSON state,
damage checks that must not fire on a healthy file. The tmpfs versions are in tests/e2e/test_damaged_storage.py."""

from __future__ import annotations

import os
import sqlite3
import uuid

import pytest

from josev_bridge.adapters.alert_store import AlertStore
from josev_bridge.adapters.damage import header_problem
from josev_bridge.adapters.device_model_store import DeviceModelStore, load_definitions
from josev_bridge.adapters.journal_store import JournalStore
from josev_bridge.adapters.state_file import AtomicJsonFile
from josev_bridge.core.device_model import Source
from josev_bridge.core.journal_entry import Direction, JournalEntry
from josev_bridge.messages import Message
from josev_bridge.services.device_model_sync import DeviceModelSync

FLAG = ("JOSEV_CTRLR", "EnableGetEventTimestampRequest")


def full(store: DeviceModelStore) -> str:
    """No room left: the file may not grow (SQLite's max_page_count) and its last page is filled by
    changes until a write fails with SQLITE_FULL, as on a full disk. Returns the flag's value then."""
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count={pages}")
    for i in range(1000):
        try:
            store.set(*FLAG, "true" if i % 2 else "false", source=Source.LOCAL, user="filler")
        except sqlite3.OperationalError as exc:
            assert "full" in str(exc)
            return store.get(*FLAG).value
    raise AssertionError("the database never became full")


def request(value: str) -> Message:
    return Message(str(uuid.uuid4()), "set_variable_validate", "request",
                   {"attribute_value": value, "attribute_type": "Actual", "component": {"name": FLAG[0]},
                    "variable": {"name": FLAG[1]}})


def test_set_variable_validate_on_a_full_disk_is_answered_rejected(tmp_path):
    store = DeviceModelStore(tmp_path, load_definitions())
    store.seed_defaults()
    sync = DeviceModelSync(store)
    before = full(store)
    other = "false" if before == "true" else "true"
    outcome = sync.handle(request(other))
    assert outcome.response == {"result": "rejected"} and "full" in outcome.note
    assert store.get(*FLAG).value == before  # nothing half-applied
    store._db.execute("PRAGMA max_page_count=1073741823")  # space again: the connection is usable (no open tx)
    assert sync.handle(request(other)).response == {"result": "accepted"}
    assert store.get(*FLAG).value == other


def test_state_file_of_random_bytes_is_moved_aside_naming_the_file(tmp_path, caplog):
    path = tmp_path / "edges.json"
    path.write_bytes(os.urandom(1024) + b"\xff")
    f = AtomicJsonFile(path, loses="the stored edges")
    assert f.load() is None
    assert list(tmp_path.glob("edges.json.corrupt-*")) and not path.exists()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and str(path) in errors[0] and "the stored edges" in errors[0]


def test_a_healthy_journal_with_a_pending_wal_is_not_called_truncated(tmp_path):
    """After a power cut mid-checkpoint the file can be shorter than its header says; SQLite finishes
    the checkpoint from the WAL, so that is not damage while the WAL is there."""
    path = tmp_path / "journal.sqlite"
    store = JournalStore(path)
    store.insert(JournalEntry(i, Direction.IN, "x", payload={"p": "x" * 200}) for i in range(2000))
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    size = path.stat().st_size
    assert header_problem(path) is None
    os.truncate(path, size // 2)
    assert "truncated" in header_problem(path)
    (tmp_path / "journal.sqlite-wal").write_bytes(b"\0" * 32)  # a WAL is pending: SQLite decides
    assert header_problem(path) is None


@pytest.mark.parametrize("name", ["journal.sqlite", "alerts.sqlite", "device_model.sqlite"])
def test_a_healthy_database_is_opened_in_place(tmp_path, name):
    if name == "alerts.sqlite":  # with a WITHOUT ROWID row: SQLite 3.40's quick_check calls it damaged
        AlertStore(tmp_path / name).close()
        with sqlite3.connect(tmp_path / name) as db:
            db.execute("INSERT INTO alerts (episode_id, type, start_us, end_us, muted, alert) "
                       "VALUES ('e', 'lowBattery', 1, NULL, 0, '{}')")
            db.execute("INSERT INTO alert_recipients (alert_id, recipient_id) VALUES (1, 2)")
        AlertStore(tmp_path / name, repair=True).close()
    elif name == "journal.sqlite":
        JournalStore(tmp_path / name).close()
        JournalStore(tmp_path / name, repair=True).close()
    else:
        store = DeviceModelStore(tmp_path, load_definitions())
        store.seed_defaults()
        store.set(*FLAG, "false", source=Source.LOCAL, user="alice")
        store.close()
        again = DeviceModelStore(tmp_path, load_definitions(), repair=True)
        assert again.salvage is None and again.get(*FLAG).value == "false"
    assert not list(tmp_path.glob("*.corrupt-*"))
