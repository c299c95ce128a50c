"""The daemon's status document (`runtime_dir/status.json`), written by the daemon, read by the CLI.

A file on tmpfs rather than a socket: `josev-bridge status` then works even when the daemon is
wedged or gone, and says how old the information is.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from .core.timestamps import format_us

STATUS_FILE = "status.json"
# What get_event_timestamp does while the board's clock is not synchronised (README, "The board's clock")
UNSYNCHRONISED_POLICY = "answered; the journal row says 'host clock unsynchronised'"
STALE_AFTER_S = 5.0

# The MCU link's counters that count trouble (the rest count work done): from the frame decoder
# (protocol/framing), the serial link (adapters/serial_link) and the ingest (services/mcu_ingest).
FAULT_COUNTERS = (
    "crc_errors", "cobs_errors", "oversize", "runt", "bad_version", "discarded_bytes", "io_errors",
    "open_failures", "record_errors", "unknown_types", "duplicates", "held", "lost_records",
    "untimed_records", "clock_outliers", "clock_restarts", "persist_failures", "replay_requests",
    "skipped_records", "alert_listener_errors")


def build(bridge) -> dict:
    """Everything a technician asks first, from a running Bridge."""
    ingest, serial, clock = bridge.ingest, bridge.serial, bridge.ingest.clock
    tracker = ingest.tracker
    counters = {**dataclasses.asdict(serial.decode_counters), **dataclasses.asdict(serial.counters),
                **dataclasses.asdict(ingest.counters)}
    return {
        "pid": os.getpid(),
        "mqtt": {"connected": bridge.mqtt.connected.is_set(),
                 "broker": f"{bridge.config.mqtt.host}:{bridge.config.mqtt.port}",
                 "dropped_publishes": bridge.mqtt.dropped_publishes,
                 "answers_refused_by_broker": bridge.mqtt.refused_by_broker},
        "mcu_link": {
            "state": serial.state.value, "port": bridge.config.serial.url,
            "firmware": ingest.mcu_firmware,
            "boot_id": None if tracker.boot_id is None else f"{tracker.boot_id:08x}",
            "last_seq": ingest.applied_seq,  # applied, not only received (it may wait for a clock sample)
            "last_record_at": None if ingest.last_record_us is None else format_us(ingest.last_record_us),
            "clock": None if clock is None or not clock.ready else {
                "offset_us": clock.offset_us(), "drift_ppm": round(clock.drift_ppm(), 2),
                "drift_error_ppm": round(clock.slope_error_ppm(), 2), "span_s": round(clock.span_us() / 1e6, 1),
                "best_rtt_us": clock.best_rtt_us(), "samples": len(clock.samples)},
            "counters": counters,
            "fault_counters": fault_counters(counters),
        },
        "host_clock": {**bridge.host_clock.status(), "while_unsynchronised": UNSYNCHRONISED_POLICY},
        "get_event_timestamp": {"enabled": bridge.timestamps.enabled(), **dataclasses.asdict(bridge.answers)},
        "rejected_messages": dict(bridge.rejected),
        "device_model": device_model_status(bridge.device_model),
        "journal": None if bridge.journal is None else {
            "path": str(bridge.journal.store.path), "last_id": bridge.journal.last_id,
            "pending": bridge.journal.pending, "pending_bytes": bridge.journal.queued_bytes,
            "last_error": bridge.journal.last_error,
            **dataclasses.asdict(bridge.journal.counters)},
        "api": None if bridge.api is None else {"listen": "%s:%d" % bridge.api.address},
        "alerts": None if bridge.alerts is None else {
            "open": bridge.alerts.open_keys(), "delivered": bridge.alerts.delivered,
            "muted": bridge.alerts.muted, "delivery_failures": bridge.alerts.delivery_failures},
        "export": None if getattr(bridge, "export", None) is None else bridge.export.status(bridge.journal.last_id),
    }


def fault_counters(counters: dict) -> dict:
    """The fault counters among the link's counters, in the counters' order (zeros included)."""
    return {k: v for k, v in counters.items() if k in FAULT_COUNTERS}


def device_model_status(store) -> dict:
    """The values' file, and, when this run recovered it from damage, what was lost: a flag back at its
    default without anyone choosing it must be visible, not only in one log line."""
    salvage = getattr(store, "salvage", None)
    return {"path": str(store.path), **({"recovered_from": None, "lost": []} if salvage is None
                                         else salvage.status())}


def read(runtime_dir: str | Path) -> tuple[dict | None, str | None]:
    """(status, problem): problem says why the daemon is not known to be running and fresh."""
    path = Path(runtime_dir) / STATUS_FILE
    try:
        status = json.loads(path.read_text())
    except FileNotFoundError:
        return None, f"no {path}: the bridge is not running (or [paths] runtime_dir differs)"
    except (OSError, ValueError) as exc:
        return None, f"cannot read {path}: {exc}"
    age = time.time() - status.get("written_at_epoch", 0)
    if not _alive(status.get("pid")):
        return status, f"the bridge (pid {status.get('pid')}) is not running; this is its last status"
    if age > STALE_AFTER_S:
        return status, f"the status is {age:.0f} s old: the bridge is running but not updating (wedged?)"
    return status, None


def _alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
