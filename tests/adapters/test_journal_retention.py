"""Age retention in a real SQLite journal when the board's clock steps (issue 14, "nothing lost").

Rows are written as the journal writer writes them (a clock mark, then the insert) under readings
of the host's clocks made up here: boottime never steps, realtime does."""

import sqlite3

from josev_bridge.adapters.journal_retention import RetentionPolicy
from josev_bridge.adapters.journal_store import JournalStore
from josev_bridge.core.journal_age import ClockReading
from josev_bridge.core.journal_entry import Direction, JournalEntry

S = 1_000_000
HOUR, DAY = 3600 * S, 86_400 * S
YEARS_3 = 3 * 365 * DAY
TRUE_OFFSET = 1_714_435_200 * S  # realtime minus boottime of a board whose clock is right
POLICY = RetentionPolicy(max_age_us=30 * DAY, max_bytes=10**9, batch_rows=50)


def at(bt: int, boot: str = "B", offset: int = TRUE_OFFSET, synced: bool | None = False) -> ClockReading:
    return ClockReading(boot, bt, bt + offset, synced)


def write(store: JournalStore, when: ClockReading, n: int = 10, tag: str = "",
          policy: RetentionPolicy = POLICY) -> list[int]:
    """`n` rows made and written at `when` (created_us: the board's UTC then); their ids."""
    store.mark_writes(when, policy.span_us)
    last = store.insert(JournalEntry(when.realtime_us, Direction.IN, "get_event_timestamp", correlation_id=f"{tag}{i}")
                        for i in range(n))
    return list(range(last - n + 1, last + 1))


def retain(store: JournalStore, now: ClockReading, policy: RetentionPolicy = POLICY) -> int:
    """Age retention run to the end, as the writer's passes would; the rows deleted."""
    deleted = total = 0
    while (deleted := store.enforce_age(policy, now)) > 0:
        total += deleted
    return total


def ids(store: JournalStore) -> list[int]:
    return [row[0] for row in store._db.execute("SELECT id FROM journal ORDER BY id")]


def test_rows_written_before_a_three_year_forward_step_survive_it(store):
    behind = write(store, at(60 * S, offset=TRUE_OFFSET - YEARS_3), n=120)  # booted 3 years behind, no NTP yet
    after = write(store, at(90 * S, synced=True))  # NTP stepped the clock: +3 years
    for synced in (True, False, None):
        assert retain(store, at(95 * S, synced=synced)) == 0
    assert ids(store) == behind + after
    # the rows say the time the board had then (nothing is rewritten)
    created = store._db.execute("SELECT created_us FROM journal WHERE id = ?", (behind[0],)).fetchone()[0]
    assert created == TRUE_OFFSET - YEARS_3 + 60 * S


def test_a_backward_step_keeps_no_row_past_the_bound(store):
    """A clock that booted 3 years ahead and stepped back: the rows before the step are truly 31 days
    old by boottime and go, although their UTC says they are years in the future."""
    ahead = write(store, at(HOUR, offset=TRUE_OFFSET + YEARS_3))
    recent = write(store, at(31 * DAY, synced=True))
    assert retain(store, at(31 * DAY + HOUR + 30 * S, synced=True)) == len(ahead)
    assert ids(store) == recent


def test_rows_truly_older_than_the_bound_go_by_boottime_whatever_the_clock_says(store):
    """One batch an hour for 48 hours, the realtime clock jumping about; a bound of 24 hours."""
    policy = RetentionPolicy(max_age_us=DAY, max_bytes=10**9, batch_rows=7)
    offsets = [TRUE_OFFSET + (-1) ** h * (h % 5) * 365 * DAY for h in range(48)]
    hourly = [write(store, at(h * HOUR, offset=offsets[h]), n=3, policy=policy) for h in range(48)]
    assert store.enforce_age(policy, at(48 * HOUR)) == 7  # one bounded step at a time
    retain(store, at(48 * HOUR), policy)
    # the rows of hour h were written before h h + span (864 s); the bound has a 500 ppm margin (43 s)
    assert ids(store) == [i for rows in hourly[24:] for i in rows]


