import json
import uuid

from josev_bridge.messages import MAX_PAYLOAD, Handled, Message, Rejected, ReplyCache, Router, encode_response


def router():
    seen = []
    r = Router()
    r.register("get_event_timestamp", "request", "get_event_timestamp.request", seen.append)
    return r, seen


def request(**data):
    return {"id": str(uuid.uuid4()), "name": "get_event_timestamp", "type": "request",
            "data": {"event_type": "TxEventStart", "trigger_reason": "EVConnected", **data}}


def test_valid_request_reaches_its_handler_and_extra_data_members_are_tolerated():
    r, seen = router()
    msg = request(future_field=1)
    assert isinstance(r.route(json.dumps(msg).encode()), Handled)
    assert seen[0].data["trigger_reason"] == "EVConnected"


def test_rejections_are_classified():
    r, seen = router()
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
    r, _ = router()
    result = r.route(json.dumps(request(trigger_reason="Plugged")).encode())
    assert "data/trigger_reason" in result.detail


def test_response_repeats_id_and_name():
    msg = Message("a504f1cd-2ae0-46cf-a93c-736a28723478", "get_event_timestamp", "request", {})
    body = json.loads(encode_response(msg, {"timestamp": "2026-02-17T10:20:30.123Z"}))
    assert body == {"id": msg.id, "name": msg.name, "type": "response", "data": {"timestamp": "2026-02-17T10:20:30.123Z"}}


def test_reply_cache_is_bounded():
    cache = ReplyCache(size=2)
    for i in range(3):
        cache.put(str(i), b"%d" % i)
    assert cache.get("0") is None and cache.get("2") == b"2"
