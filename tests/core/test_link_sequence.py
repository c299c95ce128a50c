import pytest
from hypothesis import given, strategies as st

from josev_bridge.core.link_sequence import SequenceTracker, Verdict


def seqs(outcome):
    return [s for s, _ in outcome.released]


def test_in_order_duplicates_and_reboot():
    t = SequenceTracker()
    new_boot, _ = t.hello(7)
    assert new_boot
    assert seqs(t.accept(1, "a")) == [1]
    assert t.accept(1, "a").verdict is Verdict.DUPLICATE
    assert t.hello(7)[0] is False and t.last_seq == 1  # same boot resumes
    assert t.hello(8)[0] is True and t.last_seq == 0  # a reboot restarts counting
    assert seqs(t.accept(1, "b")) == [1]


def test_a_gap_holds_later_records_until_the_replay_fills_it():
    t = SequenceTracker()
    t.hello(1)
    t.accept(1, "r1")
    assert t.accept(3, "r3").verdict is Verdict.HELD  # r2 was corrupted on the line
    assert t.accept(4, "r4").verdict is Verdict.HELD
    assert t.last_seq == 1 and t.gap  # only the contiguous prefix may be acknowledged
    out = t.accept(2, "r2")  # the replay
    assert out.released == ((2, "r2"), (3, "r3"), (4, "r4")) and out.lost == 0
    assert t.accept(3, "r3").verdict is Verdict.DUPLICATE  # rest of the replay is skipped
    assert not t.gap


def test_records_the_mcu_no_longer_has_are_declared_lost_exactly():
    t = SequenceTracker()
    t.hello(1)
    t.accept(1, "r1")
    t.accept(5, "r5")
    _, out = t.hello(1, oldest_seq=4)  # the MCU's ring overflowed: 2 and 3 are gone
    assert out.lost == 2 and seqs(out) == []
    assert seqs(t.accept(4, "r4")) == [4, 5]


def test_the_hold_is_bounded():
    t = SequenceTracker(max_held=3)
    t.hello(1)
    for s in (3, 4, 5):
        assert t.accept(s, s).verdict is Verdict.HELD
    out = t.accept(6, 6)
    assert out.lost == 2 and seqs(out) == [3, 4, 5, 6]


@pytest.mark.slow
@given(st.permutations(list(range(1, 30))), st.sets(st.integers(1, 29)))
def test_any_arrival_order_with_duplicates_applies_each_record_once_in_order(order, dupes):
    t = SequenceTracker()
    t.hello(1)
    applied = []
    for s in list(order) + sorted(dupes):
        applied += seqs(t.accept(s, s))
    assert applied == list(range(1, 30))


def test_snapshot_round_trip():
    t = SequenceTracker(3, 42)
    assert SequenceTracker.from_snapshot(t.snapshot()).snapshot() == t.snapshot()
