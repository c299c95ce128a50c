"""RFC 3339 UTC timestamps as Josev wants them: `Z`, at most milliseconds, truncated, never local time."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

# The pattern from the seed (GetEventTimestampResponse.data.timestamp), verbatim.
JOSEV_TIMESTAMP_PATTERN = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,3})?Z$"
)
_JOSEV_TIMESTAMP_RE = re.compile(JOSEV_TIMESTAMP_PATTERN)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=1024)  # answers repeat the same few edge times
def format_us(time_us: int) -> str:
    """Format microseconds since the Unix epoch (UTC) as `YYYY-MM-DDTHH:MM:SS.mmmZ`.

    Truncates, never rounds: rounding could turn .9996 into the next second, i.e. report an
    event as later than the hardware saw it.
    """
    seconds, micros = divmod(time_us, 1_000_000)
    dt = datetime.fromtimestamp(seconds, tz=UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{micros // 1000:03d}Z"


def format_ms(time_ms: int) -> str:
    """Format milliseconds since the Unix epoch (UTC)."""
    return format_us(time_ms * 1000)


def truncate_to_ms(time_us: int) -> int:
    """Drop sub-millisecond digits (towards the past, also for pre-1970 values)."""
    return time_us - time_us % 1000


def parse_us(text: str) -> int:
    """Parse an RFC 3339 / ISO 8601 timestamp with an explicit offset into microseconds since epoch (UTC).

    A timestamp without an offset is rejected: guessing the local zone is exactly the bug we avoid.
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone; use Z or an explicit offset")
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def is_josev_timestamp(text: str) -> bool:
    """True if `text` matches the response pattern of the Josev API."""
    return bool(_JOSEV_TIMESTAMP_RE.match(text))
