"""`josev-bridge status`: the daemon's status document (written by it; see status_report), as a table."""

from __future__ import annotations

import argparse
import json
import sys

from .. import status_report
from ..config import load
from .common import EXIT_FAIL, EXIT_OK, table


def status(args: argparse.Namespace) -> int:
    config = load(args.config)
    status, problem = status_report.read(config.paths.runtime_dir)
    if args.json:
        print(json.dumps({"ok": problem is None, "problem": problem, "status": status}, indent=2))
        return EXIT_OK if problem is None else EXIT_FAIL
    if problem:
        print(f"josev-bridge: {problem}", file=sys.stderr)
    if status is None:
        return EXIT_FAIL
    link, mqtt_ = status["mcu_link"], status["mqtt"]
    clock = link["clock"]
    counters = link["counters"]
    # a status written by an older daemon has no fault_counters: derived from its counters the same way
    faults = {k: v for k, v in (link.get("fault_counters") or status_report.fault_counters(counters)).items() if v}
    rows = [
        ["bridge", f"pid {status['pid']}, status written {status['written_at']}"],
        ["broker", f"{mqtt_['broker']} {'connected' if mqtt_['connected'] else 'DISCONNECTED'}"],
        ["MCU link", f"{link['state']} on {link['port']}"],
        ["MCU", f"firmware {link['firmware'] or '?'}, boot {link['boot_id'] or '?'}, last seq {link['last_seq']}"],
        ["last record", link["last_record_at"] or "-"],
        ["MCU clock", "not mapped yet" if not clock else
         f"offset {clock['offset_us'] / 1e6:+.6f} s vs host monotonic, drift {clock['drift_ppm']:+.1f}"
         + (f" +- {clock['drift_error_ppm']:.1f}" if "drift_error_ppm" in clock else "") + " ppm, "
         f"best round trip {clock['best_rtt_us']} us ({clock['samples']} samples"
         + (f" over {clock['span_s']:g} s)" if "span_s" in clock else ")")],
        *host_clock_rows(status.get("host_clock")),
        ["records", f"{counters['records']} applied, {counters['edges']} edges"],
        ["faults", ", ".join(f"{k} {v}" for k, v in faults.items()) or "none"],
        ["get_event_timestamp", f"{'enabled' if status['get_event_timestamp']['enabled'] else 'DISABLED'}, "
                                f"answered {status['get_event_timestamp']['answered']}, "
                                f"silent {status['get_event_timestamp']['silent']}" +
                                (f", NOT SENT {status['get_event_timestamp']['not_sent']}"
                                 if status['get_event_timestamp'].get('not_sent') else "")],
    ]
    rows += status_extras(status)
    table(None, rows)
    return EXIT_OK if problem is None else EXIT_FAIL


def host_clock_rows(host: dict | None) -> list[list[str]]:
    """The board's clock: synchronised or not, what answers do meanwhile, the steps seen (absent: an
    older daemon)."""
    if not host:
        return []
    text = host["state"]
    if not host["synchronised"]:
        text = text.replace("not synchronised", "NOT SYNCHRONISED", 1)
        text += f"; get_event_timestamp {host['while_unsynchronised']}"
    if host["steps"]:
        text += f"; {host['steps']} step(s) seen, last {host['last_step_us'] / 1e6:+.3f} s at {host['last_step_at']}"
    return [["host clock", text]]


def status_extras(status: dict) -> list[list[str]]:
    """Journal, API, alerts and export lines (absent sections: a daemon of an older version, or turned off)."""
    rows = []
    dm = status.get("device_model")
    if dm and dm.get("recovered_from"):
        lost = ", ".join(dm["lost"]) or "no value"
        rows.append(["device model", f"DAMAGED at start ({dm['why']}), moved aside to {dm['recovered_from']}; "
                                     f"recovered {len(dm['recovered'])} value(s); LOST (back to defaults): {lost}"])
    journal = status.get("journal")
    if journal:
        trouble = f", ERROR {journal['last_error']}" if journal.get("last_error") else ""
        shed = f", {journal['payloads_shed']} payloads shed" if journal.get("payloads_shed") else ""
        rows.append(["journal", f"{journal['written']} rows written (last id {journal['last_id']}), "
                                f"{journal['pending']} pending, {journal['dropped']} dropped{shed}{trouble}"])
    if status.get("api"):
        rows.append(["API", f"http://{status['api']['listen']}"])
    alerts = status.get("alerts")
    if alerts:
        rows.append(["alerts", f"{len(alerts['open'])} open ({', '.join(alerts['open']) or '-'}), "
                               f"{alerts['delivered']} delivered, {alerts['muted']} muted, "
                               f"{alerts['delivery_failures']} delivery failures"])
    export = status.get("export")
    if export:
        rows.append(["export", f"{export['broker']} {'connected' if export['connected'] else 'DISCONNECTED'}, "
                               f"backlog {export['backlog']} rows" +
                               (f", {export['lost_to_retention']} rows lost to retention"
                                if export.get("lost_to_retention") else "") +
                               (f", last error {export['last_error']}" if export.get("last_error") else "")])
    return rows
