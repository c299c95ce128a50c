"""The status page's data routes: `/api/status`, `/api/timeline`, `/api/journal-tail`, `/api/device-model`.

Where each answer comes from, and why there:
- status: the daemon's `status.json` (runtime_dir), rewritten at least every 2 s, read as
  `josev-bridge status` reads it (adapters/status_file); the verdict is `core/status_view.verdict`,
  the same rule. Reading a file costs the
  daemon nothing: the page never asks the daemon anything.
- timeline: the journal's `mcu_edge` rows (one per condition edge, at its hardware time) merged
  with `edges.json` (state_dir), the edge store the answers come from (`core/timeline`).
- journal tail: the journal's last rows by id (an index walk of 50 rows).
- device model: `device_model.sqlite` read-only: each value, its source and its last audit row.
All files are opened read-only; every route needs the token (api/server.py).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..adapters import status_file
from ..adapters.journal_store import JournalStore
from ..core.journal_entry import MCU_EDGE, to_row
from ..core.journal_query import JournalQuery, QueryError, single, timestamp_param
from ..core.status_view import clock_words, verdict
from ..core.timeline import HistoryEdge, event_type, timeline
from ..core.timestamps import format_us
from .server import ApiError, Request, Response

STATUS_PATH = "/api/status"
TIMELINE_PATH = "/api/timeline"
TAIL_PATH = "/api/journal-tail"
DEVICE_MODEL_PATH = "/api/device-model"

EDGES_FILE = "edges.json"  # adapters/edges_file.STATE_FILE
DEVICE_MODEL_FILE = "device_model.sqlite"  # adapters/device_model_store.DB_NAME
DAY_US = 86_400_000_000
MAX_EDGES = 20_000  # a day of edges is a few hundred; more says the MCU flaps, and the page says so
TAIL_MAX = 200

Clock = Callable[[], int]


def _now_us() -> int:
    return time.time_ns() // 1000


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class StatusApi:
    """`GET /api/status`: the verdict and its reasons, the MCU clock in words, and status.json."""

    def __init__(self, runtime_dir: Path, identity: str = "", clock_us: Clock = _now_us) -> None:
        self._runtime_dir = Path(runtime_dir)
        self._identity = identity  # which charger the technician is looking at (status.json does not say)
        self._clock_us = clock_us

    def __call__(self, request: Request) -> Response:
        try:
            status, _ = status_file.read(self._runtime_dir)
        except PermissionError:  # the API process runs as the daemon's user: not on a working board
            status = None
        now_us = self._clock_us()
        judged = verdict(status, now_epoch=now_us / 1e6,
                         pid_alive=status is not None and status_file.alive(status.get("pid")),
                         age_s=None if status is None else status_file.age_s(status, now_us / 1e6))
        link = (status or {}).get("mcu_link") or {}
        return Response({
            "now": format_us(now_us),
            "identity": self._identity,
            "verdict": {"state": judged.state, "reasons": list(judged.reasons)},
            "clock": clock_words(link.get("clock"), (status or {}).get("written_at_epoch"))
            if status is not None else None,
            "status": status,
        })


class TimelineApi:
    """`GET /api/timeline?since=<RFC 3339>&until=<RFC 3339>[&evse=1]`: per EVSE (every one the MCU
    reported, or the one asked for), the six conditions' intervals over the window (default: the
    last 24 h), the edges inside it and the edges the bridge answers with."""

    def __init__(self, journal_path: Path, state_dir: Path, clock_us: Clock = _now_us) -> None:
        self._store = JournalStore(journal_path, readonly=True)
        self._lock = threading.Lock()
        self._edges_path = Path(state_dir) / EDGES_FILE
        self._clock_us = clock_us

    def close(self) -> None:
        self._store.close()

    def __call__(self, request: Request) -> Response:
        params = request.params
        for name in params:
            if name not in ("evse", "since", "until"):
                raise ApiError(400, f"{name}: unknown parameter (known: evse, since, until)")
        try:
            evse_text = single(params, "evse")
            until_us = timestamp_param(params, "until", self._clock_us())
            since_us = timestamp_param(params, "since", until_us - DAY_US)
        except QueryError as exc:
            raise ApiError(400, str(exc)) from None
        if evse_text is not None and (not evse_text.isdigit() or not 1 <= int(evse_text) <= 255):
            raise ApiError(400, "evse: an EVSE number, 1..255")
        if not since_us < until_us or until_us - since_us > 8 * DAY_US:
            raise ApiError(400, "since: must be before until, and at most 8 days before it")
        if since_us < 0:  # no MCU stamped anything before 1970; and format_us writes RFC 3339 from there on
            raise ApiError(400, "since: before 1970-01-01T00:00:00Z (the window starts at since, or 24 h before until)")
        query = JournalQuery("", since_us, until_us, (MCU_EDGE,), MAX_EDGES, None)
        with self._lock:
            rows, truncated = self._store.query(query)
        history = [edge for row in rows if (edge := _edge(row.entry.payload, row.entry.created_us)) is not None]
        document = _read_json(self._edges_path) or {}
        snapshot = document.get("edges") or {}
        # edge times are host monotonic (core/edge_store): UTC with the offset of edges.json's last save
        offset_us = int((document.get("host") or {}).get("realtime_minus_monotonic_us") or 0)
        known = {int(k) for k in (snapshot.get("evses") or {}) if str(k).isdigit()} | {e.evse_id for e in history}
        evses = [int(evse_text)] if evse_text is not None else sorted(known) or [1]
        return Response({
            "since": format_us(since_us), "until": format_us(until_us), "truncated": truncated,
            "evses": [{"evse": evse, "conditions": [{
                "condition": ln.condition, "active": ln.active,
                "intervals": [{"from": _t(i.start_us), "to": _t(i.end_us)} for i in ln.intervals],
                "edges": [{"at": format_us(e.time_us), "eventType": event_type(e)} for e in ln.edges],
                "answers": {"TxEventStart": _t(ln.answer_start_us), "TxEventStop": _t(ln.answer_stop_us)},
            } for ln in timeline(evse, since_us, until_us, history, snapshot, offset_us)]} for evse in evses],
        })


def _t(time_us: int | None) -> str | None:
    return None if time_us is None else format_us(time_us)


def _edge(payload: object, time_us: int) -> HistoryEdge | None:
    """A journal `mcu_edge` payload as an edge (a row that is not one is skipped, not an error)."""
    if not isinstance(payload, dict):
        return None
    evse, condition, rising = payload.get("evseId"), payload.get("condition"), payload.get("rising")
    if not isinstance(evse, int) or not isinstance(condition, str) or not isinstance(rising, bool):
        return None
    return HistoryEdge(evse, condition, rising, time_us)


class JournalTailApi:
    """`GET /api/journal-tail?limit=50`: the newest journal rows by id, newest first, in the
    `/api/ocpp-messages` row shape."""

    def __init__(self, journal_path: Path, identity: str, fleet_id: int) -> None:
        self._store = JournalStore(journal_path, readonly=True)
        self._lock = threading.Lock()
        self._identity, self._fleet_id = identity, fleet_id

    def close(self) -> None:
        self._store.close()

    def __call__(self, request: Request) -> Response:
        for name in request.params:
            if name != "limit":
                raise ApiError(400, f"{name}: unknown parameter (known: limit)")
        try:
            text = single(request.params, "limit")
            text = "50" if text is None else text  # absent: the default; given empty: refused below
        except QueryError as exc:
            raise ApiError(400, str(exc)) from None
        if not text.isdigit() or not 1 <= int(text) <= TAIL_MAX:
            raise ApiError(400, f"limit: 1..{TAIL_MAX}")
        limit = int(text)
        with self._lock:
            last = self._store.last_id()
            rows = self._store.after_id(max(0, last - limit), limit)
        return Response({"data": [to_row(s.id, s.entry, self._identity, self._fleet_id) for s in reversed(rows)],
                         "lastId": last})


class DeviceModelApi:
    """`GET /api/device-model`: every stored value with its source, and its last change (audit)."""

    def __init__(self, state_dir: Path) -> None:
        self._path = Path(state_dir) / DEVICE_MODEL_FILE

    def __call__(self, request: Request) -> Response:
        try:
            db = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, timeout=1.0)
        except sqlite3.Error as exc:
            raise ApiError(503, f"device model not readable ({self._path}): {exc}") from None
        try:
            values = db.execute("SELECT component, variable, attribute, value, source, updated_at "
                                "FROM variable_value ORDER BY component, variable, attribute").fetchall()
            changes = db.execute(
                "SELECT component, variable, attribute, old_value, new_value, source, user, at FROM audit "
                "WHERE id IN (SELECT MAX(id) FROM audit GROUP BY component, variable, attribute)").fetchall()
        except sqlite3.Error as exc:
            raise ApiError(503, f"device model not readable ({self._path}): {exc}") from None
        finally:
            db.close()
        last = {(c[0], c[1], c[2]): c for c in changes}
        data = []
        for component, variable, attribute, value, source, updated_at in values:
            change = last.get((component, variable, attribute))
            data.append({"component": component, "variable": variable, "attribute": attribute, "value": value,
                         "source": source, "updatedAt": updated_at,
                         "lastChange": None if change is None else {
                             "oldValue": change[3], "newValue": change[4], "source": change[5],
                             "user": change[6], "at": change[7]}})
        return Response({"data": data})
