"""What the daemon's status document says: `build` it from a running Bridge.

The daemon writes it to `runtime_dir/status.json` and the CLI and the status page read it back, all
through adapters/status_file (the file's name, mode, reading and the writer's pid); this module
decides only what goes in it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from .core.timestamps import format_us

# What get_event_timestamp does while the board's clock is not synchronised (README, "The board's clock")
UNSYNCHRONISED_POLICY = "answered; the journal row says 'host clock unsynchronised'"

# The MCU link's counters that count trouble (the rest count work done): from the frame decoder
# (protocol/framing), the serial link (adapters/serial_link) and the ingest (services/mcu_ingest).
FAULT_COUNTERS = (
    "crc_errors", "cobs_errors", "oversize", "runt", "bad_version", "discarded_bytes", "io_errors",
    "open_failures", "record_errors", "unknown_types", "duplicates", "held", "lost_records",
    "untimed_records", "clock_outliers", "clock_restarts", "persist_failures", "replay_requests",
    "skipped_records", "alert_listener_errors", "untimed_edges", "keepalive_gaps")


def build(bridge) -> dict:
    """Everything a technician asks first, from a running Bridge."""
    ingest, serial = bridge.ingest, bridge.serial
    tracker = ingest.tracker
    counters = {**dataclasses.asdict(serial.decode_counters), **dataclasses.asdict(serial.counters),
                **dataclasses.asdict(ingest.counters)}
    return {
        "pid": os.getpid(),
        # which bridge this is: `status --config X` must not show another bridge's status as X's
        "config_file": str(Path(bridge.config.source).resolve()), "state_dir": str(bridge.config.state_dir.resolve()),
        "mqtt": {"connected": bridge.mqtt.connected.is_set(),
                 "broker": f"{bridge.config.mqtt.host}:{bridge.config.mqtt.port}",
                 "dropped_publishes": bridge.mqtt.dropped_publishes,
                 "answers_refused_by_broker": bridge.mqtt.refused_by_broker,
                 "failed_connects": bridge.mqtt.failed_connects},
        "mcu_link": {
            "state": serial.state.value, "port": bridge.config.serial.url,
            "firmware": ingest.mcu_firmware,
            "protocol_version": ingest.boots.protocol_version,  # the MCU's, from its HELLO
            "protocol_reduced_guarantees": ingest.boots.reduced_guarantees,  # older than the bridge's
            "boot_id": None if tracker.boot_id is None else f"{tracker.boot_id:08x}",
            "last_seq": ingest.applied_seq,  # applied, not only received (it may wait for a clock sample)
            "last_record_at": None if ingest.last_record_us is None else format_us(ingest.last_record_us),
            "clock": clock_status(ingest),
            "counters": counters,
            "fault_counters": fault_counters(counters),
        },
        "host_clock": {**bridge.host_clock.status(), "while_unsynchronised": UNSYNCHRONISED_POLICY},
        "get_event_timestamp": {"enabled": bridge.timestamps.enabled(), **dataclasses.asdict(bridge.answers)},
        "rejected_messages": dict(bridge.intake.rejected),
        "device_model": device_model_status(bridge.device_model),
        "journal": None if bridge.journal is None else {
            "path": str(bridge.journal.store.path), "last_id": bridge.journal.last_id,
            "pending": bridge.journal.pending, "pending_bytes": bridge.journal.queued_bytes,
            "last_error": bridge.journal.last_error,
            **dataclasses.asdict(bridge.journal.counters)},
        "api": None if bridge.api is None else bridge.api.status(),
        "alerts": None if bridge.alerts is None else {
            "open": bridge.alerts.open_keys(), "delivered": bridge.alerts.delivered,
            "muted": bridge.alerts.muted, "delivery_failures": bridge.alerts.delivery_failures},
        "export": None if getattr(bridge, "export", None) is None else bridge.export.status(bridge.journal.last_id),
    }


def mcu_fast_ppm(slope_ppm: float) -> float:
    """How fast the MCU clock runs against the host's, in ppm: positive = fast, as a technician (and a
    crystal's datasheet) counts it (docs/serial-protocol.md, end of 5). The clock fit's slope is host
    time per MCU time, (slope - 1) * 1e6 = `slope_ppm`: an MCU 80 ppm fast has a slope of 1/(1 + 80e-6)."""
    return (1 / (1 + slope_ppm / 1e6) - 1) * 1e6


def clock_status(ingest) -> dict | None:
    """The current boot's clock fit, read under the ingest's lock: the serial thread adds samples
    under it, and ClockMap caches its fit, so a fit computed here while a sample arrives could be
    cached stale (or from a list changing underneath) and map the next records with it."""
    with ingest.lock:
        clock = ingest.clock
        if clock is None or not clock.ready:
            return None
        # the rate is clock_in_utc's `mcu_fast_ppm`; `drift_error_ppm` is how far it may be off
        return {"offset_us": clock.offset_us(),
                "drift_error_ppm": round(clock.slope_error_ppm(), 2), "span_s": round(clock.span_us() / 1e6, 1),
                "best_rtt_us": clock.best_rtt_us(), "samples": len(clock.samples),
                **clock_in_utc(clock, ingest.host_clock.monotonic_us(), ingest.host_clock.realtime_us())}


def clock_in_utc(clock, mono_us: int | None = None, utc_us: int | None = None) -> dict:
    """What a technician asks of the MCU clock, for `core.status_view.clock_words`: how far it is
    from UTC now, how much faster than the host it runs (ppm; negative: slower), and the mapping's
    error bound for a record the MCU stamps now."""
    mono_us = time.monotonic_ns() // 1000 if mono_us is None else mono_us
    utc_us = time.time_ns() // 1000 if utc_us is None else utc_us
    m0, h0, slope = clock.fit()
    mcu_now = m0 + round((mono_us - h0) / slope)
    return {"mcu_minus_utc_us": mcu_now - utc_us,
            # the slope is exactly 1 until it is measured (core/clock_map): None, not a rate of 0
            "mcu_fast_ppm": None if slope == 1.0 else round(mcu_fast_ppm((slope - 1) * 1e6), 2),
            "error_bound_us": clock.error_bound_us(mcu_now)}


def fault_counters(counters: dict) -> dict:
    """The fault counters among the link's counters, in the counters' order (zeros included)."""
    return {k: v for k, v in counters.items() if k in FAULT_COUNTERS}


def device_model_status(store) -> dict:
    """The values' file, and, when this run recovered it from damage, what was lost: a flag back at its
    default without anyone choosing it must be visible, not only in one log line."""
    salvage = getattr(store, "salvage", None)
    return {"path": str(store.path), **({"recovered_from": None, "lost": []} if salvage is None
                                         else salvage.status())}
