from josev_bridge.core.export_window import AckWindow, RowBudget


def test_ack_window_moves_only_over_the_contiguous_acknowledged_prefix():
    window = AckWindow()
    for row_id, mid in ((10, 1), (11, 2), (13, 3), (14, 4)):  # 12 was deleted by retention: no gap to wait for
        window.sent(row_id, mid)
    assert len(window) == 4
    assert window.ack(2) and window.ack(4)  # out of order
    assert window.advance() is None  # row 10 is not acknowledged yet
    assert not window.ack(99)  # not ours
    assert window.ack(1)
    assert window.advance() == 11  # 10 and 11; 13 is still in flight
    assert window.forget(3)  # refused: not in flight any more, and never acknowledged
    assert window.advance() is None  # 14 is acknowledged but 13 is not: the watermark stays at 11
    assert len(window) == 0


def test_row_budget_starts_full_refills_with_time_and_never_exceeds_its_burst():
    budget = RowBudget(100.0, burst_s=0.2)  # 20 rows at once, 100 a second
    assert budget.take_up_to(50, now=10.0) == 20
    budget.spend(20)
    assert budget.empty()
    assert budget.take_up_to(50, now=10.05) == 5  # 50 ms at 100/s
    assert budget.take_up_to(50, now=100.0) == 20  # a long pause refills to the burst, no more


def test_row_budget_of_zero_is_no_limit():
    budget = RowBudget(0.0)
    assert budget.take_up_to(10_000, now=0.0) == 10_000
    budget.spend(10_000)
    assert not budget.empty()
