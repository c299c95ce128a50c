"""The status document's MCU clock in UTC terms (status_report.clock_in_utc), from a real clock fit."""

import pytest

from josev_bridge.adapters.state_file import AtomicJsonFile
from josev_bridge.core.clock_map import ClockMap, ClockSample
from josev_bridge.protocol.records import Hello
from josev_bridge.services.mcu_ingest import McuIngest
from josev_bridge.status_report import clock_in_utc, clock_status

UTC_MINUS_MONO_US = 1_800_000_000_000_000  # realtime minus monotonic on this imaginary host
OFFSET_US = -(5 * 3600 + 2 * 60) * 1_000_000  # the MCU clock 5 h 02 min behind UTC


def probed(ppm: float, seconds: int) -> ClockMap:
    """An MCU clock that runs `ppm` fast, probed once a second with a 100 µs round trip."""
    clock = ClockMap()
    for s in range(seconds):
        host = 1_000_000_000 + s * 1_000_000
        mcu = host + UTC_MINUS_MONO_US + OFFSET_US + round(s * 1_000_000 * ppm / 1e6)
        clock.add(ClockSample(mcu_us=mcu, host_us=host, rtt_us=100))
    return clock


def test_offset_from_utc_drift_and_bound_of_a_fitted_clock():
    clock = probed(80.0, 30)
    now_mono = 1_000_000_000 + 30 * 1_000_000
    doc = clock_in_utc(clock, mono_us=now_mono, utc_us=now_mono + UTC_MINUS_MONO_US)
    assert abs(doc["mcu_minus_utc_us"] - (OFFSET_US + 30 * 80)) < 100
    assert 79.5 < doc["mcu_fast_ppm"] < 80.5  # + is fast, as the sim's --clock-drift-ppm
    assert 0 < doc["error_bound_us"] < 1000


def test_the_drift_is_not_stated_until_it_is_measured():
    clock = probed(80.0, 5)  # the probes span under 10 s: the slope is taken as 1
    now_mono = 1_000_000_000 + 5 * 1_000_000
    assert clock_in_utc(clock, mono_us=now_mono, utc_us=now_mono + UTC_MINUS_MONO_US)["mcu_fast_ppm"] is None



@pytest.mark.parametrize("seconds, rate", [(30, pytest.approx(80.0, abs=0.5)), (5, None)])
def test_the_status_states_the_mcu_clocks_rate_once_signed_fast_and_none_until_measured(tmp_path, seconds, rate):
    """One field for the rate, `mcu_fast_ppm` ("MCU fast by 80 ppm"): there was also `drift_ppm`, the
    same number, that read 0.0 while the rate was not measured yet."""
    ingest = McuIngest(AtomicJsonFile(tmp_path / "edges.json"), realtime_offset_us=lambda: UTC_MINUS_MONO_US)
    ingest.on_record(0, Hello(2, 7, "fw", 1, 1))
    for sample in probed(80.0, seconds).samples:  # the probe answers, as the serial link hands them over
        ingest.on_clock_sample(sample)
    clock = clock_status(ingest)
    assert clock is not None and clock["mcu_fast_ppm"] == rate
    assert [key for key in clock if key.endswith("ppm") and key != "drift_error_ppm"] == ["mcu_fast_ppm"]
