from josev_bridge.core.host_time import (
    SETTLE_TOLERANCE_US,
    STA_UNSYNC,
    TIME_ERROR,
    Basis,
    OffsetReading,
    SyncState,
    clock_note,
    settle,
    step_between,
)

OFFSET = 1_796_000_000_000_000


def test_reading_jitter_does_not_move_the_offset_in_use():
    """An answer must give the time logged when its edge was stored unless the clock really moved."""
    settled, error = settle(None, OffsetReading(OFFSET, 2, 0))
    assert (settled, error) == (OFFSET, 2)
    for jitter in (-3, 5, -SETTLE_TOLERANCE_US):
        value, error = settle(settled, OffsetReading(OFFSET + jitter, 1, 0))
        assert value == OFFSET and error == abs(jitter) + 1  # the distance to the reading counts in the bound
    assert settle(settled, OffsetReading(OFFSET + 500, 1, 0)) == (OFFSET + 500, 1)  # slewed or stepped: follow


def test_a_step_is_what_slewing_and_reading_errors_cannot_explain():
    before = OffsetReading(OFFSET, 5, 10_000_000)
    assert step_between(before, OffsetReading(OFFSET + 900, 5, 10_500_000)) is None  # under 1 ms
    assert step_between(before, OffsetReading(OFFSET + 1_300, 5, 10_500_000)) == 1_300  # 1 ms + 0.25 ms slew + errors
    # NTP slews at most 500 ppm: 60 s later 25 ms is slewing, not a step
    assert step_between(before, OffsetReading(OFFSET + 25_000, 5, 70_000_000)) is None
    three_years = 94_608_000_000_000
    assert step_between(before, OffsetReading(OFFSET + three_years, 5, 10_500_000)) == three_years
    assert step_between(before, OffsetReading(OFFSET - 2_000_000, 5, 10_500_000)) == -2_000_000


def test_adjtimex_status_says_whether_the_clock_is_synchronised():
    assert SyncState.from_adjtimex(0, 0x2001, 120_000, 800).synchronised is True  # TIME_OK, STA_PLL
    assert SyncState.from_adjtimex(0, STA_UNSYNC, 16_000_000, 16_000_000).synchronised is False
    assert SyncState.from_adjtimex(TIME_ERROR, 0, 16_000_000, 16_000_000).synchronised is False
    assert "estimated error 0.800 ms, maximum 120.000 ms" in SyncState.from_adjtimex(0, 1, 120_000, 800).describe()
    assert "unknown" in SyncState(None).describe()


def test_what_a_journal_row_says_about_the_clock():
    assert clock_note(Basis.MONOTONIC, True) == ""
    assert clock_note(Basis.MONOTONIC, False) == "; host clock unsynchronised"
    assert clock_note(Basis.MONOTONIC, None) == "; host clock synchronisation unknown"
    assert clock_note(Basis.UTC, False) == "; UTC fixed in an earlier host boot"  # today's sync does not matter
    assert "whose clock was unsynchronised" in clock_note(Basis.UTC_UNSYNCHRONISED, True)
    assert "older version" in clock_note(Basis.UTC_UNKNOWN, True)
    assert [Basis.fixed(s) for s in (True, False, None)] == [Basis.UTC, Basis.UTC_UNSYNCHRONISED, Basis.UTC_UNKNOWN]
