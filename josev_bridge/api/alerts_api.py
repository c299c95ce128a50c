"""`GET /api/alerts`: the alert store, shaped and paged as Flipturn's."""

from __future__ import annotations

import threading
from pathlib import Path

from ..adapters.alert_store import AlertStore
from ..config import Config
from ..core.alert_query import encode_alert_cursor, parse_alert_query
from ..core.alert_view import alert_view, charger_info
from ..core.journal_query import QueryError
from .server import ApiError, Request, Response

PATH = "/api/alerts"


class AlertsApi:
    def __init__(self, db_path: Path, config: Config) -> None:
        self._store = AlertStore(db_path, readonly=True)
        self._lock = threading.Lock()
        self._charger, self._ports = charger_info(config)

    def close(self) -> None:
        self._store.close()

    def __call__(self, request: Request) -> Response:
        try:
            q = parse_alert_query(request.params)
        except QueryError as exc:
            raise ApiError(400, str(exc)) from None
        with self._lock:
            page, more = self._store.query(start_after_us=q.start_after_us, recipient_ids=q.recipient_ids,
                                           include_muted=q.include_muted, before_id=q.before_id, limit=q.limit)
        data = [alert_view(s.alert, s.id, s.muted, self._charger, self._ports)
                for s in page]
        cursor = encode_alert_cursor(page[-1].id) if more and page else None
        return Response({"data": data, "pagination": {"hasNextPage": more, "nextPageCursor": cursor}})
