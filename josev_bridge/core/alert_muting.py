"""Muting rules: a muted alert is recorded but not delivered (Flipturn's `muted` flag). Pure.

A rule lists criteria; an alert matches a rule when it meets *every* criterion the rule gives, and
is muted when it matches *any* rule. Criteria (keys of the plain dict a TOML table gives):

- `types`: alert types, e.g. ["lowBattery", "chargingCompleted"];
- `evse_ids`: EVSEs, e.g. [2] (charger-wide alerts such as offlineCharger have no EVSE: never match);
- `window`: a daily window in UTC, "HH:MM-HH:MM", start inclusive, end exclusive; "22:00-06:00"
  wraps midnight; "24:00" may end a window;
- `weekdays`: ["mon", ..., "sun"]; with a window, the day the window *starts* on counts (a Friday
  "22:00-06:00" window covers Saturday 05:00); without one, the whole UTC day;
- `from` / `until`: RFC 3339 instants with an offset, for maintenance windows (from inclusive,
  until exclusive);
- `name`: free text for logs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .alerts import Alert, AlertType
from .timestamps import parse_us

DAY_MINUTES = 24 * 60
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WINDOW_RE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_KEYS = ("name", "types", "evse_ids", "window", "weekdays", "from", "until")


class MuteRuleError(ValueError):
    """A rule is malformed; the message names the rule and the key."""


@dataclass(frozen=True, slots=True)
class DailyWindow:
    """Minutes since UTC midnight; `end <= start` means the window wraps midnight."""

    start_min: int
    end_min: int

    def position(self, minute: int) -> int | None:
        """0 if `minute` is in the window on the day it started, -1 if in its after-midnight part of
        the previous day's window, None if outside."""
        if self.start_min < self.end_min:
            return 0 if self.start_min <= minute < self.end_min else None
        if minute >= self.start_min:
            return 0
        return -1 if minute < self.end_min else None


@dataclass(frozen=True, slots=True)
class MuteRule:
    name: str | None = None
    types: frozenset[AlertType] | None = None  # None: any
    evse_ids: frozenset[int] | None = None
    window: DailyWindow | None = None
    weekdays: frozenset[int] | None = None  # 0 = Monday
    from_us: int | None = None
    until_us: int | None = None

    def matches(self, alert: Alert, at_us: int) -> bool:
        if self.types is not None and alert.type not in self.types:
            return False
        if self.evse_ids is not None and alert.evse_id not in self.evse_ids:
            return False
        if self.from_us is not None and at_us < self.from_us:
            return False
        if self.until_us is not None and at_us >= self.until_us:
            return False
        return self._in_daily(at_us)

    def _in_daily(self, at_us: int) -> bool:
        if self.window is None and self.weekdays is None:
            return True
        day, minute = divmod(at_us // 60_000_000, DAY_MINUTES)
        offset = 0 if self.window is None else self.window.position(minute)
        if offset is None:
            return False
        return self.weekdays is None or _weekday(day + offset) in self.weekdays


def _weekday(epoch_day: int) -> int:
    return (epoch_day + 3) % 7  # 1970-01-01 was a Thursday


def is_muted(alert: Alert, rules: Iterable[MuteRule], at_us: int) -> bool:
    """True if any rule mutes `alert` at `at_us` (UTC µs; usually the alert's start)."""
    return any(rule.matches(alert, at_us) for rule in rules)


# -- parsing ----------------------------------------------------------------------------------------

def parse_rules(items: Sequence[Mapping[str, Any]], where: str = "alerts.mute") -> tuple[MuteRule, ...]:
    """Rules from a list of plain dicts (a TOML array of tables)."""
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise MuteRuleError(f"{where}: expected a list of tables, got {items!r}")
    return tuple(parse_rule(item, f"{where}[{i}]") for i, item in enumerate(items))


def parse_rule(data: Mapping[str, Any], where: str = "alerts.mute[0]") -> MuteRule:
    if not isinstance(data, Mapping):
        raise MuteRuleError(f"{where}: expected a table, got {data!r}")
    for key in data:
        if key not in _KEYS:
            raise MuteRuleError(f"{where}.{key}: unknown key (known: {', '.join(_KEYS)})")
    if not any(key in data for key in _KEYS[1:]):
        raise MuteRuleError(f"{where}: a rule needs at least one of {', '.join(_KEYS[1:])} (it would mute everything)")
    rule = MuteRule(
        name=_name(data.get("name"), f"{where}.name"),
        types=_types(data["types"], f"{where}.types") if "types" in data else None,
        evse_ids=_evse_ids(data["evse_ids"], f"{where}.evse_ids") if "evse_ids" in data else None,
        window=parse_window(data["window"], f"{where}.window") if "window" in data else None,
        weekdays=_weekdays(data["weekdays"], f"{where}.weekdays") if "weekdays" in data else None,
        from_us=_instant(data["from"], f"{where}.from") if "from" in data else None,
        until_us=_instant(data["until"], f"{where}.until") if "until" in data else None,
    )
    if rule.from_us is not None and rule.until_us is not None and rule.from_us >= rule.until_us:
        raise MuteRuleError(f"{where}.until: must be after from")
    return rule


def parse_window(text: object, where: str = "window") -> DailyWindow:
    match = _WINDOW_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise MuteRuleError(f"{where}: expected 'HH:MM-HH:MM' (UTC), got {text!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise MuteRuleError(f"{where}: not a time of day in {text!r}")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise MuteRuleError(f"{where}: start and end are equal in {text!r}; use 00:00-24:00 for a whole day")
    return DailyWindow(start, end)


def _name(value: object, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise MuteRuleError(f"{where}: expected a string, got {value!r}")
    return value


def _list(value: object, where: str) -> list[object]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise MuteRuleError(f"{where}: expected a non-empty list, got {value!r}")
    return list(value)


def _types(value: object, where: str) -> frozenset[AlertType]:
    known = [t.value for t in AlertType]
    out = set()
    for item in _list(value, where):
        if item not in known:
            raise MuteRuleError(f"{where}: unknown alert type {item!r} (known: {', '.join(known)})")
        out.add(AlertType(item))
    return frozenset(out)


def _evse_ids(value: object, where: str) -> frozenset[int]:
    out = set()
    for item in _list(value, where):
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item <= 255:
            raise MuteRuleError(f"{where}: expected EVSE ids 0..255, got {item!r}")
        out.add(item)
    return frozenset(out)


def _weekdays(value: object, where: str) -> frozenset[int]:
    out = set()
    for item in _list(value, where):
        name = item.lower() if isinstance(item, str) else item
        if name in WEEKDAYS:
            out.add(WEEKDAYS.index(name))
        elif name in _FULL_WEEKDAYS:
            out.add(_FULL_WEEKDAYS.index(name))
        else:
            raise MuteRuleError(f"{where}: expected weekdays like 'mon'..'sun', got {item!r}")
    return frozenset(out)


def _instant(value: object, where: str) -> int:
    """RFC 3339 text, or a TOML offset date-time (tomllib gives an aware datetime)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise MuteRuleError(f"{where}: {value.isoformat()} has no time zone; use Z or an explicit offset")
        return _datetime_us(value)
    if not isinstance(value, str) or "T" not in value.upper():
        raise MuteRuleError(f"{where}: expected an RFC 3339 date-time like 2026-03-01T22:00:00Z, got {value!r}")
    try:
        return parse_us(value)
    except ValueError as exc:
        raise MuteRuleError(f"{where}: {exc}") from None


def _datetime_us(value: datetime) -> int:
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
