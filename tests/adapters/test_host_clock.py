"""The host clock adapter against the real kernel: adjtimex(2), the clocks, and the test seam."""

import os
import sys
import time

import pytest

from josev_bridge.adapters.host_clock import HostClock, host_boot_id, read_sync_state
from josev_bridge.core.host_time import SyncState


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adjtimex(2) is Linux's")
def test_adjtimex_is_read_without_privilege():
    state = read_sync_state()
    assert state.synchronised in (True, False)  # readable: modes 0 needs no CAP_SYS_TIME
    assert isinstance(state.maxerror_us, int) and state.maxerror_us >= 0


def test_the_offset_in_use_is_the_real_one_and_does_not_jitter():
    clock = HostClock(shift_file="")
    values = {clock.offset()[0] for _ in range(200)}
    assert len(values) == 1  # reading jitter absorbed (core.host_time.settle)
    (offset,) = values
    assert abs(offset - (time.time_ns() - time.monotonic_ns()) // 1000) < 10_000
    assert clock.check() is None and clock.steps == 0
    assert len(clock.boot_id) == 36 and clock.boot_id == host_boot_id()


def test_the_test_seam_moves_both_clocks_and_is_no_step(tmp_path):
    shift = tmp_path / "shift"
    shift.write_text("0")
    clock = HostClock(shift_file=str(shift))
    mono, real, offset = clock.monotonic_us(), clock.realtime_us(), clock.offset()[0]
    tmp = tmp_path / "shift.tmp"
    tmp.write_text("600")
    os.replace(tmp, shift)
    assert clock.monotonic_us() - mono >= 600_000_000 and clock.realtime_us() - real >= 600_000_000
    assert abs(clock.offset()[0] - offset) < 1000
    assert clock.check() is None  # ten minutes passed for both clocks: nothing stepped


def test_the_journal_reads_the_sync_state_of_the_moment_not_the_last_check():
    """A step clears STA_UNSYNC at once; `check` runs every 0.5 s. Were the journal given check's
    cached "synchronised", it would store the stepped offset as this boot's trusted one and age the
    rows of earlier boots by it (core/journal_age)."""
    kernel = [SyncState(True, 1000, 100)]
    clock = HostClock(shift_file="", sync_state=lambda: kernel[0])
    assert clock.clock_reading().synchronised is True
    kernel[0] = SyncState(False, 16_000_000, 16_000_000)  # the clock was just stepped: no check since
    assert clock.synchronised is True  # check's view, for status: unchanged until the next check
    assert clock.clock_reading().synchronised is False
