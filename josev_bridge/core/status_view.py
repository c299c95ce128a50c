"""The status document in words: the verdict (answering, degraded, not answering) and why, and the
MCU clock in human terms. Pure: the CLI's `status` and the status page both show this, so the rule
for "is the bridge all right" lives once, here.

The verdict is about Josev's question: will get_event_timestamp be answered with a hardware time?
- not answering: the bridge is not running, has stopped updating its status (wedged), is not
  connected to the broker (requests do not reach it), or the flag turns answering off;
- degraded: it answers, but from what it already knew or with something else wrong: the MCU link
  is down or silent (new events are not seen), the MCU clock is not mapped yet (new records wait),
  device-model values were lost and fell back to their defaults, the journal fails, export is cut;
- answering: none of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .journal_age import UNKNOWN_BOOT
from .timestamps import format_us

ANSWERING, DEGRADED, NOT_ANSWERING = "answering", "degraded", "not answering"
STALE_AFTER_S = 5.0  # the daemon rewrites its status at least every 2 s


@dataclass(frozen=True)
class Verdict:
    state: str  # ANSWERING, DEGRADED or NOT_ANSWERING
    reasons: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.state == ANSWERING

    def line(self) -> str:
        """The first line of `josev-bridge status`: the verdict, then every reason."""
        return self.state + (": " + "; ".join(self.reasons) if self.reasons else "")


def written_age_s(status: dict[str, Any], *, now_epoch: float, now_monotonic: float, boot_id: str) -> float:
    """Seconds since the daemon wrote `status`: on the host's monotonic clock when it was written in
    this host boot (it is one clock for every process), else by the wall clock. A step of the
    board's clock, NTP's first sync on a board without RTC, must not make a live bridge look wedged
    for years, nor a wedged one look fresh."""
    written = status.get("written_at_monotonic")  # an unreadable boot id matches no boot, not even itself
    if isinstance(written, (int, float)) and status.get("host_boot") == boot_id != UNKNOWN_BOOT:
        return now_monotonic - written
    return now_epoch - float(status.get("written_at_epoch", 0))


def verdict(status: dict[str, Any] | None, *, now_epoch: float, pid_alive: bool,
            age_s: float | None = None) -> Verdict:
    """The verdict on a status document (None: there is none) written by a process whose pid is or
    is not alive now; `age_s`: how long ago it was written (`written_age_s`), else from `now_epoch`."""
    if status is None:
        return Verdict(NOT_ANSWERING, ("the bridge is not running",))
    if not pid_alive:
        return Verdict(NOT_ANSWERING, (f"the bridge is not running (pid {status.get('pid')} has ended; "
                                       f"its last status is from {status.get('written_at', '?')})",))
    age = now_epoch - float(status.get("written_at_epoch", 0)) if age_s is None else age_s
    if age > STALE_AFTER_S:
        return Verdict(NOT_ANSWERING, (f"the bridge (pid {status.get('pid')}) has not updated its status for "
                                       f"{age:.0f} s: wedged? (systemd's watchdog restarts a hung bridge)",))
    fatal, degraded = [], []
    mqtt = status.get("mqtt") or {}
    if not mqtt.get("connected"):
        fatal.append(f"not connected to the broker {mqtt.get('broker', '')}".rstrip())
    if not (status.get("get_event_timestamp") or {}).get("enabled", True):
        fatal.append("get_event_timestamp is turned off (JOSEV_CTRLR.EnableGetEventTimestampRequest is false)")
    link = status.get("mcu_link") or {}
    if link.get("state") == "closed":
        degraded.append(f"MCU link down ({link.get('port')} not open): new events are not seen")
    elif link.get("state") == "silent":
        degraded.append(f"MCU link silent (no frame from the MCU on {link.get('port')}): new events are not seen")
    elif link.get("state") == "open" and not link.get("clock"):
        degraded.append("MCU clock not mapped yet: new records wait for it")
    dm = status.get("device_model") or {}
    if dm.get("recovered_from"):
        lost = ", ".join(dm.get("lost") or []) or "no value"
        degraded.append(f"device model damaged at start; back to their defaults: {lost}")
    journal = status.get("journal") or {}
    if journal.get("last_error"):
        degraded.append(f"journal failing: {journal['last_error']}")
    export = status.get("export") or {}
    if export and not export.get("connected"):
        degraded.append(f"export to {export.get('broker')} disconnected ({export.get('backlog', '?')} rows waiting)")
    if fatal:
        return Verdict(NOT_ANSWERING, tuple(fatal + degraded))
    return Verdict(DEGRADED, tuple(degraded)) if degraded else Verdict(ANSWERING)


def duration_words(us: int) -> str:
    """A duration the way a person says it, rounded to its last unit: `850 ms`, `12.3 s`,
    `4 min 05 s`, `5 h 02 min`, `3 d 04 h`, `56 years`."""
    us = abs(us)
    if us < 1_000_000:
        return f"{us / 1000:.0f} ms" if us >= 10_000 else f"{us / 1000:.1f} ms"
    if us < 59_950_000:
        return f"{us / 1e6:.1f} s"
    seconds = round(us / 1e6)
    if seconds < 3600:
        minutes_, seconds_ = divmod(seconds, 60)
        return f"{minutes_} min {seconds_:02d} s"
    minutes = round(us / 60e6)
    if minutes < 24 * 60:
        hours_, minutes_ = divmod(minutes, 60)
        return f"{hours_} h {minutes_:02d} min"
    hours = round(us / 3600e6)
    if hours < 365 * 24:
        days_, hours_ = divmod(hours, 24)
        return f"{days_} d {hours_:02d} h"
    return f"{us / 86_400e6 / 365.25:.0f} years"


def clock_words(clock: dict[str, Any] | None, written_at_epoch: float | None = None, subject: bool = True) -> str:
    """`MCU clock 5 h 02 min behind UTC, drift: MCU fast by 12 ppm, mapping error bound 0.2 ms`.

    From the status's `mcu_link.clock`: `mcu_minus_utc_us` (MCU clock minus UTC when the status was
    written), `mcu_fast_ppm` (how much faster than the host the MCU's clock runs; negative: slower)
    and `error_bound_us` (the mapping's bound for a record stamped now). A status written before
    these existed says what it has. `subject=False` leaves out the leading "MCU clock " (a line
    already labelled so).
    """
    words = _clock_words(clock, written_at_epoch)
    return words if subject or not words.startswith("MCU clock ") else words[len("MCU clock "):]


def _clock_words(clock: dict[str, Any] | None, written_at_epoch: float | None) -> str:
    if not clock:
        return "not mapped yet (no clock probe answered)"
    if "mcu_minus_utc_us" not in clock:
        return f"mapped ({clock.get('samples', '?')} samples); this bridge's version states no offset to UTC"
    diff = int(clock["mcu_minus_utc_us"])
    if abs(diff) < 1000:
        offset = "MCU clock agrees with UTC (within 1 ms)"
    else:
        side = "behind" if diff < 0 else "ahead of"
        offset = f"MCU clock {duration_words(diff)} {side} UTC"
        if abs(diff) >= 365 * 86_400_000_000 and written_at_epoch:  # a counter since boot, not a clock set to UTC
            offset += f" (it reads {format_us(int(written_at_epoch * 1e6) + diff)}: not set; the bridge maps it)"
    ppm = clock.get("mcu_fast_ppm")
    if ppm is None:
        drift = "drift: not measured yet (the probes span under 10 s)"
    elif abs(ppm) < 0.05:
        drift = "drift: none measured"
    else:
        drift = f"drift: MCU {'fast' if ppm > 0 else 'slow'} by {abs(ppm):.1f} ppm" if abs(ppm) < 10 else \
            f"drift: MCU {'fast' if ppm > 0 else 'slow'} by {abs(ppm):.0f} ppm"
    if ppm is not None and clock.get("drift_error_ppm") is not None:
        drift += f" (+- {clock['drift_error_ppm']:.1f} ppm, probes over {duration_words(int(clock['span_s'] * 1e6))})"
    bound = clock.get("error_bound_us")
    words = f"{offset}, {drift}"
    if bound is not None:
        words += f", mapping error bound {_ms(int(bound))}"
    return words


def _ms(us: int) -> str:
    """0.23 ms, 1.2 ms, 15 ms: two significant digits are all a bound needs."""
    ms = us / 1000
    return f"{ms:.2f} ms" if ms < 1 else f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


def host_clock_words(host: dict[str, Any] | None) -> str | None:
    """The board's own clock, from the status's `host_clock`: synchronised or not, what
    get_event_timestamp does meanwhile, the steps seen. None for a status written before it existed."""
    if not host:
        return None
    text = str(host["state"])
    if not host["synchronised"]:
        text = text.replace("not synchronised", "NOT SYNCHRONISED", 1)
        text += f"; get_event_timestamp {host['while_unsynchronised']}"
    if host["steps"]:
        text += f"; {host['steps']} step(s) seen, last {host['last_step_us'] / 1e6:+.3f} s at {host['last_step_at']}"
    return text
