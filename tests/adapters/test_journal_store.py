"""The journal in a real SQLite file: paging, retention, a full disk, kill -9 mid-write."""

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from josev_bridge.adapters.journal_retention import RetentionPolicy
from josev_bridge.adapters.journal_store import DUMP_ROWS, JournalStore, _document, position_of
from josev_bridge.core.journal_age import ClockReading
from josev_bridge.core.journal_entry import Direction, JournalEntry, NoAnswer
from josev_bridge.core.journal_query import JournalQuery
from josev_bridge.harness.waiting import wait_until
from josev_bridge.services.journal import Journal

T0 = 1_714_435_200_000_000  # 2024-04-30T00:00:00Z
BIG = RetentionPolicy(max_age_us=10**15, max_bytes=10**9)


def entry(i: int, kind: str = "get_event_timestamp", created_us: int | None = None) -> JournalEntry:
    return JournalEntry(T0 + i * 1000 if created_us is None else created_us, Direction.IN, kind, "ocpp/cs",
                        f"id-{i}", {"event_type": "TxEventStart", "trigger_reason": "EVConnected", "n": i},
                        {"timestamp": "2024-04-30T00:00:00.000Z"}, 1200)


@pytest.mark.parametrize("rows", [1, DUMP_ROWS, DUMP_ROWS + 1, 3 * DUMP_ROWS - 5])
def test_batch_document_encoded_in_parts_is_one_json_array(rows):
    data = [[i, "in", "t", None, f"id-{i}", {"a": [i, "é"]}, "NotSupported", 1.5, None] for i in range(rows)]
    document, count = _document(data)
    assert json.loads(document) == data and count == rows
    document, count = _document(data + [[float("nan")]] + data)  # up to the row JSON cannot carry
    assert json.loads(document) == data and count == rows
    with pytest.raises(ValueError):
        _document([[float("nan")]] + data)


@pytest.mark.parametrize("limit", [100, 1000, 5000, 40_000])
def test_batch_document_holds_what_fits_in_the_limit(limit):
    data = [[i, "in", "t", None, f"id-{i}", {"a": "x" * (i % 300)}, None, None, None] for i in range(3 * DUMP_ROWS)]
    document, count = _document(data, limit)
    assert json.loads(document) == data[:count] and count >= 1
    assert len(document) <= limit or count == 1  # one row always goes, even a big one
    if count < len(data):
        assert len(document) + 1 + len(json.dumps(data[count])) > limit  # and the next row would not have fitted


def query(**kw) -> JournalQuery:
    base = dict(charger_id="c", start_us=T0, end_us=T0 + 10**12, message_types=(), limit=50, after=None)
    return JournalQuery(**{**base, **kw})


def test_round_trip_keeps_every_field(store):
    e = JournalEntry(T0, Direction.IN, "get_event_timestamp", "ocpp/cs", "abc", {"x": [1, "ü"]},
                     NoAnswer.NO_EVENT_RECORDED, None, "why")
    assert store.insert([e]) == 1
    (stored,), more = store.query(query())
    assert stored.entry == e and stored.id == 1 and not more


def test_pages_newest_first_over_several_types_without_gaps_or_repeats(store):
    kinds = ["a", "b", "c"]
    store.insert(entry(i, kinds[i % 3]) for i in range(1000))
    seen, after = [], None
    while True:
        page, more = store.query(query(message_types=("a", "c"), limit=37, after=after))
        seen += page
        if not more:
            break
        after = position_of(page[-1])
    expected = [i for i in reversed(range(1000)) if i % 3 != 1]
    assert [s.entry.correlation_id for s in seen] == [f"id-{i}" for i in expected]


def test_paging_stays_stable_while_new_rows_arrive(store):
    store.insert(entry(i) for i in range(300))
    first, _ = store.query(query(limit=100))
    store.insert(entry(i) for i in range(300, 400))  # newer rows: they must not shift later pages
    second, _ = store.query(query(limit=100, after=position_of(first[-1])))
    assert [s.id for s in first] == list(range(300, 200, -1))
    assert [s.id for s in second] == list(range(200, 100, -1))


def test_time_range_is_inclusive_at_both_ends(store):
    store.insert(entry(i) for i in range(10))
    page, _ = store.query(query(start_us=T0 + 2000, end_us=T0 + 5000))
    assert [s.id for s in page] == [6, 5, 4, 3]


