"""The MCU clock's rate in `josev-bridge status`: positive when the MCU clock runs fast (issue 14
item 5: an MCU 80 ppm fast used to show -80), from a real clock fit of probe samples."""

from __future__ import annotations

import pytest

from josev_bridge.core.clock_map import ClockMap, ClockSample
from josev_bridge.core.status_view import clock_words
from josev_bridge.status_report import clock_in_utc, mcu_fast_ppm


@pytest.mark.parametrize("ppm", [80.0, -80.0, 100.0])
def test_an_mcu_clock_that_runs_fast_shows_as_fast(ppm):
    clock = ClockMap()
    for second in range(30):  # one probe a second: the slope is fitted once they span 10 s
        host_us = 1_000_000_000 + second * 1_000_000
        clock.add(ClockSample(round(5_000_000 + second * 1_000_000 * (1 + ppm / 1e6)), host_us, 100))
    assert mcu_fast_ppm(clock.drift_ppm()) == pytest.approx(ppm, abs=0.5)
    info = clock_in_utc(clock, mono_us=1_030_000_000, utc_us=1_700_000_000_000_000)
    assert info["mcu_fast_ppm"] == pytest.approx(ppm, abs=0.5)
    expected = {80.0: "drift: MCU fast by 80 ppm", -80.0: "drift: MCU slow by 80 ppm",
                100.0: "drift: MCU fast by 100 ppm"}[ppm]
    assert expected in clock_words(info)
