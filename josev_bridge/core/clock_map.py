"""Mapping one MCU boot's clock to the host's clocks, from probe exchanges. Pure.

The host sends CLOCK_PROBE at t_tx (host monotonic), the MCU answers with its clock m at receipt,
the host reads the reply at t_rx. The sample says: MCU clock m ~ host monotonic (t_tx+t_rx)/2,
within rtt/2. A line host = a + b*(m - m0) through the low-latency samples of a sliding window
absorbs an MCU clock that is off by hours (a) and drifts by +/-100 ppm (b). The host monotonic
clock never steps, so an NTP step of the Linux clock does not disturb the fit; UTC is derived
from it with the realtime-minus-monotonic offset current when a record is stored.

Error bound for a record stamped at MCU time m (docs/serial-protocol.md, clock section), as
`error_bound_us` computes it from the fit in use:
    |error| <= u + b_err * |m - m0| (+ the MCU's own stamping latency, which the host cannot see)
where u = (rtt_min + RTT_TOLERANCE_US) / 2 bounds each low-latency sample's error (and so the
fit's centre m0), and b_err bounds the slope's error: 2u / span for a slope fitted over `span` of
MCU time (each end of the span off by at most u), MAX_DRIFT when the slope is taken as 1 (the
MCU's crystal may be off by that much) or when a fit restored after a restart no longer knows its span.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WINDOW = 64  # samples kept (about a minute at one probe per second)
MIN_SPAN_FOR_SLOPE_US = 10_000_000  # below this span the slope is assumed to be 1
MAX_SLOPE_ERROR = 500e-6  # a fit implying more than 500 ppm is noise, not a crystal
RTT_TOLERANCE_US = 200  # samples up to best rtt + this count as low-latency
OUTLIER_US = 50_000  # a sample this far off the fit is not jitter
RESTART_AFTER = 3  # consecutive outliers: the MCU clock was set or stepped; start the mapping again
MAX_DRIFT = 100e-6  # the drift an MCU crystal may have (docs/serial-protocol.md): the slope error when unfitted


@dataclass(frozen=True, slots=True)
class ClockSample:
    mcu_us: int  # MCU clock when it received the probe
    host_us: int  # host monotonic clock at the probe's round-trip midpoint
    rtt_us: int


@dataclass
class ClockMap:
    samples: list[ClockSample] = field(default_factory=list)
    _fit: tuple[int, int, float] | None = None  # (m0, h0, slope): host = h0 + slope * (mcu - m0)
    _slope_error: float | None = None  # bound on |slope - true slope|, set with the fit
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
        self._slope_error = None
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
        if self._fit is None:
            self._fit, self._slope_error = self._compute()
        return self._fit

    def error_bound_us(self, mcu_us: int) -> int:
        """How far the mapped time of a reading at `mcu_us` may be from the truth (the module's
        docstring), in whole microseconds, rounded up. Requires `ready`."""
        m0, _, _ = self.fit()
        sample_error = ((self.best_rtt_us() or 0) + RTT_TOLERANCE_US) / 2
        slope_error = MAX_DRIFT if self._slope_error is None else self._slope_error
        return int(sample_error + slope_error * abs(mcu_us - m0)) + 1

    def offset_us(self) -> int:
        """MCU clock minus host monotonic clock now (for status)."""
        m0, h0, _ = self.fit()
        return m0 - h0

    def drift_ppm(self) -> float:
        return (self.fit()[2] - 1.0) * 1e6

    def _compute(self) -> tuple[tuple[int, int, float], float]:
        """The fit and the bound on its slope's error."""
        if not self.samples:
            raise ValueError("no clock samples yet")
        best = min(s.rtt_us for s in self.samples)
        good = [s for s in self.samples if s.rtt_us <= best + RTT_TOLERANCE_US]
        m0 = sum(s.mcu_us for s in good) // len(good)
        h0 = sum(s.host_us for s in good) // len(good)
        slope, slope_error = 1.0, MAX_DRIFT
        span = max(s.mcu_us for s in good) - min(s.mcu_us for s in good)
        if len(good) >= 3 and span >= MIN_SPAN_FOR_SLOPE_US:
            sxx = sum((s.mcu_us - m0) ** 2 for s in good)
            sxy = sum((s.mcu_us - m0) * (s.host_us - h0) for s in good)
            fitted = sxy / sxx
            if abs(fitted - 1.0) <= MAX_SLOPE_ERROR:
                slope, slope_error = fitted, (best + RTT_TOLERANCE_US) / span
        return (m0, h0, slope), slope_error

    # -- persistence: only the fit, which is what maps records replayed after a restart ------------
    def snapshot(self) -> dict:
        m0, h0, slope = self.fit()
        return {"m0": m0, "h0": h0, "slope": slope, "best_rtt_us": self.best_rtt_us()}

    @classmethod
    def from_snapshot(cls, data: dict) -> "ClockMap":
        m0, h0, slope = data["m0"], data["h0"], data["slope"]
        if not (isinstance(m0, int) and isinstance(h0, int) and isinstance(slope, float)):
            raise ValueError(f"bad clock snapshot {data!r}")
        restored = cls(restored_rtt_us=data.get("best_rtt_us"))
        restored._fit = (m0, h0, slope)
        return restored


def to_utc_us(clock: ClockMap, mcu_us: int, realtime_minus_monotonic_us: int) -> int:
    """UTC microseconds for an MCU clock reading.

    When the MCU's clock already runs on UTC (an RTC the integrator keeps set) and agrees with the
    host within the measurement's own uncertainty, its reading is reported unaltered: a correction
    smaller than the error of measuring it would only add noise to what the hardware recorded.
    """
    mapped = clock.to_host_us(mcu_us) + realtime_minus_monotonic_us
    uncertainty = (clock.best_rtt_us() or 0) // 2 + RTT_TOLERANCE_US
    return mcu_us if abs(mapped - mcu_us) <= uncertainty else mapped