def test_same_created_time_is_ordered_by_id(store):
    store.insert(entry(i, created_us=T0) for i in range(5))
    page, more = store.query(query(limit=2))
    assert [s.id for s in page] == [5, 4] and more
    page, _ = store.query(query(limit=10, after=position_of(page[-1])))
    assert [s.id for s in page] == [3, 2, 1]


def test_ids_are_never_reused_after_everything_was_deleted(store):
    store.insert(entry(i) for i in range(5))
    assert store.delete_oldest(100) == 5
    assert store.insert([entry(9)]) == 6


def test_age_retention_deletes_only_old_rows_of_a_journal_without_clock_marks(store):
    """Rows written without a clock reading (an older version's) age by created_us, while the clock is
    synchronised; with marks, tests/adapters/test_journal_retention.py."""
    store.insert(entry(i, created_us=T0 + i * 3_600_000_000) for i in range(48))  # one per hour
    policy = RetentionPolicy(max_age_us=24 * 3_600_000_000, max_bytes=10**9, batch_rows=10)
    now = T0 + 48 * 3_600_000_000
    while store.enforce_age(policy, ClockReading("boot", 0, now, synchronised=True)):
        pass
    assert store.oldest_id() == 25 and store.count() == 24


@pytest.mark.slow
def test_size_bound_holds_under_a_flood(tmp_path):
    policy = RetentionPolicy(max_age_us=10**15, max_bytes=1 << 20)
    journal = Journal(tmp_path / "j.sqlite", policy)
    journal.start()
    try:
        total = 30_000  # ~10 MB of entries through a 1 MiB bound
        for i in range(total):
            journal.record(entry(i))
            if journal.pending >= 10_000:  # the queue's own byte bound is tested in tests/services/test_journal.py
                wait_until(lambda: journal.pending < 5_000, 30, "the writer to catch up")
        wait_until(lambda: journal.last_id == total and journal.pending == 0, 60, "the flood to be written")
        assert journal.store.file_bytes() <= policy.max_bytes
        assert os.path.getsize(tmp_path / "j.sqlite") <= policy.max_bytes
        assert journal.counters.retained_away > 0 and journal.counters.dropped == 0
    finally:
        journal.stop()
    reader = JournalStore(tmp_path / "j.sqlite", readonly=True)
    page, _ = reader.query(query(limit=1))
    assert page[0].id == total  # the newest survive; the oldest went first
    assert reader.count() == total - reader.oldest_id() + 1  # deleted from the old end only, no holes
    reader.close()


