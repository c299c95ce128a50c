import json

from josev_bridge.core.conditions import Condition as C, EventType, Signal, SignalRecord
from josev_bridge.core.edge_store import EdgeStore, EdgeTime, Found, Miss, Untimed
from josev_bridge.core.host_time import Basis

START, STOP = EventType.START, EventType.STOP


def rec(signal, state, t, evse=1):
    return SignalRecord(evse, 1, signal, state, t)


def test_rising_and_falling_edges_are_kept_per_condition():
    s = EdgeStore()
    assert [e.condition for e in s.apply(rec(Signal.EV_CONNECTED, True, 100))] == [C.EV_CONNECTED]
    assert s.lookup(START, C.EV_CONNECTED) == Found(1, 100)
    assert s.lookup(STOP, C.EV_CONNECTED) is Miss.NO_EVENT_RECORDED  # still connected
    s.apply(rec(Signal.EV_CONNECTED, False, 200))
    assert s.lookup(STOP, C.EV_CONNECTED) == Found(1, 200)


def test_repeated_state_is_not_an_edge():
    s = EdgeStore()
    s.apply(rec(Signal.BAY_OCCUPIED, True, 100))
    assert s.apply(rec(Signal.BAY_OCCUPIED, True, 150)) == []
    assert s.lookup(START, C.PARKING_BAY_OCCUPANCY) == Found(1, 100)


def test_power_path_closed_is_connected_and_authorized_not_the_relay():
    s = EdgeStore()
    s.apply(rec(Signal.AUTHORIZED, True, 100))
    assert s.lookup(START, C.POWER_PATH_CLOSED) is Miss.NO_EVENT_RECORDED
    edges = s.apply(rec(Signal.EV_CONNECTED, True, 200))
    assert [(e.condition, e.rising) for e in edges] == [(C.EV_CONNECTED, True), (C.POWER_PATH_CLOSED, True)]
    s.apply(rec(Signal.RELAY_CLOSED, True, 300))
    assert s.lookup(START, C.POWER_PATH_CLOSED) == Found(1, 200)
    assert s.lookup(START, C.RELAY_CLOSED) == Found(1, 300)  # kept as its own record
    edges = s.apply(rec(Signal.AUTHORIZED, False, 400))
    assert (C.POWER_PATH_CLOSED, False) in [(e.condition, e.rising) for e in edges]
    assert s.lookup(STOP, C.POWER_PATH_CLOSED) == Found(1, 400)


def test_stop_is_only_the_fall_after_the_latest_rise():
    s = EdgeStore()
    s.apply(rec(Signal.ENERGY_FLOWING, True, 100))
    s.apply(rec(Signal.ENERGY_FLOWING, False, 200))
    s.apply(rec(Signal.ENERGY_FLOWING, True, 300))  # energy resumed: no stop after this start yet
    assert s.lookup(STOP, C.ENERGY_TRANSFER) is Miss.NO_EVENT_RECORDED
    assert s.lookup(START, C.ENERGY_TRANSFER) == Found(1, 300)


def test_without_evse_id_the_most_recent_matching_edge_wins():
    s = EdgeStore()
    s.apply(rec(Signal.EV_CONNECTED, True, 100, evse=1))
    s.apply(rec(Signal.EV_CONNECTED, True, 300, evse=2))
    assert s.lookup(START, C.EV_CONNECTED) == Found(2, 300)
    assert s.lookup(START, C.EV_CONNECTED, evse_id=1) == Found(1, 100)
    assert s.lookup(START, C.EV_CONNECTED, evse_id=3) is Miss.NO_EVENT_RECORDED


def test_snapshot_round_trip():
    s = EdgeStore()
    s.apply(rec(Signal.EV_CONNECTED, True, 100))
    s.apply(rec(Signal.AUTHORIZED, True, 150))
    s.apply(rec(Signal.DATA_SIGNED, True, 175, evse=2))
    restored = EdgeStore.from_snapshot(s.snapshot())
    assert restored.snapshot() == s.snapshot()
    assert restored.lookup(START, C.POWER_PATH_CLOSED) == Found(1, 150)


def test_after_an_mcu_reboot_levels_are_unconfirmed_but_kept_and_answered():
    s = EdgeStore()
    s.apply(rec(Signal.EV_CONNECTED, True, 100))
    s.begin_reboot("boot 00000001 -> 00000002")
    found = s.lookup(START, C.EV_CONNECTED)
    assert (found.time_us, found.note) == (100, "the MCU has not re-reported this level since MCU boot 00000001 -> "
                                                "00000002")
    assert s.lookup(STOP, C.EV_CONNECTED) is Miss.NO_EVENT_RECORDED  # no invented fall
    assert s.state(1, C.EV_CONNECTED).active


