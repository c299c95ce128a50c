import pytest

from josev_bridge.core.conditions import TRIGGER_REASONS, Condition as C, EventType, Signal, SignalRecord
from josev_bridge.core.edge_store import EdgeStore
from josev_bridge.core.event_timestamp import Answer, Query, Silence, answer
from josev_bridge.core.timestamps import parse_us

T = parse_us("2026-02-17T10:20:30.123456Z")
NOW = parse_us("2026-02-17T11:00:00Z")


def store():
    s = EdgeStore()
    s.apply(SignalRecord(1, 1, Signal.EV_CONNECTED, True, T))
    return s


def ask(s, event_type, condition, **kw):
    opts = dict(enabled=True, supported=frozenset(TRIGGER_REASONS), reply_with_current_time_when_unknown=False,
                now_us=NOW)
    opts.update(kw)
    return answer(Query(event_type, condition), s, **opts)


def test_answer_is_hardware_time_truncated_to_ms():
    assert ask(store(), EventType.START, C.EV_CONNECTED) == Answer("2026-02-17T10:20:30.123Z", 1, True)


def test_disabled_flag_means_silence_even_with_an_edge():
    result = ask(store(), EventType.START, C.EV_CONNECTED, enabled=False)
    assert isinstance(result, Silence) and result.reason == "NotSupported"
    assert "EnableGetEventTimestampRequest is false" in result.detail


def test_unknown_edge_is_silence_unless_opted_in():
    result = ask(store(), EventType.START, C.AUTHORIZED)
    assert isinstance(result, Silence) and result.reason == "NoEventRecorded"
    fallback = ask(store(), EventType.START, C.AUTHORIZED, reply_with_current_time_when_unknown=True)
    assert fallback == Answer("2026-02-17T11:00:00.000Z", None, False)


@pytest.mark.parametrize("kw", [dict(), dict(reply_with_current_time_when_unknown=True)])
def test_data_signed_has_no_stop(kw):
    s = store()
    s.apply(SignalRecord(1, 1, Signal.DATA_SIGNED, True, T))
    s.apply(SignalRecord(1, 1, Signal.DATA_SIGNED, False, T + 1000))
    result = ask(s, EventType.STOP, C.DATA_SIGNED, **kw)
    assert isinstance(result, Silence) and result.reason == "NotSupported"


def test_unsupported_trigger_reason_is_not_answered():
    result = ask(store(), EventType.START, C.EV_CONNECTED, supported=frozenset({C.AUTHORIZED}))
    assert isinstance(result, Silence) and "cannot time EVConnected" in result.detail


def test_an_edge_of_unknown_time_is_silence_with_why_never_a_time():
    """A level that changed while the MCU rebooted, with no time the bridge could know (§4.3)."""
    from josev_bridge.core.edge_store import EdgeTime

    s = store()
    s.begin_reboot("boot 00000001 -> 00000002")
    s.apply_level(1, Signal.EV_CONNECTED, False, EdgeTime(NOW, None, "changed at an unknown time", True))
    result = ask(s, EventType.STOP, C.EV_CONNECTED)
    assert isinstance(result, Silence) and result.reason == "NoEventRecorded"
    assert result.cause == "EVSE 1 TxEventStop/EVConnected: changed at an unknown time"
    fallback = ask(s, EventType.STOP, C.EV_CONNECTED, reply_with_current_time_when_unknown=True)
    assert fallback == Answer("2026-02-17T11:00:00.000Z", None, False)  # the opt-in, journaled as not hardware


def test_an_answer_carries_the_edges_note_for_its_journal_row():
    from josev_bridge.core.edge_store import EdgeTime
    from josev_bridge.services.event_timestamp import bound_note

    s = store()
    s.begin_reboot("boot 00000001 -> 00000002")
    s.apply_level(1, Signal.EV_CONNECTED, True, EdgeTime(NOW))
    result = ask(s, EventType.START, C.EV_CONNECTED)
    assert result.note == "continuity assumed across MCU boot 00000001 -> 00000002"
    assert bound_note(231, result.note) == \
        "MCU time, mapping error bound 0.231 ms; continuity assumed across MCU boot 00000001 -> 00000002"
    assert bound_note(231) == "MCU time, mapping error bound 0.231 ms"
