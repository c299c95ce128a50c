"""Mapping one MCU boot's clock to the host's clocks, from probe exchanges. Pure.

The host sends CLOCK_PROBE at t_tx (host monotonic), the MCU answers with its clock m at receipt,
the host reads the reply at t_rx. The sample says: MCU clock m ~ host monotonic (t_tx+t_rx)/2,
within rtt/2. A line host = a + b*(m - m0) through the low-latency samples of a sliding window
absorbs an MCU clock that is off by hours (a) and drifts by +/-100 ppm (b). The host monotonic
clock never steps, so an NTP step of the Linux clock does not disturb the fit; UTC is derived
from it with the realtime-minus-monotonic offset current when a record is stored.

Error bound for a record stamped at MCU time m (docs/serial-protocol.md, clock section):
    |error| <= rtt_min/2 + |b_err| * |m - m_last| + the MCU's own stamping latency
where rtt_min is the best round trip in the window and b_err the slope uncertainty (under
~5 ppm after a minute of 1 Hz probes; the slope is taken as exactly 1 until the window spans 10 s).
`ClockMap.error_bound_us` computes it for the current fit, without the MCU's stamping latency
(unknown to the host): each fitted sample is off by at most e = its rtt/2, so the line is off by at
most e_max at its centroid m0, and its slope by at most e_max * sum|m_i - m0| / sum (m_i - m0)^2
(least squares), or by MCU_MAX_DRIFT while the slope is taken as 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

WINDOW = 64  # samples kept (about a minute at one probe per second)
MIN_SPAN_FOR_SLOPE_US = 10_000_000  # below this span the slope is assumed to be 1
MAX_SLOPE_ERROR = 500e-6  # a fit implying more than 500 ppm is noise, not a crystal
RTT_TOLERANCE_US = 200  # samples up to best rtt + this count as low-latency
MCU_MAX_DRIFT = 100e-6  # what docs/serial-protocol.md allows an MCU crystal; the slope error while it is taken as 1
OUTLIER_US = 50_000  # a sample this far off the fit is not jitter
RESTART_AFTER = 3  # consecutive outliers: the MCU clock was set or stepped; start the mapping again


@dataclass(frozen=True, slots=True)
class ClockSample:
    mcu_us: int  # MCU clock when it received the probe
    host_us: int  # host monotonic clock at the probe's round-trip midpoint
    rtt_us: int


@dataclass
class ClockMap:
    samples: list[ClockSample] = field(default_factory=list)
    _fit: tuple[int, int, float] | None = None  # (m0, h0, slope): host = h0 + slope * (mcu - m0)
    _fit_error: tuple[int, float] | None = None  # (e_max_us, slope_error) of the fit
    _best_rtt: int | None = None
    outliers: int = 0  # consecutive
    restarts: int = 0
    restored_rtt_us: int | None = None  # the best round trip behind a fit restored from a snapshot

    def add(self, sample: ClockSample) -> str:
        """Take a sample; returns "ok", "outlier" (ignored) or "restarted" (the MCU clock stepped)."""
        if sample.rtt_us < 0:
            return "outlier"
        if self.ready and abs(self.to_host_us(sample.mcu_us) - sample.host_us) > OUTLIER_US + sample.rtt_us:
            self.outliers += 1
            if self.outliers < RESTART_AFTER:
                return "outlier"
            self.samples.clear()
            self.restored_rtt_us = None
            self.restarts += 1
            verdict = "restarted"
        else:
            verdict = "ok"
        self.outliers = 0
        self.samples.append(sample)
        del self.samples[:-WINDOW]
        self._fit = None
        self._fit_error = None
        self._best_rtt = None
        return verdict

    @property
    def ready(self) -> bool:
        return bool(self.samples) or self._fit is not None

    def best_rtt_us(self) -> int | None:
        """Cached until the next sample: every record's UTC mapping asks for it."""
        if self._best_rtt is None:
            self._best_rtt = min((s.rtt_us for s in self.samples), default=self.restored_rtt_us)
        return self._best_rtt

    def to_host_us(self, mcu_us: int) -> int:
        """Host monotonic time for an MCU clock reading. Requires `ready`."""
        m0, h0, slope = self.fit()
        return h0 + round((mcu_us - m0) * slope)

    def fit(self) -> tuple[int, int, float]:
        return self._fitted()[0]

    def _fitted(self) -> tuple[tuple[int, int, float], tuple[int, float]]:
        """The fit and its error, computed together (and set together by `from_snapshot`)."""
        if self._fit is None or self._fit_error is None:
            self._fit, self._fit_error = self._compute()
        return self._fit, self._fit_error

    def error_bound_us(self, mcu_us: int) -> int:
        """The most a host time from `to_host_us(mcu_us)` can be off, MCU stamping latency aside
        (rounded up to the µs). Requires `ready`."""
        (m0, _, _), (e_max, slope_error) = self._fitted()
        return e_max + math.ceil(slope_error * abs(mcu_us - m0)) + 1  # +1: the fit's integer rounding

    def offset_us(self) -> int:
        """MCU clock minus host monotonic clock now (for status)."""
        m0, h0, _ = self.fit()
        return m0 - h0

    def drift_ppm(self) -> float:
        return (self.fit()[2] - 1.0) * 1e6

    def _compute(self) -> tuple[tuple[int, int, float], tuple[int, float]]:
        """(m0, h0, slope) and its (e_max_us, slope_error)."""
        if not self.samples:
            raise ValueError("no clock samples yet")
        best = min(s.rtt_us for s in self.samples)
        good = [s for s in self.samples if s.rtt_us <= best + RTT_TOLERANCE_US]
        m0 = sum(s.mcu_us for s in good) // len(good)
        h0 = sum(s.host_us for s in good) // len(good)
        e_max = (max(s.rtt_us for s in good) + 1) // 2
        slope, sxx = 1.0, 0
        span = max(s.mcu_us for s in good) - min(s.mcu_us for s in good)
        if len(good) >= 3 and span >= MIN_SPAN_FOR_SLOPE_US:
            sxx = sum((s.mcu_us - m0) ** 2 for s in good)
            sxy = sum((s.mcu_us - m0) * (s.host_us - h0) for s in good)
            fitted = sxy / sxx
            if abs(fitted - 1.0) <= MAX_SLOPE_ERROR:
                slope = fitted
            else:
                sxx = 0
        # A sample is within its rtt/2 of the true line, and the fit within e_max of it near the
        # samples. A sample further from the fit than both (any sample, also a slow one) says the
        # line is not the truth (an MCU clock stepped by less than OUTLIER_US and absorbed): its
        # distance is then added to the error, for the centre and the slope alike.
        misses = ((abs(s.host_us - h0 - (s.mcu_us - m0) * slope), (s.rtt_us + 1) // 2) for s in self.samples)
        e_max += math.ceil(max((off for off, half_rtt in misses if off > half_rtt + e_max), default=0))
        slope_error = e_max * sum(abs(s.mcu_us - m0) for s in good) / sxx if sxx else MCU_MAX_DRIFT
        return (m0, h0, slope), (e_max, slope_error)

    # -- persistence: only the fit, which is what maps records replayed after a restart ------------
    def snapshot(self) -> dict[str, Any]:
        (m0, h0, slope), (e_max, slope_error) = self._fitted()
        return {"m0": m0, "h0": h0, "slope": slope, "best_rtt_us": self.best_rtt_us(),
                "max_error_us": e_max, "slope_error": slope_error}

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> ClockMap:
        m0, h0, slope = data["m0"], data["h0"], data["slope"]
        if not (isinstance(m0, int) and isinstance(h0, int) and isinstance(slope, float)):
            raise ValueError(f"bad clock snapshot {data!r}")
        restored = cls(restored_rtt_us=data.get("best_rtt_us"))
        restored._fit = (m0, h0, slope)
        # a snapshot from before the bound was saved: the widest the fit's own samples allowed
        e_max = data.get("max_error_us", ((data.get("best_rtt_us") or 0) + RTT_TOLERANCE_US + 1) // 2)
        # (the fitted slope may be off the truth by its distance from 1 plus what a crystal may drift)
        slope_error = data.get("slope_error", abs(slope - 1.0) + MCU_MAX_DRIFT)
        if not (isinstance(e_max, int) and isinstance(slope_error, (int, float))):
            raise ValueError(f"bad clock snapshot {data!r}")
        restored._fit_error = (e_max, float(slope_error))
        return restored


def to_utc_us(clock: ClockMap, mcu_us: int, realtime_minus_monotonic_us: int) -> int:
    return to_utc_with_bound(clock, mcu_us, realtime_minus_monotonic_us)[0]


def to_utc_with_bound(clock: ClockMap, mcu_us: int, realtime_minus_monotonic_us: int) -> tuple[int, int]:
    """UTC microseconds for an MCU clock reading.

    When the MCU's clock already runs on UTC (an RTC the integrator keeps set) and agrees with the
    host within the measurement's own uncertainty, its reading is reported unaltered: a correction
    smaller than the error of measuring it would only add noise to what the hardware recorded.
    Returns (UTC µs, error bound µs): the clock map's bound for that reading, plus the distance to
    the mapped time when the MCU's own reading is reported.
    """
    mapped = clock.to_host_us(mcu_us) + realtime_minus_monotonic_us
    bound = clock.error_bound_us(mcu_us)
    uncertainty = (clock.best_rtt_us() or 0) // 2 + RTT_TOLERANCE_US
    if abs(mapped - mcu_us) <= uncertainty:
        return mcu_us, bound + abs(mapped - mcu_us)
    return mapped, bound
