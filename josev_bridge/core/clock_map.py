"""Mapping one MCU boot's clock to the host's monotonic clock, from probe exchanges. Pure.

The host sends CLOCK_PROBE at t_tx (host monotonic), the MCU answers with its clock m at receipt,
the host reads the reply at t_rx. The sample says: MCU clock m ~ host monotonic (t_tx+t_rx)/2,
within rtt/2. A line host = h0 + b*(m - m0) through the samples absorbs an MCU clock that is off by
hours (h0 - m0) and drifts by +/-100 ppm (b). The host monotonic clock never steps,
so an NTP step of the Linux clock does not disturb the fit; UTC is derived from it with the
realtime-minus-monotonic offset current when an answer is given (services/mcu_ingest).

The window is weighted by time, not only by count: the last RECENT samples (about a minute at one
probe a second), and before them the lowest-latency sample of each BUCKET_US, up to ANCHORS of them
(half an hour of probing). The slope is only known with a long baseline, and a burst of probes
(after a HELLO) must not push that baseline out; neither an outage (no sample is dropped for its
age) nor a restart (they are persisted) loses it, so records stamped during an outage are
interpolated between samples taken before and after it.

The line is a least-squares fit weighted by 1/e_i, e_i = rtt_i/2 the most sample i can be off: a
slow round trip counts, but little. The line's value at a reading m is a linear combination of the
samples, sum c_i(m) * host_i, which reproduces any straight truth exactly; so with every sample off
by at most e_i it is off by at most sum |c_i(m)| * e_i. That is the bound `error_bound_us` states
(docs/serial-protocol.md §5), MCU stamping latency aside: exact for the fit, not a triangle-inequality
split, so a record next to one good sample after an outage gets about that sample's e_i. While the
slope is taken as 1 (samples spanning under MIN_SPAN_FOR_SLOPE_US, a fit beyond MAX_SLOPE_ERROR, or
a fitted slope less certain than the crystal's own tolerance) it is the centre's n / sum(1/e_i)
plus MCU_MAX_DRIFT times the distance. A sample further from the line than its own e_i plus the
largest low-latency e_i (an MCU clock stepped by less than OUTLIER_US and absorbed) adds its
distance to every e_i.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

RECENT = 64  # the newest samples, all kept (about a minute at one probe a second)
BUCKET_US = 30_000_000  # older samples: the lowest-latency one of each 30 s
ANCHORS = 60  # thinned older samples kept: 30 minutes of probing, however long ago (outages included)
MIN_SPAN_FOR_SLOPE_US = 10_000_000  # below this span the slope is assumed to be 1
MAX_SLOPE_ERROR = 500e-6  # a fit implying more than 500 ppm is noise, not a crystal
RTT_TOLERANCE_US = 200  # samples up to twice the best rtt + this count as low-latency...
LOW_LATENCY_US = 1000  # ... and any up to this round trip (a busy host: the best one may have been luck)
MCU_MAX_DRIFT = 100e-6  # what docs/serial-protocol.md allows an MCU crystal; the slope error while it is taken as 1
OUTLIER_US = 50_000  # a sample this far off the fit (beyond the fit's own bound there) is not jitter
RESTART_AFTER = 3  # consecutive outliers: the MCU clock was set or stepped; start the mapping again
MAX_EXTRAPOLATION_US = 5_000_000  # a record stamped further past the newest sample waits for a newer one


@dataclass(frozen=True, slots=True)
class ClockSample:
    mcu_us: int  # MCU clock when it received the probe
    host_us: int  # host monotonic clock at the probe's round-trip midpoint
    rtt_us: int


@dataclass
class ClockMap:
    samples: list[ClockSample] = field(default_factory=list)  # oldest first: anchors, then recent ones
    _fit: tuple[int, int, float] | None = None  # (m0, h0, slope): host = h0 + slope * (mcu - m0)
    _fit_error: tuple[int, float] | None = None  # (centre error µs, slope_error): status, snapshots
    _terms: _Terms | None = None  # what the exact bound needs (None for a fit restored without samples)
    _best_rtt: int | None = None
    _newest_mcu: int | None = None  # the newest low-latency sample's MCU time, with the fit
    outliers: int = 0  # consecutive
    restarts: int = 0
    restored_rtt_us: int | None = None  # the best round trip behind a fit restored without its samples

    def add(self, sample: ClockSample) -> str:
        """Take a sample; returns "ok", "outlier" (ignored) or "restarted" (the MCU clock stepped)."""
        if sample.rtt_us < 0:
            return "outlier"
        if self.ready and abs(self.to_host_us(sample.mcu_us) - sample.host_us) > \
                OUTLIER_US + sample.rtt_us + self.error_bound_us(sample.mcu_us):
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
        self._thin()
        self._fit = None
        self._fit_error = None
        self._terms = None
        self._best_rtt = None
        self._newest_mcu = None
        return verdict

    def _thin(self) -> None:
        """Keep the RECENT newest samples and the best of each older bucket (see the module docstring)."""
        if len(self.samples) <= RECENT:
            return
        older, recent = self.samples[:-RECENT], self.samples[-RECENT:]
        best: dict[int, ClockSample] = {}
        for s in older:
            kept = best.get(s.host_us // BUCKET_US)
            if kept is None or s.rtt_us < kept.rtt_us:
                best[s.host_us // BUCKET_US] = s
        self.samples = [best[k] for k in sorted(best)][-ANCHORS:] + recent

    @property
    def ready(self) -> bool:
        return bool(self.samples) or self._fit is not None

    def best_rtt_us(self) -> int | None:
        """Cached until the next sample: every record's UTC mapping asks for it."""
        if self._best_rtt is None:
            self._best_rtt = min((s.rtt_us for s in self.samples), default=self.restored_rtt_us)
        return self._best_rtt

    def covers(self, mcu_us: int) -> bool:
        """False for a reading more than MAX_EXTRAPOLATION_US past the newest low-latency sample: one
        stamped during an outage and replayed after it. Mapped now it would be extrapolated (the
        slope's error times the outage); a low-latency sample after it, a probe or two away, makes it
        an interpolation. A fit restored without samples covers everything (there is nothing better
        to wait for). Requires `ready`."""
        if not self.samples:
            return True
        self.fit()
        assert self._newest_mcu is not None
        return mcu_us <= self._newest_mcu + MAX_EXTRAPOLATION_US

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
        (rounded up to the µs; +1 for the fit's integer rounding). Requires `ready`."""
        m0 = self.fit()[0]
        terms = self._terms
        if terms is None:  # restored without samples: the centre-plus-slope form it was saved with
            e, slope_error = self._fitted()[1]
            return e + math.ceil(slope_error * abs(mcu_us - m0)) + 1
        return math.ceil(terms.bound(mcu_us)) + 1

    def offset_us(self) -> int:
        """MCU clock minus host monotonic clock now (for status)."""
        m0, h0, _ = self.fit()
        return m0 - h0

    def drift_ppm(self) -> float:
        return (self.fit()[2] - 1.0) * 1e6

    def slope_error_ppm(self) -> float:
        """How far the fitted drift may be off (for status: "drift -80.1 +- 0.4 ppm")."""
        return self._fitted()[1][1] * 1e6

    def span_us(self) -> int:
        """Host time between the oldest and the newest sample kept: the slope's baseline."""
        return self.samples[-1].host_us - self.samples[0].host_us if self.samples else 0

    def _compute(self) -> tuple[tuple[int, int, float], tuple[int, float]]:
        """(m0, h0, slope) and its (centre error, slope error); keeps the exact bound's terms.

        Coordinates are relative to the newest sample: MCU clocks read ~1.8e15 µs, where floats would
        lose the microseconds."""
        if not self.samples:
            raise ValueError("no clock samples yet")
        ref = self.samples[-1]
        halves = [max((s.rtt_us + 1) // 2, 1) for s in self.samples]
        xs = [s.mcu_us - ref.mcu_us for s in self.samples]
        ys = [s.host_us - ref.host_us for s in self.samples]
        weights = [1 / e for e in halves]
        total = sum(weights)
        xm = sum(w * x for w, x in zip(weights, xs)) / total
        ym = sum(w * y for w, y in zip(weights, ys)) / total
        low = self._low_latency_us()
        self._newest_mcu = ref.mcu_us + max(x for x, e in zip(xs, halves) if e <= low)
        e_max = max(e for e in halves if e <= low)
        ds = [x - xm for x in xs]
        slope, sxx = 1.0, 0.0
        if max(xs) - min(xs) >= MIN_SPAN_FOR_SLOPE_US:
            sxx = sum(w * d * d for w, d in zip(weights, ds))
            fitted = sum(w * d * y for w, d, y in zip(weights, ds, ys)) / sxx
            if abs(fitted - 1.0) <= MAX_SLOPE_ERROR:
                slope = fitted
            else:
                sxx = 0.0
        slope_error = sum(abs(d) for d in ds) / sxx if sxx else MCU_MAX_DRIFT
        if slope_error > MCU_MAX_DRIFT:  # a short or noisy baseline: the crystal's tolerance says more
            slope, sxx, slope_error = 1.0, 0.0, MCU_MAX_DRIFT
        # any sample (a slow one too) further off the line than the fit allows: an absorbed step
        worst = max((off for d, y, e in zip(ds, ys, halves)
                     if (off := abs(y - ym - d * slope)) > e + e_max), default=0.0)
        self._terms = _Terms(ref.mcu_us + xm, len(halves) / total, ds, weights, sxx, worst)
        m0 = ref.mcu_us + round(xm)
        h0 = ref.host_us + round(ym + (m0 - ref.mcu_us - xm) * slope)
        if worst and sxx:
            slope_error += worst * sum(w * abs(d) for w, d in zip(weights, ds)) / sxx
        return (m0, h0, slope), (math.ceil(len(halves) / total + worst), slope_error)

    def _low_latency_us(self) -> int:
        """Half round trip up to which a sample counts as low-latency (covers, and the miss test)."""
        return (max(2 * min(s.rtt_us for s in self.samples) + RTT_TOLERANCE_US, LOW_LATENCY_US) + 1) // 2

    # -- persistence: the samples (so the baseline survives a restart), and the fit they give ---------
    def snapshot(self) -> dict[str, Any]:
        (m0, h0, slope), (e_max, slope_error) = self._fitted()
        return {"m0": m0, "h0": h0, "slope": slope, "best_rtt_us": self.best_rtt_us(),
                "max_error_us": e_max, "slope_error": slope_error,
                "samples": [[s.mcu_us, s.host_us, s.rtt_us] for s in self.samples]}

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> ClockMap:
        raw = data.get("samples")
        if raw:  # this version: rebuild from the samples themselves
            if not all(isinstance(r, list) and len(r) == 3 and all(type(v) is int for v in r) for r in raw):
                raise ValueError(f"bad clock samples in snapshot {raw!r:.200}")
            restored = cls(samples=[ClockSample(*r) for r in raw])
            restored.fit()
            return restored
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


@dataclass(slots=True)
class _Terms:
    """A fit's exact bound: with c_i(m) = w_i/W + (m - xm)(x_i - xm) w_i / sxx the line's weight on
    sample i, the bound is sum |c_i| e_i = sum |1/W + (m - xm) d_i / sxx| (w_i e_i = 1), plus `worst`
    times sum |c_i| for a miss; n/W + MCU_MAX_DRIFT |m - xm| (+ worst) while the slope is taken as 1."""

    xm: float  # weighted centroid (MCU µs)
    centre: float  # n / W
    ds: list[float]  # x_i - xm
    weights: list[float]
    sxx: float  # 0: slope taken as 1
    worst: float

    def bound(self, mcu_us: int) -> float:
        dist = mcu_us - self.xm
        if not self.sxx:
            return self.centre + MCU_MAX_DRIFT * abs(dist) + self.worst
        inv_total, k = self.centre / len(self.ds), dist / self.sxx
        total = sum(abs(inv_total + k * d) for d in self.ds)
        if self.worst:
            total += self.worst * sum(w * abs(inv_total + k * d) for w, d in zip(self.weights, self.ds))
        return total


def to_utc_us(clock: ClockMap, mcu_us: int, realtime_minus_monotonic_us: int) -> int:
    return to_utc_with_bound(clock, mcu_us, realtime_minus_monotonic_us)[0]


def to_utc_with_bound(clock: ClockMap, mcu_us: int, realtime_minus_monotonic_us: int) -> tuple[int, int]:
    """UTC microseconds for an MCU clock reading.

    When the MCU's clock already runs on UTC (an RTC the integrator keeps set) and agrees with the
    mapped time within the mapping's own error bound for it, its reading is reported unaltered: a
    correction smaller than the error of measuring it would only add noise to what the hardware
    recorded. Returns (UTC µs, error bound µs): the clock map's bound for that reading, plus the
    distance to the mapped time when the MCU's own reading is reported (so the bound stays true
    whichever of the two is nearer the truth).
    """
    mapped = clock.to_host_us(mcu_us) + realtime_minus_monotonic_us
    bound = clock.error_bound_us(mcu_us)
    if abs(mapped - mcu_us) <= bound:
        return mcu_us, bound + abs(mapped - mcu_us)
    return mapped, bound
