"""`josev-bridge request`: play the OCPP service once over MQTT and print the answer, or why none came.

"No answer" has different causes that need different fixes, so the command finds out which: the
bridge's status (not running, not connected to the broker), then the journal's row for that request
id, whose note says why the bridge stayed silent (the flag is off, the trigger reason is not
supported, no such edge was recorded, DataSigned has no stop).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from typing import TYPE_CHECKING

from ..config import Config
from ..core.journal_entry import NoAnswer
from .access import AccessDenied, require
from .common import EXIT_FAIL, EXIT_OK, error, load_config

if TYPE_CHECKING:
    from ..adapters.journal_store import StoredEntry

JOURNAL_WAIT_S = 1.0  # the journal writes in batches: how long to wait for the request's row
FLAG_HINT = "turn it on: josev-bridge dm set JOSEV_CTRLR EnableGetEventTimestampRequest true"


def get_event_timestamp(args: argparse.Namespace) -> int:
    from ..request_client import RequestClient

    config = load_config(args.config)
    if config.mqtt.password_file:
        require(config.mqtt.password_file, "read", "connecting to the broker with [mqtt] password_file")
    data: dict = {"event_type": args.event_type, "trigger_reason": args.trigger_reason}
    if args.evse_id is not None:
        data["evse_id"] = args.evse_id
    journal = _Journal(config)
    try:
        with RequestClient(config.mqtt) as client:
            reply = client.send("get_event_timestamp", data, timeout=args.timeout)
    except (OSError, TimeoutError) as exc:
        error(f"cannot reach the broker at {config.mqtt.host}:{config.mqtt.port}: {exc}")
        return EXIT_FAIL
    print(json.dumps(reply.request))
    if reply.response is None:
        error(f"no answer within {args.timeout:g} s: {why_silent(config, journal, reply.request['id'])}")
        return EXIT_FAIL
    print(json.dumps(reply.response))
    print(f"answered in {reply.round_trip_ms:.2f} ms", file=sys.stderr)
    return EXIT_OK


class _Journal:
    """The journal, opened before the request so only rows after it are searched; None-safe: a
    journal this user may not read, or that does not exist, leaves the reason to the status."""

    def __init__(self, config: Config) -> None:
        from ..adapters.journal_store import FILE_NAME, JournalStore

        self.store, self.last_id, self.problem = None, 0, None
        path = config.state_dir / FILE_NAME
        try:
            require(path, "read", "reading the journal")
            self.store = JournalStore(path, readonly=True)
            self.last_id = self.store.last_id()
        except AccessDenied as exc:
            self.problem = str(exc)
        except (OSError, sqlite3.Error) as exc:
            self.problem = f"cannot read the journal: {exc}"

    def row_for(self, request_id: str, wait_s: float = JOURNAL_WAIT_S) -> StoredEntry | None:
        """The journal's row for this request id, waiting a little for the journal's writer."""
        if self.store is None:
            return None
        deadline = time.monotonic() + wait_s
        while True:
            for stored in self.store.after_id(self.last_id, limit=10_000):
                if stored.entry.correlation_id == request_id and stored.entry.direction.value == "in":
                    return stored
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)


def why_silent(config: Config, journal: _Journal, request_id: str) -> str:
    """Why no answer came, in the order a technician would check: is the bridge running, is it
    connected, and what did it decide about this request."""
    from ..adapters import status_file
    from ..core.status_view import STALE_AFTER_S
    from .status import observe

    status_problem = None
    try:
        status, judged, _ = observe(config)
    except AccessDenied as exc:  # the status is closed to this user: the journal may still say
        status, judged, status_problem = None, None, str(exc)
    if judged is not None:
        running = status is not None and status_file.alive(status.get("pid")) and \
            status_file.age_s(status) <= STALE_AFTER_S
        if not running:
            return f"{judged.reasons[0]} (josev-bridge status says more)"
        if status is not None and not status["mqtt"]["connected"]:
            return (f"the bridge is not connected to the broker {status['mqtt']['broker']} "
                    "(josev-bridge status says more)")
    row = journal.row_for(request_id)
    if row is not None:
        entry = row.entry
        if isinstance(entry.response, NoAnswer):
            hint = f"; {FLAG_HINT}" if "EnableGetEventTimestampRequest is false" in (entry.note or "") else ""
            return f"the bridge stayed silent: {entry.response.value}, {entry.note or 'no reason recorded'}" \
                   f"{hint} (journal row {row.id})"
        return f"the bridge answered, but the answer did not arrive in time (journal row {row.id})"
    if journal.problem:
        return f"the journal would say why, but {journal.problem}"
    if status_problem:
        return status_problem
    return (f"the bridge has no journal row for request {request_id}: it did not receive it (do both sides use "
            f"[mqtt] request_topic {config.mqtt.request_topic}?) or its journal is off")