@pytest.mark.slow
@pytest.mark.parametrize("payload_bytes", [50, 8000, 60_000])
def test_size_bound_holds_at_every_insert_whatever_the_entry_size(tmp_path, payload_bytes):
    """A batch (up to 1024 entries) is cut to 1/50 of the bound per insert, so even 60 KB payloads
    never take the file past the bound between two size checks."""
    policy = RetentionPolicy(max_age_us=10**15, max_bytes=1 << 20)
    journal = Journal(tmp_path / "j.sqlite", policy)
    peaks: list[int] = []
    insert_some = journal.store.insert_some

    def measured(entries, max_bytes=None):
        result = insert_some(entries, max_bytes)
        peaks.append(journal.store.file_bytes())  # before this batch's size check can delete anything
        return result

    journal.store.insert_some = measured
    total = min(20_000, max(300, (4 << 20) // payload_bytes))  # 3-18 MB of entries through a 1 MiB bound
    for i in range(total):
        journal.record(JournalEntry(T0 + i, Direction.IN, "t", payload={"x": "y" * payload_bytes}))
    journal.start()
    try:
        wait_until(lambda: journal.last_id == total and journal.pending == 0, 60, "the flood to be written")
    finally:
        journal.stop()
    assert journal.counters.retained_away > 0 and max(peaks) <= policy.max_bytes, max(peaks)


@pytest.mark.slow
def test_a_full_disk_is_logged_and_survived_without_losing_new_entries(tmp_path, caplog):
    journal = Journal(tmp_path / "j.sqlite", BIG)
    journal.start()
    try:
        for i in range(2000):
            journal.record(entry(i))
        wait_until(lambda: journal.last_id == 2000, 20, "the first entries")
        pages = journal.store._db.execute("PRAGMA page_count").fetchone()[0]
        journal.store._db.execute(f"PRAGMA max_page_count={pages}")  # SQLITE_FULL from now on, as on a full disk
        with caplog.at_level(logging.WARNING, logger="josev_bridge.journal"):
            for i in range(2000, 2600):
                journal.record(entry(i))
            wait_until(lambda: journal.last_id == 2600 and journal.pending == 0, 30, "writing to resume")
        assert journal.counters.write_errors >= 1 and journal.counters.dropped == 0 and journal.alive()
        assert any("database or disk is full" in r.getMessage() for r in caplog.records)
        assert any("deleted the" in r.getMessage() for r in caplog.records)
        assert journal.store.after_id(2599)[0].entry.correlation_id == "id-2599"
    finally:
        journal.stop()


WRITER = textwrap.dedent("""
    import sys
    from josev_bridge.adapters.journal_retention import RetentionPolicy
    from josev_bridge.core.journal_entry import Direction, JournalEntry
    from josev_bridge.services.journal import Journal
    j = Journal(sys.argv[1], RetentionPolicy(max_age_us=10**15, max_bytes=10**9))
    j.start()
    i = 0
    while True:
        j.record(JournalEntry(1714435200000000 + i, Direction.IN, "get_event_timestamp", "ocpp/cs", str(i),
                              {"pad": "x" * 200}, {"timestamp": "2024-04-30T00:00:00.000Z"}, 5))
        i += 1
        if i % 500 == 0:
            while j.pending > 5000:
                j._wake.wait(0.001)
""")


@pytest.mark.slow
def test_kill_9_during_heavy_journaling_leaves_a_readable_database_with_every_committed_row(tmp_path):
    path = tmp_path / "j.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
    try:
        def committed() -> int:
            try:
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
                    return db.execute("SELECT COALESCE(MAX(id), 0) FROM journal").fetchone()[0]
            except sqlite3.Error:
                return 0
        seen = wait_until(lambda: (n := committed()) >= 20_000 and n, 60, "20,000 committed rows")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    store = JournalStore(path)  # recovery (WAL replay) happens here, as at the daemon's next start
    assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    last = store.last_id()
    assert last >= seen  # nothing committed before the kill is lost
    assert store.count() == last and store.oldest_id() == 1  # no holes: only an uncommitted tail is gone
    assert store.insert([entry(0)]) == last + 1  # and it takes new rows
    store.close()


@pytest.mark.parametrize("payload", [None, {"a": [1, 2.5, None, True]}, "raw {not json", 7, 2.5, True, False, [],
                                     "ünïcödé \u2028", {"nested": {"deep": "x"}}])
def test_any_json_payload_and_response_come_back_as_they_went_in(store, payload):
    e = JournalEntry(T0, Direction.IN, "t", None, None, payload, payload if payload is not None else NoAnswer.IGNORED)
    store.insert([e])
    (stored,), _ = store.query(query())
    assert stored.entry == e and type(stored.entry.payload) is type(e.payload)


def test_a_payload_json_cannot_carry_takes_the_row_path(store):
    e = JournalEntry(T0, Direction.IN, "t", payload={"x": float("nan")})
    store.insert([e, entry(1)])
    page, _ = store.query(query())
    assert len(page) == 2 and str(page[1].entry.payload["x"]) == "nan"
    assert store.insert([entry(2), e, entry(3)]) == 5  # in the middle of a batch: split around it, in order
    assert [s.entry.correlation_id for s in store.after_id(2)] == ["id-2", None, "id-3"]


@pytest.mark.parametrize("payload", [123456789012345678901234567890, 10**308 * 10, 0.30000000000000004, -0.0,
                                     [1e308, 2**64], {"n": 2**100}])
def test_numbers_are_stored_with_the_digits_they_came_with(store, payload):
    """json_extract would turn an integer past 2^63 into a REAL (and one past a double into 'Inf',
    which no JSON reader takes back, leaving the row unreadable for the API and the export)."""
    store.insert([JournalEntry(1, Direction.IN, "heartbeat", payload=payload, response=NoAnswer.IGNORED)])
    (row,) = store.after_id(0)
    assert row.entry.payload == payload and json.dumps(row.entry.payload) == json.dumps(payload)
