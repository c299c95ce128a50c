"""`josev-bridge`: the daemon, the technician's tools and the simulator behind one command."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from . import __version__
from .config import DEFAULT_CONFIG, Config, ConfigError, load
from .core.conditions import TRIGGER_REASONS, EventType
from .core.device_model import DeviceModelError, Source

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_DENIED = 0, 1, 2, 3


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"josev-bridge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a read-only or full disk, a damaged file: one line naming it, no traceback
        from .adapters.damage import describe

        print(f"josev-bridge: {describe(exc)}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="josev-bridge", description=__doc__)
    p.add_argument("--version", action="version", version=f"josev-bridge {__version__}")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--config", default=os.environ.get("JOSEV_BRIDGE_CONFIG", DEFAULT_CONFIG),
                        help=f"configuration file (default: $JOSEV_BRIDGE_CONFIG or {DEFAULT_CONFIG})")
        return sp

    run = with_config(sub.add_parser("run", help="run the bridge daemon"))
    run.set_defaults(func=_run)

    check = with_config(sub.add_parser("check-config", help="validate the configuration without starting"))
    check.set_defaults(func=_check_config)

    dm = sub.add_parser("dm", help="read and change device-model variables")
    dm_sub = dm.add_subparsers(title="device-model commands", metavar="ACTION")
    dm_list = with_config(dm_sub.add_parser("list", help="list variables and their values"))
    dm_list.add_argument("component", nargs="?")
    dm_list.add_argument("--json", action="store_true", help="JSON for scripts")
    dm_list.set_defaults(func=_dm_list)
    dm_get = with_config(dm_sub.add_parser("get", help="print one variable's value"))
    dm_get.add_argument("component")
    dm_get.add_argument("variable")
    dm_get.add_argument("--json", action="store_true", help="JSON for scripts")
    dm_get.set_defaults(func=_dm_get)
    dm_set = with_config(dm_sub.add_parser("set", help="change a variable; the running daemon applies it within a second"))
    dm_set.add_argument("component")
    dm_set.add_argument("variable")
    dm_set.add_argument("value")
    dm_set.set_defaults(func=_dm_set)
    dm_reset = with_config(dm_sub.add_parser("reset", help="back to the definitions' default"))
    dm_reset.add_argument("component")
    dm_reset.add_argument("variable")
    dm_reset.set_defaults(func=_dm_reset)
    dm_hist = with_config(dm_sub.add_parser("history", help="who changed what, newest first"))
    dm_hist.add_argument("component", nargs="?")
    dm_hist.add_argument("variable", nargs="?")
    dm_hist.add_argument("--limit", type=int, default=20)
    dm_hist.add_argument("--json", action="store_true", help="JSON lines for scripts")
    dm_hist.set_defaults(func=_dm_history)

    msgs = with_config(sub.add_parser("messages", help="what the bridge received and answered (the journal)",
                                      description="Reads the journal database directly: works while the daemon is down."))
    msgs.add_argument("--type", action="append", default=[], metavar="T",
                      help="only this message type (repeatable), e.g. get_event_timestamp, device_model_change, mcu_link")
    msgs.add_argument("--since", default="24h", help="a duration ago (90s, 15m, 2h, 3d) or a date-time (default 24h)")
    msgs.add_argument("--until", default="now", help="a duration ago or a date-time (default now)")
    msgs.add_argument("--limit", type=int, default=50, help="the newest N rows of the range (default 50)")
    msgs.add_argument("--json", action="store_true", help="JSON lines (the API's row shape) for scripts")
    msgs.add_argument("--follow", "-f", action="store_true", help="then keep printing new rows as they arrive")
    msgs.set_defaults(func=_messages)

    alerts = with_config(sub.add_parser("alerts", help="alerts raised from the hardware (faults, offline, SoC, late)",
                                        description="Reads the alert store directly: works while the daemon is down."))
    alerts.add_argument("--since", default="7d", help="alerts that started after: a duration ago (2h, 3d) or a date-time "
                                                      "(default 7d)")
    alerts.add_argument("--include-muted", action="store_true", help="also alerts a muting rule kept from delivery")
    alerts.add_argument("--limit", type=int, default=50, help="the newest N (default 50)")
    alerts.add_argument("--json", action="store_true", help="JSON lines in the API's shape (Flipturn's GET /api/alerts)")
    alerts.add_argument("--follow", "-f", action="store_true", help="then keep printing new alerts as they are raised")
    alerts.set_defaults(func=_alerts)

    status = with_config(sub.add_parser("status", help="is the bridge running; broker, MCU link, clock, fault counters"))
    status.add_argument("--json", action="store_true", help="the whole status document as JSON")
    status.set_defaults(func=_status)

    req = sub.add_parser("request", help="play the OCPP service once and print the answer")
    req_sub = req.add_subparsers(title="requests", metavar="REQUEST")
    get_ts = with_config(req_sub.add_parser("get-event-timestamp", help="ask get_event_timestamp on ocpp/cs"))
    get_ts.add_argument("--event-type", required=True, choices=[e.value for e in EventType])
    get_ts.add_argument("--trigger-reason", required=True, choices=[c.value for c in TRIGGER_REASONS])
    get_ts.add_argument("--evse-id", type=int)
    get_ts.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer (default 5)")
    get_ts.set_defaults(func=_request_get_event_timestamp)

    from .sim import app as sim_app

    sim = sub.add_parser("sim", help="run the simulated MCU (pseudo-terminal + OCPPLAB-style control API)")
    sim_app.add_arguments(sim)
    sim.set_defaults(func=sim_app.run)
    return p


# -- daemon ---------------------------------------------------------------------------------------
def _run(args: argparse.Namespace) -> int:
    from .daemon import run

    return run(args.config)


def _check_config(args: argparse.Namespace) -> int:
    from .adapters.device_model_store import load_definitions
    from .schemas import assert_format_checking

    config = load(args.config)
    assert_format_checking()
    try:
        defs = load_definitions(config.paths.device_model_dir or None)
    except DeviceModelError as exc:
        raise ConfigError(f"[paths] device_model_dir: {exc}") from None
    _check_files(config)
    print(f"{args.config}: OK (broker {config.mqtt.host}:{config.mqtt.port} MQTT {config.mqtt.protocol}, "
          f"MCU {config.serial.url} at {config.serial.baudrate} baud, state in {config.paths.state_dir}, "
          f"{len(defs)} device-model variable(s))")
    return EXIT_OK


def _check_files(config: Config) -> None:
    """What the daemon reads only when it connects: secrets (present, 0600, readable, not empty; never printed)
    and TLS files (readable), so a wrong mode or path shows here rather than as a reconnect loop."""
    from .config import API_TOKEN_FIX, SECRET_FIX, read_secret

    e = config.export if config.export.enabled else None
    secrets = [("[mqtt] password_file", config.mqtt.password_file, SECRET_FIX),
               ("[export] password_file", e.password_file if e else None, SECRET_FIX)]
    try:
        token_exists = config.api.enabled and config.api_token_file.exists()
    except OSError as exc:  # e.g. the state directory is not searchable by this user
        raise ConfigError(f"[api] token_file: {config.api_token_file}: cannot check it: {exc.strerror}") from None
    if token_exists:
        secrets.append(("[api] token_file", str(config.api_token_file), API_TOKEN_FIX))
    for what, path, fix in secrets:
        if path:
            read_secret(path, what, fix=fix)  # an empty file is an error too (EmptySecret)
    tls = [("[mqtt] tls_ca", config.mqtt.tls_ca), ("[mqtt] tls_cert", config.mqtt.tls_cert),
           ("[mqtt] tls_key", config.mqtt.tls_key)]
    if e is not None:
        tls += [("[export] tls_ca", e.tls_ca), ("[export] tls_cert", e.tls_cert), ("[export] tls_key", e.tls_key)]
    for what, path in tls:
        if path and not (os.path.isfile(path) and os.access(path, os.R_OK)):
            why = "not readable" if os.path.isfile(path) else "not a file" if os.path.exists(path) else "no such file"
            raise ConfigError(f"{what}: {path}: {why}")


# -- device model ---------------------------------------------------------------------------------
def _store(config: Config):
    from .adapters.device_model_store import DeviceModelStore, load_definitions

    if not config.state_dir.is_dir():
        raise ConfigError(f"[paths] state_dir: {config.state_dir} does not exist (has the daemon run yet?)")
    store = DeviceModelStore(config.state_dir, load_definitions(config.paths.device_model_dir or None))
    if store.writable() is None:
        store.seed_defaults()  # the daemon does this too; here so the CLI works before its first start
    return store


def _user() -> str:
    """The Unix user making a change, with the sudo caller when there is one."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = str(os.getuid())
    sudo = os.environ.get("SUDO_USER")
    return f"{name} (sudo by {sudo})" if sudo and sudo != name else name


