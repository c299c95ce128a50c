from josev_bridge.core.link_sequence import SequenceTracker, Verdict


def test_new_duplicate_gap_and_reboot():
    t = SequenceTracker()
    assert t.hello(7) is True
    assert t.accept(1).verdict is Verdict.NEW
    assert t.accept(1).verdict is Verdict.DUPLICATE
    gap = t.accept(5)
    assert gap.verdict is Verdict.GAP and gap.missing == 3 and gap.accepted
    assert t.hello(7) is False and t.last_seq == 5  # same boot resumes
    assert t.hello(8) is True and t.last_seq == 0  # reboot restarts counting
    assert t.accept(1).verdict is Verdict.NEW


def test_snapshot_round_trip():
    t = SequenceTracker(3, 42)
    assert SequenceTracker.from_snapshot(t.snapshot()) == t
