"""Which journal rows age retention may delete when the board's clock steps (issue 14): core/journal_age."""

from josev_bridge.core.journal_age import (
    NO_END,
    OFFSET_TOLERANCE_US,
    RATE_MARGIN,
    SPAN_MAX_US,
    SPAN_MIN_US,
    UNKNOWN_BOOT,
    ClockReading,
    Mark,
    age_plan,
    boot_cutoff,
    needs_mark,
    span_for,
    synced_offset,
)

S = 1_000_000
HOUR, DAY = 3600 * S, 86_400 * S
YEARS_3 = 3 * 365 * DAY
TRUE_OFFSET = 1_714_435_200 * S  # realtime minus boottime of a board whose clock is right: 2024-04-30 at boot
MAX_AGE = 30 * DAY
SPAN = span_for(MAX_AGE)


def reading(bt: int, boot: str = "B", offset: int = TRUE_OFFSET, synced: bool | None = True) -> ClockReading:
    return ClockReading(boot, bt, bt + offset, synced)


def test_a_mark_covers_one_boot_and_one_span_of_boottime():
    mark = Mark(1, "B", 10 * S, SPAN)
    assert not needs_mark(mark, reading(10 * S))
    assert not needs_mark(mark, reading(10 * S + SPAN - 1))
    assert needs_mark(mark, reading(10 * S + SPAN))  # a span later
    assert needs_mark(mark, reading(11 * S, boot="C"))  # another host boot
    assert needs_mark(mark, reading(9 * S))  # boottime before the mark's: not this boot's, whatever its id says
    assert needs_mark(None, reading(0))
    # a step of the realtime clock changes nothing: marks are on boottime
    assert not needs_mark(mark, reading(10 * S + 1, offset=TRUE_OFFSET + YEARS_3))


def test_span_is_a_hundredth_of_the_age_bound_within_a_second_and_an_hour():
    assert span_for(30 * DAY) == SPAN_MAX_US == HOUR
    assert span_for(DAY) == DAY // 100
    assert span_for(10 * S) == SPAN_MIN_US


def test_a_boots_offset_is_kept_while_synchronised_and_again_after_a_step():
    assert synced_offset(None, reading(0, synced=True)) == TRUE_OFFSET
    assert synced_offset(None, reading(0, synced=False)) is None
    assert synced_offset(None, reading(0, synced=None)) is None  # adjtimex not readable: not known right
    assert synced_offset(None, reading(0, boot=UNKNOWN_BOOT)) is None
    assert synced_offset(TRUE_OFFSET, reading(0, offset=TRUE_OFFSET + OFFSET_TOLERANCE_US)) is None  # slewing
    assert synced_offset(TRUE_OFFSET - YEARS_3, reading(0)) == TRUE_OFFSET  # stepped while "synchronised"


def test_rows_of_this_boot_age_by_boottime_whatever_the_realtime_clock_did():
    marks = [Mark(1, "B", 0, SPAN), Mark(50, "B", 2 * DAY, SPAN), Mark(90, "B", 40 * DAY, SPAN)]
    for offset in (TRUE_OFFSET - YEARS_3, TRUE_OFFSET, TRUE_OFFSET + YEARS_3):  # behind, right, ahead
        for synced in (True, False, None):
            now = reading(40 * DAY, offset=offset, synced=synced)
            plan = age_plan(marks, {}, now, MAX_AGE)
            assert plan.ranges == ((1, 90),)  # written in days 0-2, 38 days ago; the newest mark's rows stay
    plan = age_plan(marks, {}, reading(31 * DAY), MAX_AGE)
    assert plan.ranges == ((1, 50),)  # day 0's rows; day 2's are 29 days old


def test_a_rows_age_is_taken_from_the_end_of_what_its_mark_covers():
    """Rows of a mark were written before boottime + span or up to the next mark of the boot: they go
    only when the latest of them is older than the bound (and the oscillator's margin)."""
    margin = round(MAX_AGE * RATE_MARGIN)
    marks = [Mark(1, "B", 0, SPAN)]
    assert age_plan(marks, {}, reading(SPAN + MAX_AGE + margin - 1), MAX_AGE).ranges == ()
    assert age_plan(marks, {}, reading(SPAN + MAX_AGE + margin), MAX_AGE).ranges == ((1, NO_END),)
    marks = [Mark(1, "B", 0, SPAN), Mark(7, "B", 60 * S, SPAN)]  # the next mark came early (after a restart)
    assert age_plan(marks, {}, reading(60 * S + MAX_AGE + margin + 1), MAX_AGE).ranges == ((1, 7),)


def test_rows_of_an_earlier_boot_age_only_when_both_clocks_were_known_right():
    marks = [Mark(1, "A", 5 * S, SPAN), Mark(40, "B", 0, SPAN)]
    old_boot_utc = TRUE_OFFSET  # boot A started then; boot B 40 days later
    b_offset = old_boot_utc + 40 * DAY
    now = reading(S, boot="B", offset=b_offset)
    # A was never synchronised: its rows' age is unknown, they stay (the size bound takes them)
    assert age_plan(marks, {"B": b_offset}, now, MAX_AGE).ranges == ()
    assert boot_cutoff("A", {"B": b_offset}, now, MAX_AGE) is None
    # A's clock was synchronised at some time in that boot (even after these rows were written): exact ages
    assert age_plan(marks, {"A": old_boot_utc, "B": b_offset}, now, MAX_AGE).ranges == ((1, 40),)
    # ... but not when now is not known right: B never synchronised
    assert age_plan(marks, {"A": old_boot_utc}, reading(S, boot="B", offset=b_offset, synced=False),
                    MAX_AGE).ranges == ()
    # 29 days later: kept
    near = reading(S, boot="B", offset=old_boot_utc + 29 * DAY)
    assert age_plan(marks, {"A": old_boot_utc, "B": old_boot_utc + 29 * DAY}, near, MAX_AGE).ranges == ()


def test_an_unreadable_boot_id_never_ages_by_boottime():
    marks = [Mark(1, UNKNOWN_BOOT, 0, SPAN)]
    now = reading(100 * DAY, boot=UNKNOWN_BOOT)
    assert age_plan(marks, {UNKNOWN_BOOT: TRUE_OFFSET}, now, MAX_AGE).ranges == ()


def test_rows_without_marks_age_by_created_us_only_with_a_trusted_now():
    marks = [Mark(100, "B", 0, SPAN)]
    now = reading(DAY)
    plan = age_plan(marks, {"B": TRUE_OFFSET}, now, MAX_AGE)
    assert (plan.legacy_below, plan.legacy_cutoff_us) == (100, TRUE_OFFSET + DAY - MAX_AGE)
    assert age_plan(marks, {}, reading(DAY, synced=False), MAX_AGE).legacy_cutoff_us is None
    assert age_plan([], {"B": TRUE_OFFSET}, now, MAX_AGE).legacy_below == NO_END  # a file without marks