def _dm_rows(store, component: str | None) -> list[dict]:
    """One row per defined variable attribute, with its value (hidden for WriteOnly) and source."""
    from .core.device_model import Mutability

    rows = []
    for var in sorted(store.definitions.values(), key=lambda v: (v.component, v.name)):
        if component and var.component != component:
            continue
        for attr in var.attributes.values():
            stored = store.get(var.component, var.name, attr.type)
            hidden = attr.mutability is Mutability.WRITE_ONLY
            rows.append({"component": var.component, "variable": var.name, "attribute": attr.type,
                         "value": None if stored is None or hidden else stored.value,
                         "source": stored.source if stored else None, "updated_at": stored.updated_at if stored else None,
                         "data_type": var.data_type.value, "mutability": attr.mutability.value,
                         "allowed": var.allowed()})
    return rows


def _dm_list(args: argparse.Namespace) -> int:
    store = _store(load(args.config))
    rows = _dm_rows(store, args.component)
    if args.component and not rows:
        known = sorted({c for c, _ in store.definitions})
        print(f"josev-bridge: no component {args.component!r} in the device model (known: {', '.join(known)})",
              file=sys.stderr)
        return EXIT_FAIL
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    _table(["COMPONENT", "VARIABLE", "VALUE", "SOURCE", "TYPE", "MUTABILITY", "UPDATED"],
           [[r["component"], r["variable"] + ("" if r["attribute"] == "Actual" else f" ({r['attribute']})"),
             "-" if r["value"] is None else r["value"], r["source"] or "-", r["data_type"], r["mutability"],
             r["updated_at"] or "-"] for r in rows])
    return EXIT_OK


