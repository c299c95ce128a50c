"""The fast paths may never differ from the slow ones: the request check from the schema, the
response formatting from the JSON encoder."""

import uuid

import pytest
from hypothesis import given, settings, strategies as st

from josev_bridge import schemas
from josev_bridge.core.timestamps import format_us
from josev_bridge.messages import Message, encode_response
from josev_bridge.services.event_timestamp import NAME, certainly_valid_request, response_bytes

VALIDATOR = schemas.validator("get_event_timestamp.request")

ids = st.one_of(st.uuids().map(str), st.uuids().map(lambda u: str(u).upper()), st.uuids().map(lambda u: f"{{{u}}}"),
                st.uuids().map(lambda u: u.hex), st.text(max_size=40), st.integers(), st.none())
values = st.one_of(st.sampled_from(["TxEventStart", "TxEventStop", "EVConnected", "DataSigned", "PowerPathClosed",
                                    "txeventstart", ""]), st.integers(-3, 300), st.floats(allow_nan=False),
                   st.booleans(), st.none(), st.lists(st.integers(), max_size=2), st.text(max_size=5))
datas = st.dictionaries(st.sampled_from(["event_type", "trigger_reason", "evse_id", "extra"]), values, max_size=4)
requests = st.fixed_dictionaries(
    {}, optional={"id": ids, "name": st.sampled_from(["get_event_timestamp", "other", 1]),
                  "type": st.sampled_from(["request", "response", None]),
                  "data": st.one_of(datas, st.none(), st.lists(st.integers(), max_size=1))})


@pytest.mark.slow
@settings(max_examples=3000, deadline=None)
@given(requests)
def test_fast_path_accepts_only_what_the_schema_accepts(obj):
    if certainly_valid_request(obj):
        assert VALIDATOR.is_valid(obj), obj


def test_fast_path_takes_the_common_request():
    obj = {"id": str(uuid.uuid4()), "name": "get_event_timestamp", "type": "request",
           "data": {"event_type": "TxEventStart", "trigger_reason": "EVConnected"}}
    assert certainly_valid_request(obj)
    assert certainly_valid_request({**obj, "data": {**obj["data"], "evse_id": 2}})
    assert not certainly_valid_request({**obj, "data": {**obj["data"], "evse_id": 2.0}})  # left to the schema


@settings(max_examples=2000, deadline=None)
@given(st.one_of(ids.filter(lambda i: isinstance(i, str)), st.text(max_size=40)),
       st.integers(0, 253_402_300_799_999_999))  # up to 9999-12-31T23:59:59.999999Z
@pytest.mark.slow
def test_formatted_response_is_what_the_encoder_writes(msg_id, time_us):
    message = Message(msg_id, NAME, "request", {})
    timestamp = format_us(time_us)
    assert response_bytes(message, timestamp) == encode_response(message, {"timestamp": timestamp})
