"""`josev-bridge status`: the verdict first, then the daemon's status document in words.

The daemon writes `runtime_dir/status.json` at least every 2 s (adapters/status_file); this reads it, so it
works while the daemon is wedged or gone. "Not running" is known from the file: no file (systemd
removes the runtime directory at stop), or a pid that no longer exists; a live pid with a file
older than 5 s is a wedged bridge. The verdict itself is core/status_view's, shared with the
status page.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .. import status_report
from ..adapters import status_file
from ..config import Config
from ..core.status_view import NOT_ANSWERING, Verdict, clock_words, host_clock_words, verdict
from .access import require
from .common import EXIT_FAIL, EXIT_OK, fields, load_config, terminal_width


def observe(config: Config) -> tuple[dict | None, Verdict, str | None]:
    """(status, verdict, note) for the bridge `config` names. The note says where the status came
    from when that matters (no file; a file written by another bridge)."""
    path = status_file.status_path(config.paths.runtime_dir)
    require(path, "read", "reading the bridge's status")
    status, problem = status_file.read(config.paths.runtime_dir)
    if status is None:
        note = None if problem and "not running" in problem else problem
        return None, verdict(None, now_epoch=time.time(), pid_alive=False), note or (
            f"no {path}: the daemon writes it while it runs; start it with: sudo systemctl start josev-bridge")
    other = _other_bridge(status, config)
    if other:
        return None, Verdict(NOT_ANSWERING, (f"no status of this bridge: {other}",)), None
    return status, verdict(status, now_epoch=time.time(), pid_alive=status_file.alive(status.get("pid")),
                           age_s=status_file.age_s(status)), None


def _other_bridge(status: dict, config: Config) -> str | None:
    """Why `status` is another bridge's (its state_dir is not the one `config` names), or None.

    Two bridges on one board each need their own [paths] runtime_dir; without it, the second
    config's default points at the first bridge's status, which must not pass for its own."""
    theirs = status.get("state_dir")
    if theirs is None:  # written by a version that did not say
        return None
    ours = str(config.state_dir.resolve())
    if Path(theirs) == Path(ours):
        return None
    return (f"{status_file.status_path(config.paths.runtime_dir)} is the status of the bridge with state_dir "
            f"{theirs} (config {status.get('config_file', '?')}), not of {ours} ({config.source}); give each "
            f"bridge its own [paths] runtime_dir")


def status(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    doc, judged, note = observe(config)
    if args.json:
        print(json.dumps({"ok": judged.ok, "verdict": {"state": judged.state, "reasons": list(judged.reasons)},
                          "problem": None if judged.ok else judged.line(), "status": doc}, indent=2))
        return EXIT_OK if judged.ok else EXIT_FAIL
    print(judged.line())
    if doc is None:
        if note:
            print(note)
        return EXIT_FAIL
    print()
    fields(rows(doc), width=terminal_width(args.wide))
    return EXIT_OK if judged.ok else EXIT_FAIL


def rows(status: dict) -> list[tuple[str, str]]:
    """The status document as `label  value` lines."""
    link, mqtt_ = status["mcu_link"], status["mqtt"]
    counters = link["counters"]
    # a status written by an older daemon has no fault_counters: derived from its counters the same way
    faults = {k: v for k, v in (link.get("fault_counters") or status_report.fault_counters(counters)).items() if v}
    get_ts = status["get_event_timestamp"]
    out = [
        ("bridge", f"pid {status['pid']}, status written {status['written_at']}"
                   + (f", config {status['config_file']}" if status.get("config_file") else "")),
        ("broker", f"{mqtt_['broker']} {'connected' if mqtt_['connected'] else 'DISCONNECTED'}"),
        ("MCU link", f"{link['state']} on {link['port']}"),
        ("MCU", f"firmware {link['firmware'] or '?'}, "
                f"{protocol(link.get('protocol_version'), link.get('protocol_reduced_guarantees'))}, "
                f"boot {link['boot_id'] or '?'}, last seq {link['last_seq']}"),
        ("last record", link["last_record_at"] or "-"),
        ("MCU clock", clock_words(link["clock"], status.get("written_at_epoch"), subject=False)
         + (f" ({link['clock']['samples']} probes, best round trip {link['clock']['best_rtt_us']} us)"
            if link["clock"] else "")),
        *((("host clock", words),) if (words := host_clock_words(status.get("host_clock"))) else ()),
        ("records", f"{counters['records']} applied, {counters['edges']} edges"),
        ("faults", ", ".join(f"{k} {v}" for k, v in faults.items()) or "none"),
        ("answers", f"get_event_timestamp {'enabled' if get_ts['enabled'] else 'DISABLED'}, "
                    f"answered {get_ts['answered']}, silent {get_ts['silent']}"
                    + (f", NOT SENT {get_ts['not_sent']}" if get_ts.get("not_sent") else "")),
    ]
    return out + status_extras(status)


def protocol(version: int | None, reduced: bool | None) -> str:
    """The MCU's serial protocol version, and what an old one costs (docs/serial-protocol.md 4.7)."""
    if version is None:
        return "protocol ?"
    if reduced:
        return (f"protocol v{version} (OLD: reduced guarantees; a level that changes while the MCU reboots is "
                "timed at its re-report, a lost last record waits for the next record; update its firmware)")
    return f"protocol v{version}"


def status_extras(status: dict) -> list[tuple[str, str]]:
    """Journal, API, alerts and export lines (absent sections: a daemon of an older version, or turned off)."""
    rows = []
    dm = status.get("device_model")
    if dm and dm.get("recovered_from"):
        lost = ", ".join(dm["lost"]) or "no value"
        rows.append(("device model", f"DAMAGED at start ({dm['why']}), moved aside to {dm['recovered_from']}; "
                                     f"recovered {len(dm['recovered'])} value(s); LOST (back to defaults): {lost}"))
    journal = status.get("journal")
    if journal:
        trouble = f", ERROR {journal['last_error']}" if journal.get("last_error") else ""
        shed = f", {journal['payloads_shed']} payloads shed" if journal.get("payloads_shed") else ""
        rows.append(("journal", f"{journal['written']} rows written (last id {journal['last_id']}), "
                                f"{journal['pending']} pending, {journal['dropped']} dropped{shed}{trouble}"))
    if status.get("api"):
        rows.append(("API", api_line(status["api"])))
    alerts = status.get("alerts")
    if alerts:
        rows.append(("alerts", f"{len(alerts['open'])} open ({', '.join(alerts['open']) or '-'}), "
                               f"{alerts['delivered']} delivered, {alerts['muted']} muted, "
                               f"{alerts['delivery_failures']} delivery failures"))
    export = status.get("export")
    if export:
        rows.append(("export", f"{export['broker']} {'connected' if export['connected'] else 'DISCONNECTED'}, "
                               f"backlog {export['backlog']} rows" +
                               (f", {export['lost_to_retention']} rows lost to retention"
                                if export.get("lost_to_retention") else "") +
                               (f", last error {export['last_error']}" if export.get("last_error") else "")))
    return rows


def api_line(api: dict) -> str:
    """Where the API listens, and whether its process (its own since issue 12) is serving it."""
    line = f"http://{api['listen']}"
    if "up" not in api:  # written by a daemon that served the API in its own process
        return line
    line += f", process {api['pid']} up" if api["up"] else ", process DOWN (the daemon starts it again)"
    if api.get("restarts"):
        line += f", restarted {api['restarts']} time(s)"
    if api.get("last_exit"):
        line += f", last exit: {api['last_exit']}"
    return line