def _dm_get(args: argparse.Namespace) -> int:
    store = _store(load(args.config))
    try:
        store.definition(args.component, args.variable)
    except DeviceModelError as exc:
        print(f"josev-bridge: {exc}", file=sys.stderr)
        return EXIT_FAIL
    row = next(r for r in _dm_rows(store, args.component) if r["variable"] == args.variable)
    if row["value"] is None:
        print(f"josev-bridge: {args.component}.{args.variable} has no readable value ({row['mutability']})",
              file=sys.stderr)
        return EXIT_FAIL
    print(json.dumps(row) if args.json else row["value"])
    return EXIT_OK


def _dm_change(args: argparse.Namespace, change_fn) -> int:
    import sqlite3

    from .adapters.damage import describe, storage_error
    from .adapters.device_model_store import PermissionDenied

    store = _store(load(args.config))
    try:
        store.definition(args.component, args.variable)
        store.require_writable()
        change = change_fn(store)
    except PermissionDenied as exc:
        print(f"josev-bridge: {exc}; nothing changed", file=sys.stderr)
        return EXIT_DENIED
    except DeviceModelError as exc:
        print(f"josev-bridge: {exc}; nothing changed", file=sys.stderr)
        return EXIT_FAIL
    except sqlite3.Error as exc:  # the disk is full, or turned read-only, under the CLI
        print(f"josev-bridge: {describe(storage_error(store.path, exc))}; nothing changed", file=sys.stderr)
        return EXIT_FAIL
    print(f"{change.component}.{change.variable}: {change.old_value} -> {change.new_value} "
          f"(source {change.source}, by {change.user}); the running bridge applies it at its next use")
    return EXIT_OK


def _dm_set(args: argparse.Namespace) -> int:
    return _dm_change(args, lambda store: store.set(args.component, args.variable, args.value,
                                                    source=Source.LOCAL, user=_user()))


def _dm_reset(args: argparse.Namespace) -> int:
    return _dm_change(args, lambda store: store.reset(args.component, args.variable, user=_user()))