def test_rows_of_an_earlier_boot_of_unknown_age_go_only_under_the_size_bound(tmp_path):
    path = tmp_path / "journal.sqlite"
    store = JournalStore(path)
    never_synced = write(store, at(10 * S, boot="A", offset=TRUE_OFFSET - YEARS_3), n=200)  # no NTP in that boot
    store.close()
    store = JournalStore(path)  # the board rebooted
    new = write(store, at(20 * S, boot="C", synced=True), n=200, tag="new")
    assert retain(store, at(400 * DAY, boot="C", synced=True)) == len(new)  # this boot's rows are old: they go
    assert ids(store) == never_synced  # their age cannot be known: age retention keeps them
    small = RetentionPolicy(max_age_us=POLICY.max_age_us, max_bytes=store.used_bytes() * 10 // 9, batch_rows=50)
    write(store, at(400 * DAY, boot="C", synced=True), n=400, tag="newest")
    assert store.enforce_size(small) > 0  # ... the size bound does, oldest first
    assert ids(store)[0] > never_synced[0] and ids(store)[-1] == never_synced[-1] + 200 + 400
    store.close()


def test_rows_of_an_earlier_boot_age_exactly_once_that_boots_clock_was_synchronised(tmp_path):
    """Boot A wrote rows 3 years behind, then NTP arrived (in A): their true UTC is known after a reboot."""
    path = tmp_path / "journal.sqlite"
    store = JournalStore(path)
    behind = write(store, at(10 * S, boot="A", offset=TRUE_OFFSET - YEARS_3))
    store.note_clock(at(20 * S, boot="A", synced=True))  # the writer notes it at every retention pass
    store.close()
    store = JournalStore(path)
    boot_c = TRUE_OFFSET + 29 * DAY  # rebooted 29 days after A started
    assert retain(store, at(S, boot="C", offset=boot_c, synced=True)) == 0  # A's rows are 29 days old
    assert retain(store, at(2 * DAY, boot="C", offset=boot_c, synced=True)) == len(behind)  # 31 days
    store.close()


def test_a_restart_keeps_the_marks(tmp_path):
    path = tmp_path / "journal.sqlite"
    store = JournalStore(path)
    first = write(store, at(0, offset=TRUE_OFFSET - YEARS_3))
    store.close()
    store = JournalStore(path)  # the daemon restarted, same host boot, the clock stepped meanwhile
    later = write(store, at(10 * S))
    assert retain(store, at(29 * DAY)) == 0
    assert retain(store, at(31 * DAY)) == len(first + later)
    store.close()


def test_a_damaged_mark_keeps_its_rows_and_blocks_no_write(tmp_path):
    """Column affinity lets a damaged or hand-edited file hold text where a time belongs."""
    path = tmp_path / "journal.sqlite"
    store = JournalStore(path)
    first = write(store, at(0))
    second = write(store, at(2 * HOUR))
    store.note_clock(at(2 * HOUR, synced=True))
    store._db.execute("UPDATE clock_marks SET boottime_us = 'x' WHERE first_id = ?", (second[0],))
    store._db.execute("INSERT INTO host_boots VALUES ('A', 'y')")
    store.close()
    store = JournalStore(path)
    later = write(store, at(3 * HOUR))  # written, not refused at every batch
    # the damaged mark's rows stay (age unknown: the size bound's), not given to the mark before it
    assert retain(store, at(31 * DAY, synced=True)) == len(first) + len(later)
    assert ids(store) == second
    store.close()
    store = JournalStore(path)  # repaired once: the next start loads it as is
    assert store._db.execute("SELECT COUNT(*) FROM host_boots WHERE boot_id = 'A'").fetchone()[0] == 0
    store.close()


def test_marks_stay_few_and_go_with_their_rows(store):
    for i in range(100):  # 100 batches within one span: one mark
        write(store, at(i * S), n=1)
    assert store._db.execute("SELECT COUNT(*) FROM clock_marks").fetchone()[0] == 1
    for h in range(1, 6):
        write(store, at(h * HOUR), n=1)
    assert store._db.execute("SELECT COUNT(*) FROM clock_marks").fetchone()[0] == 6
    retain(store, at(30 * DAY + 3 * HOUR))
    # the rows of hours 0 and 1 are over 30 days old (and the 22 min margin): they go, and their marks
    assert store._db.execute("SELECT COUNT(*) FROM clock_marks").fetchone()[0] == 4
    assert ids(store) == [102, 103, 104, 105]


def test_the_age_step_deletes_by_primary_key_without_a_scan(store):
    write(store, at(0))
    plan = store._db.execute("EXPLAIN QUERY PLAN DELETE FROM journal WHERE id IN (SELECT id FROM journal WHERE "
                             "id >= ? AND id < ? ORDER BY id LIMIT ?)", (1, 10, 5)).fetchall()
    details = [row[-1] for row in plan]
    assert any("USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in d for d in details), details
    assert not any(d.startswith("SCAN") for d in details), details


OLD_SCHEMA = """
CREATE TABLE journal (id INTEGER PRIMARY KEY AUTOINCREMENT, created_us INTEGER NOT NULL, direction TEXT NOT NULL,
    message_type TEXT NOT NULL, topic TEXT, correlation_id TEXT, payload TEXT, response TEXT, latency_us INTEGER,
    note TEXT);
CREATE INDEX journal_created ON journal (created_us);
CREATE INDEX journal_type_created ON journal (message_type, created_us);
CREATE TABLE cursors (name TEXT PRIMARY KEY, row_id INTEGER NOT NULL);
"""


def old_journal(path, created: list[int]) -> None:
    """A journal.sqlite as the version before clock marks wrote it."""
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.executemany("INSERT INTO journal (created_us, direction, message_type) VALUES (?, 'in', 'x')",
                   [(c,) for c in created])
    db.commit()
    db.close()


def test_an_old_journal_is_migrated_and_its_rows_age_by_created_us_while_the_clock_is_known_right(tmp_path):
    path = tmp_path / "journal.sqlite"
    now_utc = TRUE_OFFSET + 100 * DAY
    old_journal(path, [now_utc - 40 * DAY, now_utc - 35 * DAY, now_utc - 10 * DAY, now_utc - 33 * DAY])
    store = JournalStore(path, repair=True)
    tables = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"clock_marks", "host_boots"} <= tables
    assert store.count() == 4 and store.after_id(0)[0].entry.message_type == "x"
    new = write(store, at(100 * DAY))
    assert retain(store, at(100 * DAY + S, synced=False)) == 0  # now not known right: nothing by created_us
    assert retain(store, at(100 * DAY + S, synced=None)) == 0
    assert retain(store, at(100 * DAY + S, synced=True)) == 2  # the two oldest; the run stops at a younger row
    assert ids(store) == [3, 4, *new]
    store.close()
    readonly = JournalStore(path, readonly=True)  # the API and the CLI read it as before
    assert readonly.count() == 2 + len(new)
    readonly.close()
