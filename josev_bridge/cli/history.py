"""`josev-bridge messages` and `josev-bridge alerts`: what the bridge journalled and raised.

Both read the daemon's SQLite files directly (read-only), so they work while it is down; with
`--follow` they poll for new rows, because the daemon may be another user's process, or not running.
The default tables fit the terminal: the time of day (a date line when the day changes), the type,
and what happened in words; `--wide` shows every column in full.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sqlite3
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..config import Config
from ..core.journal_view import MESSAGE_TYPES, day_of, time_of_day, what
from ..core.status_view import duration_words
from .access import require
from .common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, Printer, error, load_config, terminal_width

if TYPE_CHECKING:
    from ..adapters.alert_store import StoredAlert
    from ..adapters.journal_store import JournalStore
    from ..core.alerts import Alert

FOLLOW_POLL_S = 0.5


def follow(poll: Callable[[], None]) -> None:
    """Call `poll` every FOLLOW_POLL_S until interrupted (Ctrl-C: main turns it into exit 130)."""
    while True:
        time.sleep(FOLLOW_POLL_S)  # a poll: the daemon may be another user's process, or not running
        poll()


def messages(args: argparse.Namespace) -> int:
    from ..adapters.journal_store import FILE_NAME, JournalStore
    from ..core.journal_query import JournalQuery, parse_when

    config = load_config(args.config)
    now = time.time_ns() // 1000
    try:
        start, end = parse_when(args.since, now), parse_when(args.until, now)
    except ValueError as exc:
        error(str(exc))
        return EXIT_USAGE
    if not 1 <= args.limit <= 100_000:
        error("--limit: 1..100000")
        return EXIT_USAGE
    require(config.state_dir / FILE_NAME, "read", "reading the journal")
    try:
        store = JournalStore(config.state_dir / FILE_NAME, readonly=True)
        unknown = [t for t in args.type if t not in MESSAGE_TYPES and not _journal_has(store, config, t)]
        if unknown and not args.follow:
            error(_unknown_types(unknown))
            return EXIT_USAGE
        if unknown:  # following: another service's messages may be yet to come; a typo is still named
            error(_unknown_types(unknown) + "; following it all the same")
        rows, _ = store.query(JournalQuery(config.charger.identity, start, end, tuple(args.type), args.limit, None))
    except (OSError, sqlite3.Error) as exc:
        error(f"cannot read the journal: {exc}")
        return EXIT_FAIL
    show = _row_printer(config, args.json, args.wide)
    show(list(reversed(rows)))  # oldest first, as a log reads
    if not args.follow:
        return EXIT_OK
    last = [store.last_id() if end >= now else max((r.id for r in rows), default=0)]

    def poll() -> None:
        new = store.after_id(last[0])
        if new:
            last[0] = new[-1].id
            show([r for r in new if not args.type or r.entry.message_type in args.type])
    follow(poll)
    return EXIT_OK  # pragma: no cover - follow ends by Ctrl-C


def _journal_has(store: JournalStore, config: Config, message_type: str) -> bool:
    """Whether the journal holds any row of that type (a name another service uses on the shared
    topic is a real type too): one index seek."""
    from ..core.journal_query import JournalQuery

    rows, _ = store.query(JournalQuery(config.charger.identity, 0, 2**62, (message_type,), 1, None))
    return bool(rows)


def _unknown_types(unknown: list[str]) -> str:
    """`--type get_event_timestmp: no such message type (did you mean get_event_timestamp?); known: ...`
    (a name the journal holds is a type too: another service's messages on the shared topic)."""
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, MESSAGE_TYPES, n=1)
        parts.append(f"--type {name}: no such message type" + (f" (did you mean {close[0]}?)" if close else ""))
    return "; ".join(parts) + f"; known: {', '.join(sorted(MESSAGE_TYPES))}, or a name the journal holds"


