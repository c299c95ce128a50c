import json
import uuid

import pytest

from josev_bridge.core.journal_entry import NoAnswer
from josev_bridge.messages import (
    MAX_DEPTH,
    MAX_PAYLOAD,
    Handled,
    Message,
    Outcome,
    Rejected,
    ReplyCache,
    Router,
    encode_response,
    raw_text,
)

TIMESTAMP = "2026-02-17T10:20:30.123Z"


def router(answer=TIMESTAMP, refuse=None):
    """A router whose handler answers `answer` (None: stays silent); `refuse` is what publish says."""
    seen, sent = [], []

    def handler(message):
        seen.append(message)
        return Outcome({"timestamp": answer}) if answer else Outcome(no_answer="NoEventRecorded", note="none")

    def publish(topic, payload):
        if refuse is None:
            sent.append((topic, payload))
        return refuse

    r = Router(publish)
    r.register("get_event_timestamp", "request", "get_event_timestamp.request", handler,
               response_topic="cs/ocpp", response_schema="get_event_timestamp.response")
    return r, seen, sent


def request(**data):
    return {"id": str(uuid.uuid4()), "name": "get_event_timestamp", "type": "request",
            "data": {"event_type": "TxEventStart", "trigger_reason": "EVConnected", **data}}


def test_valid_request_reaches_its_handler_and_extra_data_members_are_tolerated():
    r, seen, _ = router()
    msg = request(future_field=1)
    assert isinstance(r.route(json.dumps(msg).encode()), Handled)
    assert seen[0].data["trigger_reason"] == "EVConnected"


def test_rejections_are_classified():
    r, seen, _ = router()
    cases = {
        b"x" * (MAX_PAYLOAD + 1): "oversized",
        b"{": "malformed_json",
        b"\xff": "malformed_json",
        b"42": "not_an_envelope",
        json.dumps({"name": "other", "type": "request", "id": "1", "data": {}}).encode(): "ignored",
        json.dumps({**request(), "id": "not-a-uuid"}).encode(): "schema_violation",
        json.dumps(request(evse_id=0)).encode(): "schema_violation",
        json.dumps({**request(), "data": None}).encode(): "schema_violation",
    }
    for payload, kind in cases.items():
        result = r.route(payload)
        assert isinstance(result, Rejected) and result.kind == kind, (payload[:40], result)
    assert seen == []


def test_schema_violation_names_the_field():
    r, _, _ = router()
    result = r.route(json.dumps(request(trigger_reason="Plugged")).encode())
    assert "data/trigger_reason" in result.detail


def test_response_repeats_id_and_name():
    msg = Message("a504f1cd-2ae0-46cf-a93c-736a28723478", "get_event_timestamp", "request", {})
    body = json.loads(encode_response(msg, {"timestamp": "2026-02-17T10:20:30.123Z"}))
    assert body == {"id": msg.id, "name": msg.name, "type": "response",
                    "data": {"timestamp": "2026-02-17T10:20:30.123Z"}}


def test_reply_cache_is_bounded():
    cache = ReplyCache(size=2)
    for i in range(3):
        cache.put(str(i), i, b"%d" % i)
    assert cache.get("0") is None and cache.get("2") == (2, b"2", None)


def test_router_sends_the_answer_and_repeats_it_for_a_redelivery():
    r, seen, sent = router()
    payload = json.dumps(request()).encode()
    first, again = r.route(payload), r.route(payload)
    assert first.outcome.sent and again.outcome.sent
    assert len(seen) == 1  # the redelivery did not reach the handler
    assert sent[0] == sent[1] and json.loads(sent[0][1])["data"] == {"timestamp": TIMESTAMP}
    assert again.outcome.note and "redelivery" in again.outcome.note


def test_same_id_with_another_body_is_a_new_request():
    r, seen, sent = router()
    msg = request()
    r.route(json.dumps(msg).encode())
    other = {**msg, "data": {"event_type": "TxEventStop", "trigger_reason": "EVConnected"}}
    result = r.route(json.dumps(other).encode())
    assert len(seen) == 2 and seen[1].data["event_type"] == "TxEventStop"
    assert result.outcome.sent and len(sent) == 2


def test_an_answer_the_link_refuses_is_not_sent_and_says_why():
    r, _, _ = router(refuse="message queue full")
    result = r.route(json.dumps(request()).encode())
    assert not result.outcome.sent
    assert result.outcome.no_answer == NoAnswer.NOT_SENT.value and "queue full" in result.outcome.note


def test_a_refused_answer_is_not_cached_so_a_redelivery_is_decided_again():
    r, seen, _ = router(refuse="no")
    payload = json.dumps(request()).encode()
    r.route(payload), r.route(payload)
    assert len(seen) == 2


def test_silence_sends_nothing():
    r, _, sent = router(answer=None)
    result = r.route(json.dumps(request()).encode())
    assert sent == [] and not result.outcome.sent and result.outcome.no_answer == "NoEventRecorded"


def test_a_response_failing_its_schema_is_never_sent():
    r, _, sent = router(answer="yesterday")
    result = r.route(json.dumps(request()).encode())
    assert sent == [] and result.outcome.no_answer == NoAnswer.NOT_SENT.value and "schema" in result.outcome.note


HOSTILE = {
    "lone surrogate in id": b'{"id": "\\ud800", "name": "x", "type": "request"}',
    "lone surrogate in name": b'{"id": "1", "name": "\\udfff", "type": "request"}',
    "NUL in id": b'{"id": "a\\u0000b", "name": "x", "type": "request"}',
    "NaN": b'{"id": NaN, "name": "x", "type": "request"}',
    "Infinity in data": b'{"id": "1", "name": "x", "type": "request", "data": {"a": -Infinity}}',
    "1e999999": b'{"id": "1", "name": "x", "type": "request", "data": {"a": 1e999999}}',
    "30,000 levels": b'{"id": "1", "name": "x", "type": "request", "data": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
    "deeper than the limit": b'{"name": "x", "type": "r", "data": ' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)
                             + b"}",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_input_json_or_sqlite_cannot_carry_is_malformed(case):
    r, seen, _ = router()
    result = r.route(HOSTILE[case])
    assert isinstance(result, Rejected) and result.kind == "malformed_json", result
    assert seen == []
    text = raw_text(HOSTILE[case])
    text.encode("utf-8")  # storable as text
    assert "\x00" not in text and "\x00" not in result.detail
    result.detail.encode("utf-8")


def test_valid_escapes_and_astral_characters_pass():
    r, _, _ = router()
    payload = json.dumps({"name": "other", "type": "x", "id": "caf\u00e9 \U0001F600", "data": {"k": 1.5}}).encode()
    result = r.route(payload)
    assert isinstance(result, Rejected) and result.kind == "ignored" and result.id == "caf\u00e9 \U0001F600"
