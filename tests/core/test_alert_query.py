import pytest

from josev_bridge.core.alert_query import decode_alert_cursor, encode_alert_cursor, parse_alert_query
from josev_bridge.core.journal_query import QueryError
from josev_bridge.core.timestamps import parse_us


def test_defaults():
    q = parse_alert_query({})
    assert (q.start_after_us, q.recipient_ids, q.include_muted, q.before_id, q.limit) == (None, (), False, None, 50)


def test_recipients_in_both_styles_deduplicated():
    q = parse_alert_query({"alertRecipientIds": ["1", "2"], "alertRecipientIds[]": ["2", "3"]})
    assert q.recipient_ids == (1, 2, 3)


@pytest.mark.parametrize("text,value", [("true", True), ("false", False), ("1", True), ("0", False), ("TRUE", True)])
def test_include_muted(text, value):
    assert parse_alert_query({"includeMuted": [text]}).include_muted is value


def test_cursor_is_base64_of_the_decimal_id_like_flipturns():
    assert encode_alert_cursor(456) == "NDU2"
    assert decode_alert_cursor("NDU2") == 456
    assert parse_alert_query({"nextPageCursor": ["NDU2"]}).before_id == 456


def test_start_after():
    assert parse_alert_query({"startTimestampAfter": ["2024-04-30T01:00:07.321Z"]}).start_after_us == \
        parse_us("2024-04-30T01:00:07.321Z")


@pytest.mark.parametrize("name,value", [("includeMuted", "yes"), ("alertRecipientIds", "one"),
                                        ("alertRecipientIds[]", "-1"), ("nextPageCursor", "bm90IGFuIGlk"),
                                        ("nextPageCursor", "***"), ("startTimestampAfter", "later"),
                                        ("limit", "0"), ("colour", "red"),
                                        ("alertRecipientIds", "9" * 5000),
                                        ("nextPageCursor", "OTk5OTk5OTk5OTk5OTk5OTk5OTk5")])
def test_bad_parameters_name_themselves(name, value):
    with pytest.raises(QueryError) as err:
        parse_alert_query({name: [value]})
    assert str(err.value).startswith(name.rstrip("[]"))