def _dm_history(args: argparse.Namespace) -> int:
    store = _store(load(args.config))
    rows = store.history(args.component, args.variable, args.limit)
    if args.json:
        for change in rows:
            print(json.dumps(_asdict(change)))
        return EXIT_OK
    _table(["AT", "COMPONENT", "VARIABLE", "OLD", "NEW", "SOURCE", "USER"],
           [[c.at, c.component, c.variable, c.old_value or "-", c.new_value, c.source, c.user] for c in rows])
    return EXIT_OK


# -- messages -------------------------------------------------------------------------------------
FOLLOW_POLL_S = 0.5


def _messages(args: argparse.Namespace) -> int:
    import sqlite3
    import time

    from .adapters.journal_store import FILE_NAME, JournalStore
    from .core.journal_query import JournalQuery, parse_when

    config = load(args.config)
    now = time.time_ns() // 1000
    try:
        start, end = parse_when(args.since, now), parse_when(args.until, now)
    except ValueError as exc:
        print(f"josev-bridge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not 1 <= args.limit <= 100_000:
        print("josev-bridge: --limit: 1..100000", file=sys.stderr)
        return EXIT_USAGE
    try:
        store = JournalStore(config.state_dir / FILE_NAME, readonly=True)
        rows, _ = store.query(JournalQuery(config.charger.identity, start, end, tuple(args.type), args.limit, None))
    except (OSError, sqlite3.Error) as exc:
        print(f"josev-bridge: cannot read the journal: {exc}", file=sys.stderr)
        return EXIT_FAIL
    show = _row_printer(config, args.json)
    show(list(reversed(rows)), header=True)  # oldest first, as a log reads
    if not args.follow:
        return EXIT_OK
    last = store.last_id() if end >= now else max((r.id for r in rows), default=0)
    while True:
        time.sleep(FOLLOW_POLL_S)  # a poll: the daemon may be another user's process, or not running
        new = store.after_id(last)
        if new:
            last = new[-1].id
            show([r for r in new if not args.type or r.entry.message_type in args.type], header=False)


def _row_printer(config: Config, as_json: bool):
    from .core.journal_entry import to_row

    identity, fleet_id = config.charger.identity, config.charger.fleet_id

    def show(stored: list, header: bool) -> None:
        rows = [to_row(s.id, s.entry, identity, fleet_id) for s in stored]
        if as_json:
            for row in rows:
                print(json.dumps(row, ensure_ascii=False))
        else:
            _table(["TIME (UTC)", "DIR", "TYPE", "ID", "REQUEST", "RESPONSE", "MS"] if header else None,
                   [[r["createdAt"], r["direction"], r["messageType"], (r["correlationId"] or "-")[:8],
                     _brief(r["messagePayload"]), _brief(r["messageResponse"]),
                     "-" if r["latencyMs"] is None else f"{r['latencyMs']:.2f}"] for r in rows])
        sys.stdout.flush()
    return show


def _brief(value, width: int = 60) -> str:
    text = "-" if value is None else value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= width else text[:width - 1] + "…"


# -- alerts ---------------------------------------------------------------------------------------
def _alerts(args: argparse.Namespace) -> int:
    import sqlite3
    import time

    from .adapters.alert_store import FILE_NAME, AlertStore
    from .core.alert_view import alert_summary, alert_view, charger_info
    from .core.journal_query import parse_when
    from .core.timestamps import format_us

    config = load(args.config)
    try:
        since = parse_when(args.since, time.time_ns() // 1000)
    except ValueError as exc:
        print(f"josev-bridge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    charger, ports = charger_info(config)
    try:
        store = AlertStore(config.state_dir / FILE_NAME, readonly=True)
        page, _ = store.query(start_after_us=since, include_muted=args.include_muted, limit=max(1, args.limit))
    except (OSError, sqlite3.Error) as exc:
        print(f"josev-bridge: cannot read the alerts: {exc}", file=sys.stderr)
        return EXIT_FAIL

    def show(stored: list, header: bool) -> None:
        if args.json:
            for s in stored:
                print(json.dumps(alert_view(s.alert, s.id, s.muted, charger, ports)))
        else:
            _table(["ID", "START (UTC)", "END (UTC)", "MUTED", "ALERT"] if header else None,
                   [[s.id, format_us(s.alert.start_us), format_us(s.alert.end_us) if s.alert.end_us else "open",
                     "muted" if s.muted else "-", alert_summary(s.alert)] for s in stored])
        sys.stdout.flush()

    show(list(reversed(page)), header=True)
    if not args.follow:
        return EXIT_OK
    last = store.last_id()
    while True:
        time.sleep(FOLLOW_POLL_S)  # a poll: the daemon may be another user's process, or not running
        new = store.after_id(last)
        if new:
            last = new[-1].id
            show([s for s in new if args.include_muted or not s.muted], header=False)


# -- status ---------------------------------------------------------------------------------------
def _status(args: argparse.Namespace) -> int:
    from . import status_report

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
    faults = {k: v for k, v in counters.items() if v and k in (
        "crc_errors", "cobs_errors", "oversize", "runt", "bad_version", "discarded_bytes", "io_errors",
        "open_failures", "record_errors", "unknown_types", "duplicates", "held", "lost_records",
        "untimed_records", "clock_outliers", "clock_restarts", "persist_failures", "replay_requests",
        "skipped_records", "alert_listener_errors")}
    rows = [
        ["bridge", f"pid {status['pid']}, status written {status['written_at']}"],
        ["broker", f"{mqtt_['broker']} {'connected' if mqtt_['connected'] else 'DISCONNECTED'}"],
        ["MCU link", f"{link['state']} on {link['port']}"],
        ["MCU", f"firmware {link['firmware'] or '?'}, boot {link['boot_id'] or '?'}, last seq {link['last_seq']}"],
        ["last record", link["last_record_at"] or "-"],
        ["MCU clock", "not mapped yet" if not clock else
         f"offset {clock['offset_us'] / 1e6:+.6f} s vs host monotonic, drift {clock['drift_ppm']:+.1f} ppm, "
         f"best round trip {clock['best_rtt_us']} us ({clock['samples']} samples)"],
        ["records", f"{counters['records']} applied, {counters['edges']} edges"],
        ["faults", ", ".join(f"{k} {v}" for k, v in faults.items()) or "none"],
        ["get_event_timestamp", f"{'enabled' if status['get_event_timestamp']['enabled'] else 'DISABLED'}, "
                                f"answered {status['get_event_timestamp']['answered']}, "
                                f"silent {status['get_event_timestamp']['silent']}" +
                                (f", NOT SENT {status['get_event_timestamp']['not_sent']}"
                                 if status['get_event_timestamp'].get('not_sent') else "")],
    ]
    rows += _status_extras(status)
    _table(None, rows)
    return EXIT_OK if problem is None else EXIT_FAIL


def _status_extras(status: dict) -> list[list[str]]:
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


# -- request --------------------------------------------------------------------------------------
def _request_get_event_timestamp(args: argparse.Namespace) -> int:
    from .request_client import RequestClient

    config = load(args.config)
    data: dict = {"event_type": args.event_type, "trigger_reason": args.trigger_reason}
    if args.evse_id is not None:
        data["evse_id"] = args.evse_id
    try:
        with RequestClient(config.mqtt) as client:
            reply = client.send("get_event_timestamp", data, timeout=args.timeout)
    except (OSError, TimeoutError) as exc:
        print(f"josev-bridge: cannot reach the broker at {config.mqtt.host}:{config.mqtt.port}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    print(json.dumps(reply.request))
    if reply.response is None:
        print(f"no answer within {args.timeout:g} s. The bridge stays silent when "
              "JOSEV_CTRLR.EnableGetEventTimestampRequest is false or the MCU never reported that event; "
              "see `journalctl -u josev-bridge`.", file=sys.stderr)
        return EXIT_FAIL
    print(json.dumps(reply.response))
    print(f"answered in {reply.round_trip_ms:.2f} ms", file=sys.stderr)
    return EXIT_OK


# -- helpers --------------------------------------------------------------------------------------
def _asdict(obj) -> dict:
    from dataclasses import asdict

    return asdict(obj)


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7f, 0xa0)]}  # C0, DEL, C1: shown, never sent


def _table(header: list[str] | None, rows: list[list[str]]) -> None:
    """Columns padded to fit. Control characters (an ESC in a message id from the bus) are shown
    escaped: a table must not be able to move a technician's cursor or recolour the terminal."""
    cells = ([header] if header else []) + [[str(c).translate(_CONTROL) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))] if cells else []
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
