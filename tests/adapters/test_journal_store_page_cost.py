"""A page costs O(limit) SQLite work wherever its cursor is, not O(rows newer than the cursor).

Counted, not timed: sqlite3's progress handler is called every N virtual-machine instructions, so
the work a query does is a deterministic number. bench/journal.py measures the time at 1,000,000 rows.
"""

from __future__ import annotations

import pytest

from josev_bridge.adapters.journal_store import JournalStore
from josev_bridge.core.journal_entry import Direction, JournalEntry
from josev_bridge.core.journal_query import JournalQuery, Position

ROWS = 20_000
T0 = 1_700_000_000_000_000


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = JournalStore(tmp_path_factory.mktemp("cost") / "journal.sqlite")
    s.insert(JournalEntry(T0 + i * 1000, Direction.IN, ("a", "b")[i % 2], payload={"i": i}) for i in range(ROWS))
    yield s
    s.close()


def instructions(store: JournalStore, q: JournalQuery) -> tuple[int, list[int]]:
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0
    store._db.set_progress_handler(tick, 100)
    try:
        rows, _ = store.query(q)
    finally:
        store._db.set_progress_handler(None, 0)
    return count[0] * 100, [r.id for r in rows]


@pytest.mark.parametrize("types", [(), ("a",), ("a", "b")])
def test_a_page_deep_in_the_range_costs_what_the_first_page_costs(store, types):
    end = T0 + ROWS * 1000
    first = JournalQuery("x", T0, end, types, 50, None)
    deep = JournalQuery("x", T0, end, types, 50, Position(T0 + 200 * 1000, 201))  # 19,800 rows newer than it
    first_cost, _ = instructions(store, first)
    deep_cost, ids = instructions(store, deep)
    assert ids and max(ids) <= 200 and ids == sorted(ids, reverse=True)
    assert deep_cost <= 2 * first_cost + 1000, (first_cost, deep_cost)  # it was 60-280x: every newer row stepped over


def test_the_cursor_row_itself_and_ties_in_its_microsecond(store):
    """The upper bound is the cursor's time, inclusive: rows of the same microsecond with a lower id still come."""
    s = JournalStore(store.path.parent / "ties.sqlite")
    try:
        s.insert(JournalEntry(T0, Direction.IN, "a") for _ in range(5))  # ids 1..5, one microsecond
        rows, more = s.query(JournalQuery("x", T0, T0, ("a",), 2, Position(T0, 4)))
        assert [r.id for r in rows] == [3, 2] and more
        rows, more = s.query(JournalQuery("x", T0, T0, (), 10, Position(T0, 2)))
        assert [r.id for r in rows] == [1] and not more
    finally:
        s.close()
