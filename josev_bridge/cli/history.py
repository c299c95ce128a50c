"""`josev-bridge messages` and `josev-bridge alerts`: what the bridge journalled and raised.

Both read the daemon's SQLite files directly (read-only), so they work while it is down; with
`--follow` they poll for new rows, because the daemon may be another user's process, or not running.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

from ..config import Config, load
from .common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, table

FOLLOW_POLL_S = 0.5


def follow(store, last: int, show: Callable[[list[Any], bool], None], keep: Callable[[Any], bool]) -> NoReturn:
    """Print the rows stored after id `last` as they arrive, those `keep` accepts, until interrupted."""
    while True:
        time.sleep(FOLLOW_POLL_S)  # a poll: the daemon may be another user's process, or not running
        new = store.after_id(last)
        if new:
            last = new[-1].id
            show([s for s in new if keep(s)], False)  # header=False


def messages(args: argparse.Namespace) -> int:
    from ..adapters.journal_store import FILE_NAME, JournalStore
    from ..core.journal_query import JournalQuery, parse_when

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
    follow(store, last, show, lambda r: not args.type or r.entry.message_type in args.type)


def _row_printer(config: Config, as_json: bool):
    from ..core.journal_entry import to_row

    identity, fleet_id = config.charger.identity, config.charger.fleet_id

    def show(stored: list, header: bool) -> None:
        rows = [to_row(s.id, s.entry, identity, fleet_id) for s in stored]
        if as_json:
            for row in rows:
                print(json.dumps(row, ensure_ascii=False))
        else:
            table(["TIME (UTC)", "DIR", "TYPE", "ID", "REQUEST", "RESPONSE", "MS"] if header else None,
                   [[r["createdAt"], r["direction"], r["messageType"], (r["correlationId"] or "-")[:8],
                     _brief(r["messagePayload"]), _brief(r["messageResponse"]),
                     "-" if r["latencyMs"] is None else f"{r['latencyMs']:.2f}"] for r in rows])
        sys.stdout.flush()
    return show


def _brief(value, width: int = 60) -> str:
    text = "-" if value is None else value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= width else text[:width - 1] + "…"


def alerts(args: argparse.Namespace) -> int:
    from ..adapters.alert_store import FILE_NAME, AlertStore
    from ..core.alert_view import alert_summary, alert_view, charger_info
    from ..core.journal_query import parse_when
    from ..core.timestamps import format_us

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
            table(["ID", "START (UTC)", "END (UTC)", "MUTED", "ALERT"] if header else None,
                   [[s.id, format_us(s.alert.start_us), format_us(s.alert.end_us) if s.alert.end_us else "open",
                     "muted" if s.muted else "-", alert_summary(s.alert)] for s in stored])
        sys.stdout.flush()

    show(list(reversed(page)), header=True)
    if not args.follow:
        return EXIT_OK
    follow(store, store.last_id(), show, lambda s: args.include_muted or not s.muted)
