"""`GET /api/alerts` parameters (Flipturn's), checked and typed. Pure, like journal_query."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from .journal_query import QueryError, parse_limit, parse_timestamp_us, single

#: The seed's parameters, plus `limit` (1..500, default 50) as in the messages API.
PARAMETERS = frozenset({"startTimestampAfter", "alertRecipientIds", "alertRecipientIds[]", "includeMuted",
                        "nextPageCursor", "limit"})


@dataclass(frozen=True, slots=True)
class AlertQuery:
    start_after_us: int | None
    recipient_ids: tuple[int, ...]
    include_muted: bool
    before_id: int | None  # keyset cursor: the last id of the previous page
    limit: int = 50


def parse_alert_query(params: dict[str, list[str]]) -> AlertQuery:
    for name in params:
        if name not in PARAMETERS:
            raise QueryError(name, f"unknown parameter (known: {', '.join(sorted(PARAMETERS))})")
    return AlertQuery(_after(params), _recipients(params), _bool(params, "includeMuted", False),
                      decode_alert_cursor(single(params, "nextPageCursor")), parse_limit(params))


def encode_alert_cursor(alert_id: int) -> str:
    """As Flipturn's examples: base64 of the decimal id of the page's last row."""
    return base64.b64encode(str(alert_id).encode()).decode()


def decode_alert_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        value = base64.b64decode(cursor + "=" * (-len(cursor) % 4), validate=True).decode("ascii")
        if value.isdigit() and len(value) <= 18:  # an SQLite integer; longer is not ours
            return int(value)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        pass
    raise QueryError("nextPageCursor", "not a cursor this server issued")


def _after(params: dict[str, list[str]]) -> int | None:
    text = single(params, "startTimestampAfter")
    if text is None:
        return None
    try:
        return parse_timestamp_us(text)
    except ValueError:
        raise QueryError("startTimestampAfter", f"not an ISO 8601 date-time: {text!r}") from None


def _recipients(params: dict[str, list[str]]) -> tuple[int, ...]:
    values = [*params.get("alertRecipientIds", []), *params.get("alertRecipientIds[]", [])]
    for value in values:
        if not value.isascii() or not value.isdigit() or len(value) > 18:
            raise QueryError("alertRecipientIds", f"recipient ids are integers, got {value!r}")
    return tuple(dict.fromkeys(int(v) for v in values))


def _bool(params: dict[str, list[str]], name: str, default: bool) -> bool:
    text = single(params, name)
    if text is None:
        return default
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise QueryError(name, f"true or false, got {text!r}")
