"""The ingest across MCU reboots (docs/serial-protocol.md §4.3, §4.6, §4.7), records in, answers out:
continuity of unchanged levels, the time of a changed one (the MCU's age, the reboot's interval, or
unknown), a version-1 MCU's re-reports, and the KEEPALIVE that reveals a lost last record."""

from __future__ import annotations

import logging

import pytest

from josev_bridge.adapters.state_file import AtomicJsonFile
from josev_bridge.core.clock_map import ClockSample
from josev_bridge.core.conditions import TRIGGER_REASONS, Condition, EventType, LevelRecord, Signal, SignalRecord
from josev_bridge.core.event_timestamp import Answer, Query, Silence
from josev_bridge.core.mcu_boots import BRACKET_MAX_US
from josev_bridge.core.timestamps import format_us, parse_us
from josev_bridge.protocol.framing import PROTOCOL_VERSION
from josev_bridge.protocol.records import Hello, KeepAlive
from josev_bridge.services.mcu_ingest import McuIngest

A, B = 0xA, 0xB
S = 1_000_000  # µs
START, STOP = EventType.START, EventType.STOP
CONTINUITY = "continuity assumed across MCU boot 0000000a -> 0000000b"


def ask(ingest: McuIngest, event_type: EventType, condition: Condition, evse_id: int = 1) -> Answer | Silence:
    return ingest.lookup(Query(event_type, condition, evse_id), enabled=True, supported=frozenset(TRIGGER_REASONS),
                         reply_with_current_time_when_unknown=False, clock_us=lambda: 0)


def boot(ingest: McuIngest, boot_id: int, mcu_now_us: int, version: int = PROTOCOL_VERSION) -> None:
    """A HELLO and one probe answer; the MCU clock reads the host's monotonic clock (and UTC: offset 0)."""
    ingest.on_record(0, Hello(version, boot_id, "fw", 1, 1))
    ingest.on_clock_sample(ClockSample(mcu_now_us, mcu_now_us, 100))