def test_a_signal_after_a_reboot_is_an_edge_even_with_the_level_known_before():
    """The MCU saw a transition in its new boot: the level went the other way, unseen, and back."""
    s = EdgeStore()
    s.apply(rec(Signal.AUTHORIZED, True, 50))
    s.apply(rec(Signal.EV_CONNECTED, True, 100))
    s.begin_reboot("boot 00000001 -> 00000002")
    edges = s.apply(rec(Signal.EV_CONNECTED, True, 500))
    assert [(e.condition, e.rising, e.time_us) for e in edges] == [(C.EV_CONNECTED, True, 500),
                                                                   (C.POWER_PATH_CLOSED, True, 500)]
    assert s.lookup(START, C.EV_CONNECTED) == Found(1, 500)
    assert s.apply(rec(Signal.EV_CONNECTED, True, 600)) == []  # confirmed now: a repeat is no edge


def test_an_unchanged_level_keeps_its_edge_and_says_continuity_was_assumed():
    s = EdgeStore()
    for signal, t in ((Signal.BAY_OCCUPIED, 10), (Signal.EV_CONNECTED, 100), (Signal.AUTHORIZED, 150)):
        s.apply(rec(signal, True, t), error_us=7)
    s.apply(rec(Signal.ENERGY_FLOWING, True, 200))
    s.apply(rec(Signal.ENERGY_FLOWING, False, 300))
    s.begin_reboot("boot 0000000a -> 0000000b")
    later = EdgeTime(9_999, 1)
    outcomes = [s.apply_level(1, signal, state, later) for signal, state in (
        (Signal.BAY_OCCUPIED, True), (Signal.EV_CONNECTED, True), (Signal.ENERGY_FLOWING, False),
        (Signal.AUTHORIZED, True))]
    assert all(o.edges == [] for o in outcomes)
    assert [o.kept for o in outcomes] == [[C.PARKING_BAY_OCCUPANCY], [C.EV_CONNECTED], [C.ENERGY_TRANSFER],
                                          [C.AUTHORIZED, C.POWER_PATH_CLOSED]]  # both inputs confirmed
    note = "continuity assumed across MCU boot 0000000a -> 0000000b"
    assert s.lookup(START, C.PARKING_BAY_OCCUPANCY) == Found(1, 10, 7, note)
    assert s.lookup(START, C.POWER_PATH_CLOSED) == Found(1, 150, 7, note)
    assert s.lookup(STOP, C.ENERGY_TRANSFER) == Found(1, 300, None, note)  # the fall is what stays true
    assert s.lookup(START, C.ENERGY_TRANSFER) == Found(1, 200)
    again = EdgeStore.from_snapshot(s.snapshot())
    assert again.snapshot() == s.snapshot() and again.lookup(START, C.EV_CONNECTED) == Found(1, 100, 7, note)


def test_a_changed_level_is_an_edge_at_the_time_given_or_untimed():
    s = EdgeStore()
    s.apply(rec(Signal.EV_CONNECTED, True, 100))
    s.apply(rec(Signal.AUTHORIZED, True, 150))
    s.begin_reboot("boot 0000000a -> 0000000b")
    out = s.apply_level(1, Signal.AUTHORIZED, False, EdgeTime(5_000, 900, "inferred: between ..."))
    assert [(e.condition, e.rising, e.time_us) for e in out.edges] == [(C.AUTHORIZED, False, 5_000),
                                                                       (C.POWER_PATH_CLOSED, False, 5_000)]
    assert s.lookup(STOP, C.POWER_PATH_CLOSED) == Found(1, 5_000, 900, "inferred: between ...")
    out = s.apply_level(1, Signal.EV_CONNECTED, False, EdgeTime(6_000, None, "changed at an unknown time", True))
    assert [e.condition for e in out.edges] == [C.EV_CONNECTED]
    assert s.lookup(STOP, C.EV_CONNECTED) == Untimed(1, "changed at an unknown time")  # never a time
    assert s.lookup(START, C.EV_CONNECTED) == Found(1, 100)  # the rise before it is still the rise
    s.apply(rec(Signal.EV_CONNECTED, True, 7_000))  # the next session: a real edge again
    assert s.lookup(START, C.EV_CONNECTED) == Found(1, 7_000)
    assert s.lookup(STOP, C.EV_CONNECTED) is Miss.NO_EVENT_RECORDED
    assert EdgeStore.from_snapshot(s.snapshot()).snapshot() == s.snapshot()


