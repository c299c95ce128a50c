import re

import pytest
from hypothesis import given, strategies as st

from josev_bridge.core.timestamps import (
    JOSEV_TIMESTAMP_PATTERN,
    format_ms,
    format_us,
    is_josev_timestamp,
    parse_us,
    truncate_to_ms,
)


def test_format_truncates_never_rounds():
    # 2026-02-17T10:20:30.123999Z must not become .124
    us = parse_us("2026-02-17T10:20:30.123999Z")
    assert format_us(us) == "2026-02-17T10:20:30.123Z"
    assert format_us(parse_us("2026-12-31T23:59:59.999999Z")) == "2026-12-31T23:59:59.999Z"


def test_format_is_utc_with_z_regardless_of_local_zone(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    import time
    time.tzset()
    try:
        assert format_ms(0) == "1970-01-01T00:00:00.000Z"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_parse_accepts_offsets_and_rejects_naive():
    assert parse_us("2026-02-17T11:20:30.5+01:00") == parse_us("2026-02-17T10:20:30.500Z")
    with pytest.raises(ValueError, match="no time zone"):
        parse_us("2026-02-17T10:20:30")


@given(st.integers(min_value=0, max_value=253402300799_999_999))
def test_every_formatted_time_matches_the_seed_pattern_and_round_trips_to_ms(us):
    text = format_us(us)
    assert re.match(JOSEV_TIMESTAMP_PATTERN, text)
    assert is_josev_timestamp(text)
    assert parse_us(text) == truncate_to_ms(us)


def test_pattern_rejects_what_josev_forbids():
    for bad in ("2026-02-17T10:20:30.1234Z", "2026-02-17T10:20:30+00:00", "2026-02-17 10:20:30Z"):
        assert not is_josev_timestamp(bad)
