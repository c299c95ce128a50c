"""The journal's query language: Flipturn's `GET /api/ocpp-messages` parameters, checked and typed.

Pure: the caller passes the query string (as `urllib.parse.parse_qs` gives it) and the current
time; out comes a `JournalQuery` or a `QueryError` naming the parameter. The HTTP adapter and the
CLI share it, so both apply the same defaults and limits.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime

from .timestamps import parse_us

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
DEFAULT_RANGE_US = DAY_US  # startTimestamp defaults to 24 h before endTimestamp's default (now)
MAX_RANGE_US = 8 * DAY_US  # "the date range must be less than 8 days long"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_TYPES = 32
SQLITE_INT_LIMIT = 2**63  # SQLite integers are signed 64-bit; a cursor outside cannot be bound to a query

PARAMETERS = frozenset({"chargerId", "startTimestamp", "endTimestamp", "messageType", "messageType[]",
                        "limit", "nextPageCursor"})


class QueryError(ValueError):
    """A bad parameter: HTTP 400 with this message (it names the parameter)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended: the last row's (created_us, id). Rows sort newest first by this pair."""

    created_us: int
    id: int


@dataclass(frozen=True, slots=True)
class JournalQuery:
    charger_id: str
    start_us: int  # inclusive
    end_us: int  # inclusive
    message_types: tuple[str, ...]  # empty: every type
    limit: int
    after: Position | None  # the previous page's last row; None for the first page


def parse_query(params: dict[str, list[str]], now_us: int) -> JournalQuery:
    """Check every parameter of the seed; unknown parameters are errors too (a typo must not widen a query)."""
    for name in params:
        if name not in PARAMETERS:
            raise QueryError(name, f"unknown parameter (known: {', '.join(sorted(PARAMETERS))})")
    charger_id = single(params, "chargerId")
    if not charger_id:
        raise QueryError("chargerId", "required")
    end_us = timestamp_param(params, "endTimestamp", now_us)
    start_us = timestamp_param(params, "startTimestamp", end_us - DEFAULT_RANGE_US)
    if start_us > end_us:
        raise QueryError("startTimestamp", "must not be after endTimestamp")
    if end_us - start_us >= MAX_RANGE_US:
        raise QueryError("startTimestamp", "the date range must be less than 8 days long; "
                                           "split it into several requests")
    return JournalQuery(charger_id, start_us, end_us, message_types(params), parse_limit(params),
                        decode_cursor(single(params, "nextPageCursor")))


def message_types(params: dict[str, list[str]]) -> tuple[str, ...]:
    """`messageType=A` and `messageType[]=A&messageType[]=B` (also mixed); duplicates dropped, order kept."""
    values = [*params.get("messageType", []), *params.get("messageType[]", [])]
    types = tuple(dict.fromkeys(values))
    if any(not t for t in types):
        raise QueryError("messageType", "must not be empty")
    if len(types) > MAX_TYPES:
        raise QueryError("messageType", f"at most {MAX_TYPES} types per request")
    return types


def encode_cursor(position: Position) -> str:
    """Opaque to clients: base64url of "<created_us>.<id>", the keyset position of the page's last row."""
    raw = f"{position.created_us}.{position.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Position | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        created, _, ident = raw.partition(".")
        position = Position(int(created), int(ident))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise QueryError("nextPageCursor", "not a cursor this server issued") from None
    if not (0 <= position.id < SQLITE_INT_LIMIT and -SQLITE_INT_LIMIT <= position.created_us < SQLITE_INT_LIMIT):
        raise QueryError("nextPageCursor", "not a cursor this server issued")  # SQLite could not even bind it
    return position


def single(params: dict[str, list[str]], name: str) -> str | None:
    """A parameter given at most once (shared with the alerts API)."""
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise QueryError(name, "given more than once")
    return values[0]


def timestamp_param(params: dict[str, list[str]], name: str, default_us: int) -> int:
    """A date-time parameter (or `default_us` when absent); a QueryError naming it when not one."""
    text = single(params, name)
    if text is None:
        return default_us
    try:
        return parse_timestamp_us(text)
    except ValueError:
        raise QueryError(name, f"not an ISO 8601 date-time: {text!r} (e.g. 2024-04-30T01:00:07.321Z)") from None


def parse_timestamp_us(text: str) -> int:
    """ISO 8601 with a zone; a value without one is read as UTC (never as the board's local time)."""
    try:
        return parse_us(text)
    except ValueError as exc:
        if "no time zone" not in str(exc):
            raise
    naive = datetime.fromisoformat(text.strip())
    return parse_us(naive.replace(tzinfo=UTC).isoformat())


_UNITS_US = {"s": 1_000_000, "m": 60_000_000, "h": HOUR_US, "d": DAY_US}


def parse_when(text: str, now_us: int) -> int:
    """A technician's time: a duration ago ("90s", "15m", "2h", "3d") or an ISO 8601 date-time."""
    value = text.strip().lower()
    if value == "now":
        return now_us
    if len(value) >= 2 and value[-1] in _UNITS_US:
        try:
            return now_us - int(float(value[:-1]) * _UNITS_US[value[-1]])
        except ValueError:
            pass
    try:
        return parse_timestamp_us(text)
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use e.g. 2h, 30m, 1d or 2024-04-30T01:00:00Z)") from None


def parse_limit(params: dict[str, list[str]]) -> int:
    """`limit`: 1..500, default 50 (shared with the alerts API)."""
    text = single(params, "limit")
    if text is None:
        return DEFAULT_LIMIT
    if not text.isascii() or not text.isdigit():
        raise QueryError("limit", f"must be an integer 1..{MAX_LIMIT}, got {text!r}")
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(MAX_LIMIT)):  # never int() it: past 4300 digits int() raises ValueError
        raise QueryError("limit", f"must be an integer 1..{MAX_LIMIT}, got a {len(digits)}-digit number")
    limit = int(digits)
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError("limit", f"must be an integer 1..{MAX_LIMIT}, got {limit}")
    return limit