def test_a_level_the_store_never_knew():
    """A 1 with no time and no history is not an edge anyone can timestamp; a 0 is no edge at all."""
    s = EdgeStore()
    assert s.apply_level(2, Signal.BAY_OCCUPIED, False, EdgeTime(1, None, "x", True)).edges == []
    assert s.lookup(STOP, C.PARKING_BAY_OCCUPANCY, 2) is Miss.NO_EVENT_RECORDED
    assert s.state(2, C.PARKING_BAY_OCCUPANCY).known
    out = s.apply_level(2, Signal.EV_CONNECTED, True, EdgeTime(10, None, "no time", True))
    assert [e.condition for e in out.edges] == [C.EV_CONNECTED]
    assert s.lookup(START, C.EV_CONNECTED, 2) == Untimed(2, "no time")
    s.apply(rec(Signal.EV_CONNECTED, False, 20, evse=2))
    assert s.lookup(STOP, C.EV_CONNECTED, 2) == Found(2, 20)  # a stop after an untimed start is still a stop


def test_snapshots_of_an_older_version_load_as_known_levels():
    old = {"version": 1, "evses": {"1": {"EVConnected": {"active": True, "rise_us": 5, "fall_us": None}}}}
    s = EdgeStore.from_snapshot(old)
    assert s.state(1, C.EV_CONNECTED).known  # and its time is UTC, of a clock state nobody recorded
    assert s.lookup(START, C.EV_CONNECTED) == Found(1, 5, basis=Basis.UTC_UNKNOWN)


def test_an_answer_carries_the_error_bound_stated_for_its_edge_and_it_survives_a_snapshot():
    store = EdgeStore()
    store.apply(SignalRecord(1, 1, Signal.EV_CONNECTED, True, 1_000), error_us=350)
    store.apply(SignalRecord(1, 1, Signal.EV_CONNECTED, False, 9_000), error_us=2_100)
    again = EdgeStore.from_snapshot(store.snapshot())
    for s in (store, again):
        assert s.lookup(EventType.START, C.EV_CONNECTED) == Found(1, 1_000, 350)
        assert s.lookup(EventType.STOP, C.EV_CONNECTED) == Found(1, 9_000, 2_100)


# -- issue 14 item 4: edges on the host's monotonic clock, UTC at answer time ------------------------

def test_utc_is_the_monotonic_time_plus_the_offset_of_the_moment_asked():
    s = EdgeStore()
    s.apply(rec(Signal.EV_CONNECTED, True, 5_000_000), 200)  # host monotonic 5 s
    assert s.lookup(START, C.EV_CONNECTED, offset_us=1_000_000_000) == Found(1, 1_005_000_000, 200)
    three_years = 94_608_000_000_000  # the board's clock stepped after the edge: the answer follows it
    assert s.lookup(START, C.EV_CONNECTED, offset_us=1_000_000_000 + three_years).time_us == \
        1_005_000_000 + three_years


def test_edges_of_an_earlier_host_boot_keep_the_utc_they_had_with_how_the_clock_stood():
    s = EdgeStore()
    s.apply(rec(Signal.EV_CONNECTED, True, 5_000_000), 200)
    s.apply(rec(Signal.EV_CONNECTED, False, 9_000_000), 300)
    restored = EdgeStore.from_snapshot(json.loads(json.dumps(s.snapshot())))
    assert restored.fix_to_utc(1_000_000_000, 7, synchronised=False) == 2
    found = restored.lookup(STOP, C.EV_CONNECTED, offset_us=123)  # today's offset no longer matters
    assert found == Found(1, 1_009_000_000, 307, basis=Basis.UTC_UNSYNCHRONISED)
    assert restored.fix_to_utc(5, 0, synchronised=True) == 0  # fixed once
    restored.apply(rec(Signal.EV_CONNECTED, True, 2_000_000), 100)  # this boot's: monotonic again
    assert restored.lookup(START, C.EV_CONNECTED, offset_us=1_100_000_000) == Found(1, 1_102_000_000, 100)
    assert restored.lookup(STOP, C.EV_CONNECTED, offset_us=1_100_000_000) is Miss.NO_EVENT_RECORDED  # still on


def test_an_older_versions_state_file_holds_utc():
    legacy = {"version": 1, "evses": {"1": {"EVConnected": {"active": True, "rise_us": 1_700_000_000_000_000,
                                                             "fall_us": None, "rise_error_us": 250}}}}
    found = EdgeStore.from_snapshot(legacy).lookup(START, C.EV_CONNECTED, offset_us=42)
    assert found == Found(1, 1_700_000_000_000_000, 250, basis=Basis.UTC_UNKNOWN)