def _row_printer(config: Config, as_json: bool, wide: bool) -> Callable[[list], None]:
    from ..core.journal_entry import to_row

    identity, fleet_id = config.charger.identity, config.charger.fleet_id
    if wide:
        printer = Printer(["TIME", "DIR", "TYPE", "ID", "REQUEST", "RESPONSE", "MS", "NOTE"], None)
    else:
        printer = Printer(["TIME", "TYPE", "WHAT"], terminal_width(False), keep=(0, 1))

    def show(stored: list) -> None:
        if as_json:
            for s in stored:
                print(json.dumps(to_row(s.id, s.entry, identity, fleet_id), ensure_ascii=False))
            sys.stdout.flush()
            return
        if wide:
            rows = [to_row(s.id, s.entry, identity, fleet_id) for s in stored]
            printer.rows([(day_of(s.entry.created_us),
                           [time_of_day(s.entry.created_us, ms=True), r["direction"], r["messageType"],
                            r["correlationId"] or "-", _full(r["messagePayload"]), _full(r["messageResponse"]),
                            "-" if r["latencyMs"] is None else f"{r['latencyMs']:.2f}", r["note"] or "-"])
                          for s, r in zip(stored, rows)])
        else:
            printer.rows([(day_of(s.entry.created_us), [time_of_day(s.entry.created_us), s.entry.message_type,
                                                what(s.entry)]) for s in stored])
    return show


def _full(value: object) -> str:
    return "-" if value is None else value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def alerts(args: argparse.Namespace) -> int:
    from ..adapters.alert_store import FILE_NAME, AlertStore
    from ..core.alert_view import alert_summary, alert_view, charger_info
    from ..core.journal_query import parse_when
    from ..core.timestamps import format_us

    config = load_config(args.config)
    try:
        since = parse_when(args.since, time.time_ns() // 1000)
    except ValueError as exc:
        error(str(exc))
        return EXIT_USAGE
    charger, ports = charger_info(config)
    types = tuple(args.type)
    require(config.state_dir / FILE_NAME, "read", "reading the alerts")
    try:
        store = AlertStore(config.state_dir / FILE_NAME, readonly=True)
        page, _ = store.query(start_after_us=since, include_muted=args.include_muted, limit=max(1, args.limit),
                              types=types)
    except (OSError, sqlite3.Error) as exc:
        error(f"cannot read the alerts: {exc}")
        return EXIT_FAIL
    if args.wide:
        printer = Printer(["ID", "START (UTC)", "END (UTC)", "MUTED", "ALERT"], None)
    else:
        printer = Printer(["ID", "START", "LASTED", "ALERT"], terminal_width(False), keep=(0, 1, 2))

    def show(stored: list) -> None:
        if args.json:
            for s in stored:
                print(json.dumps(alert_view(s.alert, s.id, s.muted, charger, ports)))
            sys.stdout.flush()
            return
        if args.wide:
            printer.rows([(day_of(s.alert.start_us), [s.id, format_us(s.alert.start_us), _end(s.alert, format_us),
                                              "muted" if s.muted else "-", alert_summary(s.alert)]) for s in stored])
        else:
            printer.rows([(day_of(s.alert.start_us), [s.id, time_of_day(s.alert.start_us), _lasted(s.alert),
                                              alert_summary(s.alert) + (" [muted]" if s.muted else "")])
                          for s in stored])

    show(list(reversed(page)))
    if not args.follow:
        return EXIT_OK

    def wanted(s: StoredAlert) -> bool:
        return (args.include_muted or not s.muted) and (not types or s.alert.type.value in types)

    last, watching = [store.last_id()], set(store.open_ids())

    def poll() -> None:
        """New alerts, then the end of any alert that was open: `--follow` shows both."""
        new = store.after_id(last[0])
        if new:
            last[0] = new[-1].id
        ended = []
        for alert_id in sorted(watching):
            stored = store.get(alert_id)
            if stored is None or stored.alert.end_us is not None:  # ended (or gone: retention)
                watching.discard(alert_id)
                if stored is not None:
                    ended.append(stored)
        watching.update(s.id for s in new if s.alert.end_us is None)
        show([s for s in ended + new if wanted(s)])
    follow(poll)
    return EXIT_OK  # pragma: no cover - follow ends by Ctrl-C


def _end(alert: Alert, fmt: Callable[[int], str]) -> str:
    return fmt(alert.end_us) if alert.end_us else "open"


def _lasted(alert: Alert) -> str:
    """`open`, or how long the alert lasted: the end time itself is in --wide and --json."""
    return duration_words(alert.end_us - alert.start_us) if alert.end_us else "open"