@pytest.fixture
def ingest(tmp_path) -> McuIngest:
    """Boot A with a charging session on EVSE 1: EV connected at 1 s, authorized at 2 s, bay occupied
    at 0.5 s; every record of boot A received at 3 s, as its KEEPALIVE says."""
    ingest = McuIngest(AtomicJsonFile(tmp_path / "edges.json"), realtime_offset_us=lambda: 0)
    boot(ingest, A, S // 2)
    for seq, (signal, t) in enumerate(((Signal.BAY_OCCUPIED, S // 2), (Signal.EV_CONNECTED, S),
                                       (Signal.AUTHORIZED, 2 * S)), 1):
        ingest.on_record(seq, SignalRecord(1, 1, signal, True, t))
    ingest.on_record(0, KeepAlive(3 * S, A, 4))
    assert not ingest.replay_wanted()
    return ingest


def test_an_unchanged_level_keeps_the_session_start_and_says_so(ingest, caplog):
    caplog.set_level(logging.INFO)
    boot(ingest, B, 4 * S)
    for seq, signal in enumerate(Signal, 1):
        ingest.on_record(seq, LevelRecord(1, 1, signal, signal in (Signal.EV_CONNECTED, Signal.AUTHORIZED,
                                                                   Signal.BAY_OCCUPIED), 4 * S))
    for condition, t in ((Condition.EV_CONNECTED, S), (Condition.POWER_PATH_CLOSED, 2 * S),
                         (Condition.PARKING_BAY_OCCUPANCY, S // 2)):
        answer = ask(ingest, START, condition)
        assert (answer.timestamp, answer.note) == (format_us(t), CONTINUITY)
    assert ingest.counters.continuity_assumed == 4 and ingest.counters.edges == 4  # no edge from the reboot
    assert "EVSE 1 EVConnected still true after the MCU reboot (boot 0000000a -> 0000000b): continuity " \
           "assumed, TxEventStart kept at 1970-01-01T00:00:01.000Z" in caplog.text
    ingest.on_record(7, SignalRecord(1, 1, Signal.EV_CONNECTED, False, 5 * S))  # unplugged after the reboot
    assert ask(ingest, STOP, Condition.EV_CONNECTED).timestamp == "1970-01-01T00:00:05.000Z"


def test_a_level_that_changed_during_a_quick_reboot_is_answered_from_the_reboots_interval(ingest, caplog):
    caplog.set_level(logging.INFO)
    boot(ingest, B, 4 * S)
    ingest.on_record(1, LevelRecord(1, 1, Signal.AUTHORIZED, False, 4 * S))  # a cold boot forgot it
    for condition in (Condition.AUTHORIZED, Condition.POWER_PATH_CLOSED):
        answer = ask(ingest, STOP, condition)
        assert abs(parse_us(answer.timestamp) - 3_500_000) <= 1_000  # the middle of [3 s, 4 s]
        assert 500_000 <= answer.error_us <= 501_000  # and half their distance
        assert answer.note.startswith("inferred: changed while the MCU rebooted (boot 0000000a -> 0000000b), "
                                      "between 1970-01-01T00:00:02.99")
    assert "EVSE 1 Authorized TxEventStop at 1970-01-01T00:00:03.49" in caplog.text


def test_a_level_that_changed_over_a_longer_outage_has_no_time(ingest, caplog):
    boot(ingest, B, 3 * S + BRACKET_MAX_US + S)
    ingest.on_record(1, LevelRecord(1, 1, Signal.EV_CONNECTED, False, 3 * S + BRACKET_MAX_US + S))
    silence = ask(ingest, STOP, Condition.EV_CONNECTED)
    assert isinstance(silence, Silence) and silence.reason == "NoEventRecorded"
    assert "changed at an unknown time while the MCU rebooted (boot 0000000a -> 0000000b), between" in silence.cause
    assert ask(ingest, START, Condition.EV_CONNECTED).timestamp == "1970-01-01T00:00:01.000Z"  # its start stays
    assert ingest.counters.untimed_edges == 2  # EVConnected and PowerPathClosed
    assert "at an unknown time" in caplog.text and "it will not be answered" in caplog.text


def test_the_reboots_interval_starts_at_the_last_record_held_when_no_keepalive_came_after_it(tmp_path):
    ingest = McuIngest(AtomicJsonFile(tmp_path / "edges.json"), realtime_offset_us=lambda: 0)
    boot(ingest, A, S)
    ingest.on_record(1, SignalRecord(1, 1, Signal.EV_CONNECTED, True, S))
    ingest.on_record(2, SignalRecord(1, 1, Signal.BAY_OCCUPIED, True, 2 * S))  # the bridge holds 1 and 2
    boot(ingest, B, 3 * S)  # no KEEPALIVE came after seq 2: anything stamped before it was received
    ingest.on_record(1, LevelRecord(1, 1, Signal.EV_CONNECTED, False, 3 * S))
    answer = ask(ingest, STOP, Condition.EV_CONNECTED)
    assert abs(parse_us(answer.timestamp) - 2_500_000) <= 1_000 and answer.note.startswith("inferred")


def test_after_a_bridge_restart_the_old_boots_last_moment_is_not_known(tmp_path):
    first = McuIngest(AtomicJsonFile(tmp_path / "edges.json"), realtime_offset_us=lambda: 0)
    boot(first, A, S)
    first.on_record(1, SignalRecord(1, 1, Signal.EV_CONNECTED, True, S))
    assert first.flush() is not None
    ingest = McuIngest(AtomicJsonFile(tmp_path / "edges.json"), realtime_offset_us=lambda: 0)  # restarted
    boot(ingest, B, 2 * S)  # and the MCU rebooted meanwhile
    ingest.on_record(1, LevelRecord(1, 1, Signal.EV_CONNECTED, False, 2 * S))
    assert "the bridge did not know when it last held every record" in ask(ingest, STOP, Condition.EV_CONNECTED).cause
    assert ask(ingest, START, Condition.EV_CONNECTED).timestamp == "1970-01-01T00:00:01.000Z"


def test_the_mcus_age_of_a_level_gives_its_edge(ingest):
    boot(ingest, B, 4 * S)
    ingest.on_record(1, LevelRecord(2, 1, Signal.EV_CONNECTED, True, 4 * S, age_us=3 * S))  # EVSE 2: never known
    answer = ask(ingest, START, Condition.EV_CONNECTED, 2)
    assert answer.timestamp == "1970-01-01T00:00:01.000Z"
    assert answer.note == "time from the MCU's level report: 3.000 s old at 1970-01-01T00:00:04.000Z"
    assert answer.error_us < 1000 + 3 * S * 100e-6 + 2  # the slope's error over the age, at most


def test_a_re_reported_one_with_no_history_and_no_age_is_not_timestamped(ingest):
    boot(ingest, B, 4 * S)
    ingest.on_record(1, LevelRecord(2, 1, Signal.BAY_OCCUPIED, True, 4 * S))
    silence = ask(ingest, START, Condition.PARKING_BAY_OCCUPANCY, 2)
    assert isinstance(silence, Silence) and "a level the bridge never knew, without its time: not an edge the " \
        "bridge can timestamp" in silence.cause
    ingest.on_record(2, LevelRecord(2, 1, Signal.EV_CONNECTED, False, 4 * S))  # a 0 never known: no edge
    assert ingest.counters.untimed_edges == 1


def test_a_version_1_mcus_re_reports_are_taken_as_such(tmp_path, caplog):
    ingest = McuIngest(AtomicJsonFile(tmp_path / "edges.json"), realtime_offset_us=lambda: 0)
    boot(ingest, A, S, version=1)
    ingest.on_record(1, SignalRecord(1, 1, Signal.EV_CONNECTED, True, S))
    boot(ingest, B, 4 * S, version=1)
    ingest.on_record(1, SignalRecord(1, 1, Signal.EV_CONNECTED, True, 4 * S))  # the re-report
    ingest.on_record(2, SignalRecord(1, 1, Signal.AUTHORIZED, True, 4 * S))  # never known: an edge at its time
    answer = ask(ingest, START, Condition.EV_CONNECTED)
    assert answer.timestamp == "1970-01-01T00:00:01.000Z"
    assert answer.note == "continuity assumed across MCU boot 0000000a -> 0000000b (MCU protocol v1)"
    assert ask(ingest, START, Condition.AUTHORIZED).timestamp == "1970-01-01T00:00:04.000Z"
    ingest.on_record(3, SignalRecord(1, 1, Signal.EV_CONNECTED, True, 6 * S))  # confirmed: a repeat, no edge
    assert ask(ingest, START, Condition.EV_CONNECTED).timestamp == "1970-01-01T00:00:01.000Z"
    assert caplog.text.count("speaks serial protocol v1") == 2  # once per boot: reduced guarantees
    assert ingest.boots.protocol_version == 1


def test_a_keepalive_reveals_a_lost_last_record_and_a_lost_hello(ingest, caplog):
    ingest.on_record(0, KeepAlive(5 * S, A, 5))  # seq 4 was sent and never arrived
    assert ingest.replay_wanted() and ingest.counters.keepalive_gaps == 1
    ingest.on_record(0, KeepAlive(6 * S, A, 5))  # still missing: asked again by the link, counted once
    assert ingest.counters.keepalive_gaps == 1 and caplog.text.count("was lost on the line") == 1
    ingest.on_record(4, SignalRecord(1, 1, Signal.EV_CONNECTED, False, 5 * S))  # the replay brings it
    assert not ingest.replay_wanted()
    assert ask(ingest, STOP, Condition.EV_CONNECTED).timestamp == "1970-01-01T00:00:05.000Z"
    ingest.on_record(0, KeepAlive(7 * S, B, 1))  # a boot whose HELLO never came
    assert ingest.replay_wanted() and ingest.counters.keepalive_gaps == 2
    ingest.on_record(0, Hello(PROTOCOL_VERSION, B, "fw", 1, 1))  # the replay starts with it
    assert not ingest.replay_wanted()
    ingest.on_record(0, KeepAlive(7 * S))  # a version-1 KEEPALIVE says nothing of it
    assert not ingest.replay_wanted()


def test_a_clock_reply_of_zero_is_no_sample(tmp_path):
    ingest = McuIngest(AtomicJsonFile(tmp_path / "edges.json"), realtime_offset_us=lambda: 0)
    ingest.on_record(0, Hello(PROTOCOL_VERSION, A, "fw", 1, 1))
    ingest.on_record(1, SignalRecord(1, 1, Signal.EV_CONNECTED, True, 5))
    ingest.on_clock_sample(ClockSample(0, 10 * S, 100))  # "no clock reading yet" (§5.1)
    assert ingest.counters.records == 0 and ingest.clock is None or not ingest.clock.ready
    ingest.on_clock_sample(ClockSample(5, 5, 100))
    assert ingest.counters.records == 1
