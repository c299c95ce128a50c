import pytest

from josev_bridge.core.journal_query import (
    DAY_US,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Position,
    QueryError,
    decode_cursor,
    encode_cursor,
    parse_query,
    parse_timestamp_us,
)
from josev_bridge.core.timestamps import parse_us

NOW = parse_us("2024-05-08T12:00:00Z")


def q(**params):
    return parse_query({k: v if isinstance(v, list) else [v] for k, v in params.items()}, NOW)


def test_defaults_are_the_last_24_hours_50_rows_every_type():
    query = q(chargerId="c1")
    assert (query.start_us, query.end_us) == (NOW - DAY_US, NOW)
    assert query.limit == DEFAULT_LIMIT == 50
    assert query.message_types == () and query.after is None


def test_start_defaults_to_24_hours_before_a_given_end():
    end = parse_us("2024-05-01T00:00:00Z")
    assert q(chargerId="c1", endTimestamp="2024-05-01T00:00:00Z").start_us == end - DAY_US


@pytest.mark.parametrize("params", [{"messageType": ["A"]}, {"messageType[]": ["A"]}])
def test_single_type_in_both_styles(params):
    assert parse_query({"chargerId": ["c"], **params}, NOW).message_types == ("A",)


def test_repeated_types_in_both_styles_and_mixed_keep_order_without_duplicates():
    assert q(chargerId="c", **{"messageType[]": ["A", "B", "A"]}).message_types == ("A", "B")
    assert q(chargerId="c", messageType=["A", "B"]).message_types == ("A", "B")
    assert q(chargerId="c", messageType="C", **{"messageType[]": ["D"]}).message_types == ("C", "D")


def test_range_must_be_less_than_8_days():
    q(chargerId="c", startTimestamp="2024-05-01T00:00:00.001Z", endTimestamp="2024-05-09T00:00:00Z")
    with pytest.raises(QueryError) as err:
        q(chargerId="c", startTimestamp="2024-05-01T00:00:00Z", endTimestamp="2024-05-09T00:00:00Z")
    assert err.value.parameter == "startTimestamp" and "8 days" in str(err.value)


def test_start_after_end_is_rejected():
    with pytest.raises(QueryError, match="startTimestamp"):
        q(chargerId="c", startTimestamp="2024-05-02T00:00:00Z", endTimestamp="2024-05-01T00:00:00Z")


@pytest.mark.parametrize("name,value", [
    ("limit", "0"), ("limit", "501"), ("limit", "ten"), ("limit", "-1"), ("limit", "1.5"), ("limit", ""),
    ("startTimestamp", "yesterday"), ("endTimestamp", "2024-13-01T00:00:00Z"),
    ("nextPageCursor", "!!!"), ("nextPageCursor", "bm90IGEgY3Vyc29y"),
])
def test_bad_values_name_their_parameter(name, value):
    with pytest.raises(QueryError) as err:
        q(chargerId="c", **{name: value})
    assert err.value.parameter == name and str(err.value).startswith(name)


def test_limit_bounds_are_inclusive():
    assert q(chargerId="c", limit="1").limit == 1
    assert q(chargerId="c", limit=str(MAX_LIMIT)).limit == 500


def test_charger_id_is_required_and_unknown_parameters_are_errors():
    with pytest.raises(QueryError, match="chargerId: required"):
        q()
    with pytest.raises(QueryError, match="chargerId: required"):
        q(chargerId="")
    with pytest.raises(QueryError) as err:
        q(chargerId="c", messagetype="A")
    assert err.value.parameter == "messagetype"


def test_a_parameter_given_twice_is_an_error():
    with pytest.raises(QueryError, match="limit: given more than once"):
        q(chargerId="c", limit=["1", "2"])


def test_cursor_round_trip_and_opaqueness():
    position = Position(1714438807321000, 456)
    cursor = encode_cursor(position)
    assert decode_cursor(cursor) == position
    assert all(c.isalnum() or c in "-_" for c in cursor)  # safe in a query string without escaping
    assert q(chargerId="c", nextPageCursor=cursor).after == position


def test_timestamps_with_offsets_and_without_zone_are_utc():
    assert parse_timestamp_us("2024-04-30T03:00:07.321+02:00") == parse_us("2024-04-30T01:00:07.321Z")
    assert parse_timestamp_us("2024-04-30T01:00:07.321") == parse_us("2024-04-30T01:00:07.321Z")
    assert parse_timestamp_us("2024-04-30") == parse_us("2024-04-30T00:00:00Z")
