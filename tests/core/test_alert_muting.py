import tomllib

import pytest
from hypothesis import given, strategies as st

from josev_bridge.core.alert_muting import (
    DailyWindow,
    MuteRule,
    MuteRuleError,
    is_muted,
    parse_rule,
    parse_rules,
    parse_window,
)
from josev_bridge.core.alerts import Alert, AlertType, OfflineDetails, SocDetails
from josev_bridge.core.timestamps import parse_us

LOW = Alert(AlertType.LOW_BATTERY, 1, 1, 0, SocDetails(20, 15))
LOW2 = Alert(AlertType.LOW_BATTERY, 2, 1, 0, SocDetails(20, 15))
OFFLINE = Alert(AlertType.OFFLINE_CHARGER, None, None, 0, OfflineDetails(5))


def at(text):
    return parse_us(text)


def test_no_rules_mute_nothing():
    assert not is_muted(LOW, (), at("2026-03-02T10:00:00Z"))


def test_by_type():
    rules = parse_rules([{"types": ["lowBattery", "chargingCompleted"]}])
    assert is_muted(LOW, rules, 0)
    assert not is_muted(OFFLINE, rules, 0)


def test_by_evse_and_charger_wide_alerts_never_match_an_evse():
    rules = parse_rules([{"evse_ids": [2]}])
    assert is_muted(LOW2, rules, 0)
    assert not is_muted(LOW, rules, 0)
    assert not is_muted(OFFLINE, rules, 0)


def test_criteria_of_one_rule_all_apply_and_any_rule_mutes():
    rules = parse_rules([{"types": ["lowBattery"], "evse_ids": [2]}, {"types": ["offlineCharger"]}])
    assert is_muted(LOW2, rules, 0)
    assert not is_muted(LOW, rules, 0)
    assert is_muted(OFFLINE, rules, 0)


def test_daily_window_start_inclusive_end_exclusive_in_utc():
    rules = parse_rules([{"window": "08:00-17:30"}])
    assert not is_muted(LOW, rules, at("2026-03-02T07:59:59.999Z"))
    assert is_muted(LOW, rules, at("2026-03-02T08:00:00Z"))
    assert is_muted(LOW, rules, at("2026-03-02T17:29:59Z"))
    assert not is_muted(LOW, rules, at("2026-03-02T17:30:00Z"))
    assert not is_muted(LOW, rules, at("2026-03-02T12:00:00+05:00"))  # 07:00 UTC: windows are UTC
    assert is_muted(LOW, rules, at("2026-03-02T09:00:00-05:00"))  # 14:00 UTC


def test_window_wrapping_midnight():
    rules = parse_rules([{"window": "22:00-06:00"}])
    assert is_muted(LOW, rules, at("2026-03-02T23:00:00Z"))
    assert is_muted(LOW, rules, at("2026-03-03T05:59:00Z"))
    assert not is_muted(LOW, rules, at("2026-03-03T06:00:00Z"))
    assert not is_muted(LOW, rules, at("2026-03-02T21:59:00Z"))


def test_weekdays_count_the_day_the_window_starts():
    # 2026-03-06 is a Friday
    rules = parse_rules([{"window": "22:00-06:00", "weekdays": ["fri"]}])
    assert is_muted(LOW, rules, at("2026-03-06T23:00:00Z"))
    assert is_muted(LOW, rules, at("2026-03-07T05:00:00Z"))  # Saturday morning, Friday's window
    assert not is_muted(LOW, rules, at("2026-03-06T05:00:00Z"))  # Friday morning is Thursday's window
    assert not is_muted(LOW, rules, at("2026-03-07T23:00:00Z"))


def test_weekdays_alone_mean_whole_utc_days():
    rules = parse_rules([{"weekdays": ["Saturday", "SUN"]}])
    assert is_muted(LOW, rules, at("2026-03-07T00:00:00Z"))
    assert is_muted(LOW, rules, at("2026-03-08T23:59:59Z"))
    assert not is_muted(LOW, rules, at("2026-03-09T00:00:00Z"))
    assert not is_muted(LOW, rules, at("2026-03-06T23:59:59Z"))


def test_whole_day_window_and_window_to_midnight():
    assert parse_window("00:00-24:00") == DailyWindow(0, 1440)
    rules = parse_rules([{"window": "22:00-24:00"}])
    assert is_muted(LOW, rules, at("2026-03-02T23:59:59Z"))
    assert not is_muted(LOW, rules, at("2026-03-03T00:00:00Z"))


