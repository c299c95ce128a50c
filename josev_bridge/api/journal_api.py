"""`GET /api/ocpp-messages`: the journal, paged as Flipturn pages it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..adapters.journal_store import JournalStore, position_of
from ..core.journal_entry import to_row
from ..core.journal_query import QueryError, encode_cursor, parse_query
from .server import ApiError, Request, Response

PATH = "/api/ocpp-messages"


class JournalApi:
    """One read-only connection, one query at a time (queries take a millisecond or two)."""

    def __init__(self, db_path: Path, identity: str, fleet_id: int,
                 clock_us: Callable[[], int] = lambda: time.time_ns() // 1000) -> None:
        self._store = JournalStore(db_path, readonly=True)
        self._lock = threading.Lock()
        self._identity = identity
        self._fleet_id = fleet_id
        self._clock_us = clock_us

    def close(self) -> None:
        self._store.close()

    def charger_known(self, charger_id: str) -> bool:
        """The configured identity, or the fleet's numeric id for it."""
        return charger_id in (self._identity, str(self._fleet_id))

    def __call__(self, request: Request) -> Response:
        try:
            query = parse_query(request.params, self._clock_us())
        except QueryError as exc:
            raise ApiError(400, str(exc)) from None
        if not self.charger_known(query.charger_id):
            raise ApiError(404, f"chargerId: no charger {query.charger_id!r} here "
                                f"(this is {self._identity!r}, fleet id {self._fleet_id})")
        with self._lock:
            rows, more = self._store.query(query)
        data = [to_row(s.id, s.entry, self._identity, self._fleet_id) for s in rows]
        cursor = encode_cursor(position_of(rows[-1])) if more and rows else None
        return Response({"data": data, "pagination": {"hasNextPage": more, "nextPageCursor": cursor}})
