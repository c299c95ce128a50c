"""The journal writer: its queue is bounded by bytes (a flood of large payloads sheds payloads, then rows);
it ages rows by the host clocks it is given."""

from __future__ import annotations

import logging
import time

import pytest

from josev_bridge.adapters.journal_retention import RetentionPolicy
from josev_bridge.adapters.journal_store import JournalStore
from josev_bridge.core.journal_age import ClockReading
from josev_bridge.core.journal_entry import Direction, JournalEntry
from josev_bridge.harness.waiting import wait_until
from josev_bridge.services.journal import ENTRY_COST, MAX_PENDING, PAYLOAD_KEPT, QUEUE_BYTES, Journal

BIG = 60_000
NOW_US = time.time_ns() // 1000  # rows of now: age retention leaves them alone


def journal(tmp_path) -> Journal:
    return Journal(tmp_path / "journal.sqlite", RetentionPolicy(max_age_us=10**15, max_bytes=512 * 2**20))


def big_entry(i: int) -> JournalEntry:
    return JournalEntry(NOW_US + i, Direction.IN, "heartbeat", "ocpp/cs", str(i), {"blob": "x" * BIG})


def test_large_payloads_over_the_byte_bound_are_shed_but_their_rows_kept(tmp_path, caplog):
    j = journal(tmp_path)  # not started: the writer takes nothing, as when it is far slower than the flood
    n = 2 * QUEUE_BYTES // BIG
    with caplog.at_level(logging.WARNING, "josev_bridge.journal"):
        for i in range(n):
            j.record(big_entry(i), BIG)
    assert j.queued_bytes <= QUEUE_BYTES
    assert j.pending == n and j.counters.dropped == 0  # every row is still there
    assert 0 < j.counters.payloads_shed < n
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1  # once per episode, not per row
    j.start()
    wait_until(lambda: j.counters.written == n, 30, "every row written")
    j.stop()
    store = JournalStore(tmp_path / "journal.sqlite", readonly=True)
    rows = store.after_id(0, n)
    shed = [r for r in rows if r.entry.payload is None]
    assert len(shed) == j.counters.payloads_shed and all("not journaled" in r.entry.note for r in shed)
    assert [r.entry.correlation_id for r in rows] == [str(i) for i in range(n)]  # in order, none lost
    assert any("caught up" in r.getMessage() for r in caplog.records)


def test_when_even_rows_without_payload_do_not_fit_the_oldest_are_dropped_and_counted(tmp_path):
    j = journal(tmp_path)
    n = min(QUEUE_BYTES // ENTRY_COST, MAX_PENDING) + 500
    for i in range(n):
        j.record(JournalEntry(NOW_US + i, Direction.IN, "heartbeat", correlation_id=str(i)), 0)
    assert j.queued_bytes <= QUEUE_BYTES and j.counters.dropped >= 500
    assert j.pending + j.counters.dropped == n
    j.start()
    wait_until(lambda: j.pending == 0, 30, "the queue written")
    j.stop()
    store = JournalStore(tmp_path / "journal.sqlite", readonly=True)
    first = store.after_id(0, 1)[0]
    assert first.entry.correlation_id == str(j.counters.dropped)  # the oldest went, the newest stayed


def test_small_payloads_are_kept_even_over_the_bound(tmp_path):
    j = journal(tmp_path)
    for i in range(2 * QUEUE_BYTES // BIG):
        j.record(big_entry(i), BIG)
    small = JournalEntry(NOW_US, Direction.IN, "get_event_timestamp", payload={"event_type": "TxEventStart"})
    j.record(small, PAYLOAD_KEPT)
    assert small.payload == {"event_type": "TxEventStart"}


@pytest.mark.slow
def test_the_bound_holds_in_memory_for_payloads_that_parse_into_many_small_objects(tmp_path):
    """`[{},{},...]` costs ~24x its text once parsed: the bound must count what is held, not the wire size."""
    import json
    import tracemalloc

    from josev_bridge.services.journal import parsed_cost
    raw = json.dumps({"name": "heartbeat", "data": [{} for _ in range(20_000)]}).encode()  # 60 KB of text
    j = journal(tmp_path)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(300):
            j.record(JournalEntry(NOW_US + i, Direction.IN, "heartbeat", payload=json.loads(raw)["data"]),
                     parsed_cost(raw))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < QUEUE_BYTES * 5 // 4, f"{held >> 20} MiB held for a {QUEUE_BYTES >> 20} MiB bound"
    assert j.counters.payloads_shed > 0


class SteppingClock:
    """The host's clocks as the journal writer reads them: `advance` lets time pass, `step` moves realtime only."""

    def __init__(self) -> None:
        self.boottime_us, self.offset_us, self.synchronised = 5_000_000, NOW_US - 3 * 365 * 86_400_000_000, False

    def __call__(self) -> ClockReading:
        return ClockReading("boot", self.boottime_us, self.boottime_us + self.offset_us, self.synchronised)


def test_the_writer_ages_rows_by_the_host_clocks_it_is_given_not_by_their_utc(tmp_path):
    """Rows recorded while the board's clock was 3 years behind survive the step NTP makes; once a
    month has passed for boottime, they go (issue 14)."""
    clock = SteppingClock()
    j = Journal(tmp_path / "journal.sqlite", RetentionPolicy(max_age_us=30 * 86_400_000_000, max_bytes=10**9),
                clock=clock)
    j.start()
    try:
        for i in range(5):
            j.record(JournalEntry(clock().realtime_us, Direction.IN, "heartbeat", correlation_id=str(i)))
        wait_until(lambda: j.last_id == 5, 10, "the rows to be written")
        clock.offset_us, clock.synchronised = NOW_US - clock.boottime_us, True  # NTP: +3 years
        passes = j.counters.retention_passes
        wait_until(lambda: j.counters.retention_passes >= passes + 2, 10, "two retention passes after the step")
        assert j.store.count() == 5 and j.counters.retained_away == 0
        clock.boottime_us += 31 * 86_400_000_000  # a month passes
        wait_until(lambda: j.counters.retained_away == 5, 10, "the month-old rows to go")
    finally:
        j.stop()