def test_absolute_maintenance_window():
    rules = parse_rules([{"from": "2026-03-01T22:00:00Z", "until": "2026-03-02T02:00:00+01:00"}])
    assert not is_muted(LOW, rules, at("2026-03-01T21:59:59Z"))
    assert is_muted(LOW, rules, at("2026-03-01T22:00:00Z"))
    assert is_muted(LOW, rules, at("2026-03-02T00:59:59Z"))
    assert not is_muted(LOW, rules, at("2026-03-02T01:00:00Z"))


def test_open_ended_maintenance_windows():
    assert is_muted(LOW, parse_rules([{"from": "2026-03-01T00:00:00Z"}]), at("2030-01-01T00:00:00Z"))
    assert not is_muted(LOW, parse_rules([{"until": "2026-03-01T00:00:00Z"}]), at("2026-03-01T00:00:00Z"))


def test_rules_from_toml_including_native_datetimes():
    data = tomllib.loads("""
        [[alerts.mute]]
        name = "night"
        types = ["chargingCompleted"]
        window = "22:00-06:00"
        weekdays = ["mon", "tue"]

        [[alerts.mute]]
        evse_ids = [2]
        from = 2026-03-01T22:00:00Z
        until = "2026-03-02T04:00:00Z"
    """)
    night, maint = parse_rules(data["alerts"]["mute"])
    assert night == MuteRule(name="night", types=frozenset({AlertType.CHARGING_COMPLETED}),
                             window=DailyWindow(1320, 360), weekdays=frozenset({0, 1}))
    assert (maint.from_us, maint.until_us) == (at("2026-03-01T22:00:00Z"), at("2026-03-02T04:00:00Z"))


@pytest.mark.parametrize("rules, message", [
    ("types", r"^alerts\.mute: expected a list"),
    ([[]], r"^alerts\.mute\[0\]: expected a table"),
    ([{}], r"^alerts\.mute\[0\]: a rule needs at least one of"),
    ([{"name": "x"}], r"^alerts\.mute\[0\]: a rule needs"),
    ([{"types": ["lowBattery"]}, {"type": ["lowBattery"]}], r"^alerts\.mute\[1\]\.type: unknown key"),
    ([{"types": "lowBattery"}], r"^alerts\.mute\[0\]\.types: expected a non-empty list"),
    ([{"types": []}], r"\.types: expected a non-empty list"),
    ([{"types": ["lowbattery"]}], r"\.types: unknown alert type 'lowbattery'"),
    ([{"evse_ids": [1, "2"]}], r"\.evse_ids: expected EVSE ids 0\.\.255, got '2'"),
    ([{"evse_ids": [True]}], r"\.evse_ids: expected EVSE ids"),
    ([{"evse_ids": [256]}], r"\.evse_ids: expected EVSE ids"),
    ([{"window": "8:00-17:00"}], r"\.window: expected 'HH:MM-HH:MM' \(UTC\), got '8:00-17:00'"),
    ([{"window": 800}], r"\.window: expected 'HH:MM-HH:MM'"),
    ([{"window": "25:00-01:00"}], r"\.window: not a time of day"),
    ([{"window": "10:60-11:00"}], r"\.window: not a time of day"),
    ([{"window": "10:00-24:30"}], r"\.window: not a time of day"),
    ([{"window": "10:00-10:00"}], r"\.window: start and end are equal"),
    ([{"weekdays": ["mo"]}], r"\.weekdays: expected weekdays"),
    ([{"weekdays": [1]}], r"\.weekdays: expected weekdays"),
    ([{"from": "2026-03-01"}], r"\.from: expected an RFC 3339 date-time"),
    ([{"from": "2026-03-01T10:00:00"}], r"\.from: .*no time zone"),
    ([{"until": "2026-13-01T10:00:00Z"}], r"\.until: "),
    ([{"from": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"}], r"\.until: must be after from"),
    ([{"name": 3, "types": ["lowBattery"]}], r"\.name: expected a string"),
])
def test_errors_name_the_rule_and_key(rules, message):
    with pytest.raises(MuteRuleError, match=message):
        parse_rules(rules)


def test_naive_toml_datetime_is_refused():
    data = tomllib.loads("from = 2026-03-01T22:00:00")
    with pytest.raises(MuteRuleError, match=r"x\.from: .*no time zone"):
        parse_rule(data, "x")


@given(start=st.integers(0, 1439), length=st.integers(1, 1439), minute=st.integers(0, 7 * 1440 - 1))
def test_a_window_covers_exactly_its_length_of_minutes_after_its_start(start, length, minute):
    end = (start + length) % 1440
    text = f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
    if end == 0:
        text = text[:6] + "24:00"
    rules = parse_rules([{"window": text}])
    day0 = at("2026-03-02T00:00:00Z")
    inside = (minute - start) % 1440 < length
    assert is_muted(LOW, rules, day0 + minute * 60_000_000) == inside
