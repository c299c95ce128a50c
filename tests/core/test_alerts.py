import json

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from josev_bridge.core.alert_inputs import DepartureSource, EvStatusRecord, FaultRecord
from josev_bridge.core.alerts import (
    ENDED_EARLY,
    FAILED_TO_START,
    FAULTED_STATUS,
    Alert,
    AlertChange,
    AlertEngine,
    AlertSettings,
    AlertSettingsError,
    AlertType,
    ChangeKind,
    LateDetails,
    OfflineDetails,
    SessionErrorDetails,
    SocDetails,
    alert_from_dict,
    alert_to_dict,
)
from josev_bridge.core.conditions import Condition as C, Edge
from josev_bridge.core.timestamps import parse_us

S = 1_000_000
MIN = 60 * S
T0 = parse_us("2026-03-01T10:00:00.123456Z")
HOLD = AlertSettings().clear_hold_s * S


def fault(active, t, evse=1, code="GroundFailure", vendor="E042", info="ground fault"):
    return FaultRecord(evse, 1, active, code, vendor, info, t)


def status(t, soc, evse=1, power=None, cap=None, dep=None):
    return EvStatusRecord(evse, 1, t, soc, power, cap, dep,
                          DepartureSource.EV if dep is not None else DepartureSource.NONE)


def edge(cond, rising, t, evse=1):
    return Edge(evse, cond, rising, t)


def kinds(changes):
    return [(c.kind, c.alert.type) for c in changes]


def opened(changes, kind=None):
    return [c.alert for c in changes if c.kind is ChangeKind.OPENED and (kind is None or c.alert.type is kind)]


def closed(changes, kind=None):
    return [c.alert for c in changes if c.kind is ChangeKind.CLOSED and (kind is None or c.alert.type is kind)]


def plug(engine, t, evse=1, authorize=True):
    out = engine.on_edge(edge(C.EV_CONNECTED, True, t, evse))
    if authorize:
        out += engine.on_edge(edge(C.AUTHORIZED, True, t, evse))
    return out


def unplug(engine, t, evse=1):
    return engine.on_edge(edge(C.AUTHORIZED, False, t, evse)) + engine.on_edge(edge(C.EV_CONNECTED, False, t, evse))


# -- chargingSessionError -----------------------------------------------------------------------------

def test_a_fault_opens_one_session_error_with_the_records_fields_and_time():
    e = AlertEngine()
    [change] = e.on_fault(fault(True, T0))
    assert change.kind is ChangeKind.OPENED
    a = change.alert
    assert a.type is AlertType.CHARGING_SESSION_ERROR
    assert (a.evse_id, a.connector_id, a.start_us, a.end_us) == (1, 1, T0, None)
    assert a.details == SessionErrorDetails(FAULTED_STATUS, "GroundFailure", "E042", "ground fault", None)
    assert a.session_start_us is None


def test_error_context_failed_to_start_when_energy_never_flowed_in_the_session():
    e = AlertEngine()
    plug(e, T0)
    [a] = opened(e.on_fault(fault(True, T0 + S)))
    assert a.details.error_context == FAILED_TO_START
    assert a.session_start_us == T0


def test_error_context_ended_early_once_energy_flowed_even_if_it_stopped():
    e = AlertEngine()
    plug(e, T0)
    e.on_edge(edge(C.ENERGY_TRANSFER, True, T0 + S))
    e.on_edge(edge(C.ENERGY_TRANSFER, False, T0 + 2 * S))
    [a] = opened(e.on_fault(fault(True, T0 + 3 * S)))
    assert a.details.error_context == ENDED_EARLY


def test_a_new_session_forgets_that_energy_flowed_in_the_previous_one():
    e = AlertEngine()
    plug(e, T0)
    e.on_edge(edge(C.ENERGY_TRANSFER, True, T0 + S))
    e.on_edge(edge(C.ENERGY_TRANSFER, False, T0 + 2 * S))
    unplug(e, T0 + 3 * S)
    assert not e.session_open(1)
    [outside] = opened(e.on_fault(fault(True, T0 + 4 * S, code="HighTemperature")))
    assert outside.details.error_context is None
    plug(e, T0 + 5 * S)
    [inside] = opened(e.on_fault(fault(True, T0 + 6 * S, code="OverCurrentFailure")))
    assert inside.details.error_context == FAILED_TO_START


def test_authorized_alone_opens_a_session():
    e = AlertEngine()
    e.on_edge(edge(C.AUTHORIZED, True, T0))
    assert e.session_open(1)
    [a] = opened(e.on_fault(fault(True, T0 + S)))
    assert a.details.error_context == FAILED_TO_START


def test_a_station_wide_fault_takes_the_context_of_every_open_session():
    e = AlertEngine()
    plug(e, T0, evse=1)
    plug(e, T0, evse=2)
    e.on_edge(edge(C.ENERGY_TRANSFER, True, T0 + S, evse=2))
    [a] = opened(e.on_fault(fault(True, T0 + 2 * S, evse=0)))
    assert a.details.error_context == ENDED_EARLY
    assert a.evse_id == 0


def test_a_cleared_fault_closes_after_the_hold_with_the_clear_time_as_end():
    e = AlertEngine()
    e.on_fault(fault(True, T0))
    assert e.on_fault(fault(False, T0 + 10 * S)) == []
    assert e.tick(T0 + 10 * S + HOLD - 1, T0 + 10 * S) == []  # not yet
    [change] = e.tick(T0 + 10 * S + HOLD, T0 + 10 * S)
    assert change.kind is ChangeKind.CLOSED
    assert (change.alert.start_us, change.alert.end_us) == (T0, T0 + 10 * S)
    assert e.open_alerts() == []


def test_a_fault_flapping_within_the_hold_is_one_alert_ending_at_the_last_clear():
    e = AlertEngine()
    changes = []
    t = T0
    for _ in range(20):
        changes += e.on_fault(fault(True, t))
        changes += e.on_fault(fault(False, t + 2 * S))
        changes += e.tick(t + 3 * S, t + 3 * S)
        t += 30 * S
    assert kinds(changes) == [(ChangeKind.OPENED, AlertType.CHARGING_SESSION_ERROR)]
    last_clear = t - 30 * S + 2 * S
    [end] = e.tick(last_clear + HOLD, last_clear + HOLD)
    assert (end.alert.start_us, end.alert.end_us, end.alert.occurrences) == (T0, last_clear, 20)


def test_a_fault_back_after_the_hold_is_a_new_episode_closed_first_even_without_a_tick():
    e = AlertEngine()
    e.on_fault(fault(True, T0))
    e.on_fault(fault(False, T0 + S))
    changes = e.on_fault(fault(True, T0 + S + HOLD + S))
    assert [c.kind for c in changes] == [ChangeKind.CLOSED, ChangeKind.OPENED]
    assert changes[0].alert.end_us == T0 + S
    assert changes[1].alert.start_us == T0 + S + HOLD + S


def test_faults_are_keyed_per_evse_and_error_code():
    e = AlertEngine()
    changes = (e.on_fault(fault(True, T0)) + e.on_fault(fault(True, T0 + 1, code="HighTemperature"))
               + e.on_fault(fault(True, T0 + 2, evse=2)) + e.on_fault(fault(True, T0 + 3)))
    assert len(opened(changes)) == 3
    assert sorted(a.key for a in e.open_alerts()) == [
        "chargingSessionError/evse1/GroundFailure", "chargingSessionError/evse1/HighTemperature",
        "chargingSessionError/evse2/GroundFailure"]


def test_a_clear_without_an_episode_and_a_repeated_raise_change_nothing():
    e = AlertEngine()
    assert e.on_fault(fault(False, T0)) == []
    e.on_fault(fault(True, T0 + S))
    assert e.on_fault(fault(True, T0 + 2 * S, info="other text")) == []
    assert e.open_alerts()[0].details.ocpp_info == "ground fault"  # the episode keeps its first record


def test_a_fault_raised_again_while_clearing_keeps_the_first_details():
    e = AlertEngine()
    e.on_fault(fault(True, T0, vendor="E1"))
    e.on_fault(fault(False, T0 + S))
    e.on_fault(fault(True, T0 + 2 * S, vendor="E2"))
    [a] = e.open_alerts()
    assert (a.details.ocpp_vendor_error_code, a.occurrences, a.start_us) == ("E1", 2, T0)


def test_a_fault_the_mcu_does_not_raise_again_after_a_reboot_ends_at_the_reboot():
    e = AlertEngine()
    e.on_fault(fault(True, T0))
    e.on_fault(fault(True, T0 + S, code="HighTemperature"))
    reboot = T0 + 10 * S
    assert e.on_mcu_reboot(reboot) == []
    e.on_fault(fault(True, reboot + 200_000, code="HighTemperature"))  # still active: re-raised after HELLO
    changes = e.tick(reboot + HOLD, reboot + HOLD)
    [gone] = closed(changes)
    assert (gone.details.ocpp_error_code, gone.end_us) == ("GroundFailure", reboot)
    [kept] = e.open_alerts()
    assert (kept.details.ocpp_error_code, kept.occurrences, kept.end_us) == ("HighTemperature", 1, None)


def test_a_clear_record_after_a_reboot_gives_the_mcus_time_and_a_raise_after_the_hold_is_new():
    e = AlertEngine()
    e.on_fault(fault(True, T0))
    e.on_mcu_reboot(T0 + 10 * S)
    e.on_fault(fault(False, T0 + 5 * S))  # replayed from the ring of the old boot: the MCU knew better
    [c] = e.tick(T0 + 5 * S + HOLD, T0 + 5 * S + HOLD)
    assert c.alert.end_us == T0 + 5 * S
    later = T0 + 10 * S + 2 * HOLD
    assert [x.kind for x in e.on_fault(fault(True, later))] == [ChangeKind.OPENED]


def test_a_reboot_leaves_other_alert_types_and_clearing_faults_alone():
    e = AlertEngine()
    plug(e, T0)
    e.on_ev_status(status(T0 + S, 10))  # lowBattery
    e.on_fault(fault(True, T0 + 2 * S))
    e.on_fault(fault(False, T0 + 3 * S))  # clearing since T0 + 3 s
    e.on_mcu_reboot(T0 + 4 * S)
    [c] = closed(e.tick(T0 + 3 * S + HOLD, T0 + 3 * S + HOLD))
    assert (c.type, c.end_us) == (AlertType.CHARGING_SESSION_ERROR, T0 + 3 * S)
    assert [a.type for a in e.open_alerts()] == [AlertType.LOW_BATTERY]


def test_an_unconfirmed_fault_survives_a_restart_of_the_bridge():
    e = AlertEngine()
    e.on_fault(fault(True, T0))
    e.on_mcu_reboot(T0 + S)
    r = AlertEngine.from_snapshot(json.loads(json.dumps(e.snapshot())))
    assert r.on_fault(fault(True, T0 + 2 * S)) == [] and r.open_alerts()[0].occurrences == 1
    legacy = e.snapshot()
    for ep in legacy["episodes"]:
        del ep["unconfirmed"]  # a snapshot written before the field existed
    assert AlertEngine.from_snapshot(legacy).open_alerts() == e.open_alerts()


# -- the board's clock steps -----------------------------------------------------------------------------

YEARS_3 = 3 * 365 * 86_400 * S


@pytest.mark.parametrize("step", [YEARS_3, -YEARS_3])
def test_a_clock_step_neither_ends_a_hold_at_once_nor_stretches_it(step):
    """A fault cleared before NTP stepped the clock: its hold still lasts clear_hold_s of real time; the
    alert's start and end keep the times the clock gave them."""
    e = AlertEngine()
    e.on_fault(fault(True, T0))
    e.on_fault(fault(False, T0 + 10 * S))
    e.on_clock_step(step)  # 5 s later, times are `step` off
    after = T0 + 15 * S + step
    assert e.tick(after, after) == []
    assert e.on_fault(fault(True, T0 + 20 * S + step)) == []  # back within the hold: the same episode
    assert e.on_fault(fault(False, T0 + 30 * S + step)) == []
    assert e.tick(T0 + 30 * S + step + HOLD - 1, after) == []
    [end] = closed(e.tick(T0 + 30 * S + step + HOLD, after))
    assert (end.start_us, end.end_us, end.occurrences) == (T0, T0 + 30 * S + step, 2)


@pytest.mark.parametrize("step", [YEARS_3, -YEARS_3])
def test_a_clock_step_during_an_offline_episode_is_not_taken_for_a_frame_heard_or_for_silence(step):
    e = AlertEngine()
    [start] = opened(e.tick(T0 + 6 * MIN, T0))
    e.on_clock_step(step)
    silent = T0 + step  # the same last frame, on the new time line
    for s in range(1, 120):
        assert e.tick(T0 + 6 * MIN + s * S + step, silent) == []  # still silent: neither heard nor closed
    back = T0 + 8 * MIN + step
    e.tick(back, back)  # the MCU is heard again, after the step
    [end] = closed(e.tick(back + HOLD, back + HOLD))
    assert (end.start_us, end.end_us) == (start.start_us, back)


def test_a_snapshot_keeps_the_moved_hold_and_one_without_it_holds_from_the_clear():
    e = AlertEngine()
    e.on_fault(fault(True, T0))
    e.on_fault(fault(False, T0 + 10 * S))
    e.on_clock_step(YEARS_3)
    r = AlertEngine.from_snapshot(json.loads(json.dumps(e.snapshot())))
    assert r.tick(T0 + 10 * S + YEARS_3 + HOLD - 1, None) == []
    assert closed(r.tick(T0 + 10 * S + YEARS_3 + HOLD, None))
    legacy = AlertEngine()
    legacy.on_fault(fault(True, T0))
    legacy.on_fault(fault(False, T0 + 10 * S))
    old = legacy.snapshot()
    for ep in old["episodes"]:
        del ep["hold_from_us"]  # written before the field existed
    assert closed(AlertEngine.from_snapshot(old).tick(T0 + 10 * S + HOLD, None))
    for ep in old["episodes"]:
        ep["hold_from_us"] = None  # damaged: a clearing episode without its hold's start
    assert closed(AlertEngine.from_snapshot(old).tick(T0 + 10 * S + HOLD, None))


def test_a_hold_or_silence_starting_after_now_counts_from_now():
    """Restored after a host reboot that set the clock back (no RTC): not a hold that never ends."""
    e = AlertEngine(AlertSettings(offline_threshold_minutes=5))
    e.tick(T0, T0 - 6 * 60 * S)  # offline
    e.tick(T0 + S, T0 + S)  # heard again: clearing
    e.on_fault(fault(True, T0))
    e.on_fault(fault(False, T0 + S))
    r = AlertEngine.from_snapshot(e.snapshot())
    back = T0 - YEARS_3
    assert r.tick(back, None) == []
    assert {a.type for a in closed(r.tick(back + HOLD, None))} == {AlertType.CHARGING_SESSION_ERROR,
                                                                 AlertType.OFFLINE_CHARGER}
    offline = AlertEngine(AlertSettings(offline_threshold_minutes=5))
    offline.tick(T0, T0 - 6 * 60 * S)  # open, and the board reboots to 1970 before the MCU is heard
    r = AlertEngine.from_snapshot(offline.snapshot())
    r.tick(back, back - S)
    r.tick(back + S, back + S)  # heard again after the reboot: clearing
    assert closed(r.tick(back + S + HOLD, back + S + HOLD))


# -- offlineCharger -----------------------------------------------------------------------------------

def test_offline_opens_after_the_threshold_starting_at_the_last_frame_heard():
    e = AlertEngine(AlertSettings(offline_threshold_minutes=5))
    assert e.tick(T0 + 5 * MIN - 1, T0) == []
    [change] = e.tick(T0 + 5 * MIN, T0)
    a = change.alert
    assert (change.kind, a.type, a.evse_id, a.start_us) == (ChangeKind.OPENED, AlertType.OFFLINE_CHARGER, None, T0)
    assert a.details == OfflineDetails(5)
    assert e.tick(T0 + 6 * MIN, T0) == []  # still silent: no second alert


def test_offline_closes_once_heard_steadily_for_the_hold_with_the_first_frame_as_end():
    e = AlertEngine()
    e.tick(T0 + 10 * MIN, T0)
    back = T0 + 10 * MIN + 500_000
    assert e.tick(back + 100, back) == []
    changes = []
    for s in range(1, 61):
        changes += e.tick(back + s * S, back + s * S - 200_000)  # a frame every second
    [change] = closed(changes)
    assert (change.start_us, change.end_us) == (T0, back)


def test_a_link_that_flaps_silent_heard_silent_is_one_offline_alert():
    e = AlertEngine()
    changes = e.tick(T0 + 6 * MIN, T0)
    t, heard = T0 + 6 * MIN, T0
    for _ in range(10):  # heard for 20 s, then silent for 30 s (beyond the 5 s gap, short of the threshold)
        for _ in range(20):
            t += S
            heard = t
            changes += e.tick(t, heard)
        for _ in range(30):
            t += S
            changes += e.tick(t, heard)
    assert len(opened(changes)) == 1 and closed(changes) == []
    assert e.open_alerts()[0].occurrences == 11


def test_offline_again_after_a_steady_return_is_a_new_alert():
    e = AlertEngine()
    e.tick(T0 + 6 * MIN, T0)
    back = T0 + 6 * MIN + S
    e.tick(back, back)
    [end] = e.tick(back + HOLD, back + HOLD)
    assert end.kind is ChangeKind.CLOSED
    last = back + HOLD
    [again] = e.tick(last + 5 * MIN, last)
    assert again.kind is ChangeKind.OPENED and again.alert.start_us == last


def test_no_frame_ever_heard_leaves_offline_unknown():
    e = AlertEngine()
    assert e.tick(T0 + 60 * MIN, None) == []


# -- lowBattery ---------------------------------------------------------------------------------------

def test_low_battery_opens_at_or_below_the_threshold_only_while_connected():
    e = AlertEngine()
    assert e.on_ev_status(status(T0, 10)) == []  # nothing connected
    plug(e, T0 + S)
    assert e.on_ev_status(status(T0 + 2 * S, 20.5)) == []
    [a] = opened(e.on_ev_status(status(T0 + 3 * S, 20)))
    assert (a.type, a.start_us, a.details) == (AlertType.LOW_BATTERY, T0 + 3 * S, SocDetails(20, 20))


def test_soc_oscillating_around_the_low_threshold_is_one_alert():
    e = AlertEngine()
    plug(e, T0)
    changes = []
    for i, soc in enumerate([19, 21, 19.5, 22, 18, 21.9, 20] * 5):  # never above 20 + 2
        changes += e.on_ev_status(status(T0 + (i + 1) * 10 * S, soc))
    assert kinds(changes) == [(ChangeKind.OPENED, AlertType.LOW_BATTERY)]
    assert e.tick(T0 + 3600 * S, T0 + 3600 * S) == []  # in the band it never cleared


def test_low_battery_clears_above_the_band_and_closes_after_the_hold():
    e = AlertEngine()
    plug(e, T0)
    e.on_ev_status(status(T0 + S, 15))
    e.on_ev_status(status(T0 + 10 * S, 22.5))  # above band: clearing
    assert e.on_ev_status(status(T0 + 20 * S, 19)) == []  # back within the hold: same episode
    e.on_ev_status(status(T0 + 30 * S, 23))
    changes = e.on_ev_status(status(T0 + 30 * S + HOLD, 30))
    [a] = closed(changes)
    assert (a.start_us, a.end_us, a.details.soc_percent) == (T0 + S, T0 + 30 * S, 15)


def test_unplugging_clears_session_alerts_at_the_edge_time():
    e = AlertEngine()
    plug(e, T0)
    e.on_ev_status(status(T0 + S, 10))
    unplug(e, T0 + 5 * S)
    [a] = closed(e.tick(T0 + 5 * S + HOLD, T0 + 5 * S + HOLD))
    assert (a.type, a.end_us) == (AlertType.LOW_BATTERY, T0 + 5 * S)


# -- chargingCompleted --------------------------------------------------------------------------------

def test_completed_opens_when_soc_reaches_the_threshold_and_only_unplugging_clears_it():
    e = AlertEngine()
    plug(e, T0)
    assert opened(e.on_ev_status(status(T0 + S, 99.9))) == []
    [a] = opened(e.on_ev_status(status(T0 + 2 * S, 100)))
    assert (a.type, a.start_us, a.details) == (AlertType.CHARGING_COMPLETED, T0 + 2 * S, SocDetails(100, 100))
    changes = []
    for i, soc in enumerate([99, 100, 97, 100, 95, 100]):
        changes += e.on_ev_status(status(T0 + (i + 3) * 60 * S, soc))
    assert changes == []
    unplug(e, T0 + 3600 * S)
    [end] = closed(e.tick(T0 + 3600 * S + HOLD, T0 + 3600 * S + HOLD))
    assert end.end_us == T0 + 3600 * S


def test_energy_stopping_just_below_the_threshold_is_completion():
    e = AlertEngine()
    plug(e, T0)
    e.on_edge(edge(C.ENERGY_TRANSFER, True, T0 + S))
    e.on_ev_status(status(T0 + 2 * S, 97.5))
    [a] = opened(e.on_edge(edge(C.ENERGY_TRANSFER, False, T0 + 3 * S)))
    assert (a.type, a.start_us, a.details.soc_percent, a.evse_id, a.connector_id) == \
        (AlertType.CHARGING_COMPLETED, T0 + 3 * S, 97.5, 1, 1)


def test_energy_stopping_well_below_the_threshold_or_by_a_fault_is_not_completion():
    e = AlertEngine()
    plug(e, T0)
    e.on_ev_status(status(T0 + S, 80))
    assert e.on_edge(edge(C.ENERGY_TRANSFER, False, T0 + 2 * S)) == []
    e.on_ev_status(status(T0 + 3 * S, 98))
    e.on_fault(fault(True, T0 + 4 * S))
    assert opened(e.on_edge(edge(C.ENERGY_TRANSFER, False, T0 + 5 * S))) == []
    e.on_fault(fault(True, T0 + 6 * S, evse=0, code="PowerMeterFailure"))
    e.on_fault(fault(False, T0 + 7 * S))
    assert opened(e.on_edge(edge(C.ENERGY_TRANSFER, False, T0 + 8 * S))) == []  # the station fault holds


def test_energy_stopping_without_a_known_soc_is_not_completion():
    e = AlertEngine()
    plug(e, T0)
    assert e.on_edge(edge(C.ENERGY_TRANSFER, False, T0 + S)) == []


def test_the_completed_threshold_is_configurable():
    e = AlertEngine(AlertSettings(completed_soc_threshold=80))
    plug(e, T0)
    [a] = opened(e.on_ev_status(status(T0 + S, 81)))
    assert a.details == SocDetails(80, 81)


# -- lateCharging -------------------------------------------------------------------------------------

def test_eta_is_now_plus_missing_energy_over_power():
    e = AlertEngine()
    # 60 kWh battery at 50 %: 30 kWh missing at 10 kW = 3 h
    assert e.eta_us(status(T0, 50, power=10_000, cap=60_000)) == T0 + 3 * 3600 * S
    assert e.eta_us(status(T0, 100, power=10_000, cap=60_000)) == T0
    assert e.eta_us(status(T0, 50, power=0, cap=60_000)) is None
    assert e.eta_us(status(T0, 50, power=None, cap=60_000)) is None
    assert e.eta_us(status(T0, 50, power=10_000, cap=None)) is None
    assert e.eta_us(status(T0, None, power=10_000, cap=60_000)) is None


def test_late_charging_opens_when_the_eta_passes_the_departure_and_tracks_current_values():
    e = AlertEngine()
    plug(e, T0)
    dep = T0 + 2 * 3600 * S
    assert e.on_ev_status(status(T0, 50, power=20_000, cap=60_000, dep=dep)) == []  # ETA T0+1.5 h
    [a] = opened(e.on_ev_status(status(T0 + S, 50, power=10_000, cap=60_000, dep=dep)))  # ETA T0+3 h
    eta = T0 + S + 3 * 3600 * S
    assert (a.type, a.start_us) == (AlertType.LATE_CHARGING, T0 + S)
    assert a.details == LateDetails(eta, eta, dep, dep)
    # a few seconds of power noise: no update storm
    assert e.on_ev_status(status(T0 + 2 * S, 50, power=10_001, cap=60_000, dep=dep)) == []
    # the operator moves the departure: UPDATED with the original kept
    [u] = e.on_ev_status(status(T0 + 3 * S, 50, power=10_000, cap=60_000, dep=dep + 600 * S))
    assert u.kind is ChangeKind.UPDATED
    assert u.alert.details.original_eta_us == eta and u.alert.details.original_departure_us == dep
    assert u.alert.details.current_departure_us == dep + 600 * S
    # power drops: ETA moves by much more than a minute
    [u2] = e.on_ev_status(status(T0 + 4 * S, 50, power=5_000, cap=60_000, dep=dep + 600 * S))
    assert u2.alert.details.current_eta_us == T0 + 4 * S + 6 * 3600 * S


def test_late_charging_clears_with_margin_and_closes_with_current_values():
    e = AlertEngine()
    plug(e, T0)
    dep = T0 + 3600 * S
    e.on_ev_status(status(T0, 50, power=10_000, cap=60_000, dep=dep))  # ETA 3 h: late
    # ETA 1 h - 1 min: on time but within the 5 min margin: stays open
    e.on_ev_status(status(T0 + S, 50, power=30_500, cap=60_000, dep=dep))
    assert e.tick(T0 + S + 2 * HOLD, T0 + S + 2 * HOLD) == []
    t = T0 + 200 * S
    e.on_ev_status(status(t, 50, power=60_000, cap=60_000, dep=dep))  # ETA t + 30 min: clear
    [a] = closed(e.tick(t + HOLD, t + HOLD))
    assert a.end_us == t and a.details.current_eta_us == t + 1800 * S
    assert a.details.original_eta_us == T0 + 3 * 3600 * S


def test_late_charging_clears_when_the_target_soc_is_reached():
    e = AlertEngine()
    plug(e, T0)
    dep = T0 + 60 * S
    e.on_ev_status(status(T0, 90, power=10_000, cap=60_000, dep=dep))
    changes = e.on_ev_status(status(T0 + 100 * S, 100, power=1_000, cap=60_000, dep=dep))
    assert opened(changes, AlertType.CHARGING_COMPLETED)
    [a] = closed(e.tick(T0 + 100 * S + HOLD, T0 + 100 * S + HOLD), AlertType.LATE_CHARGING)
    assert a.end_us == T0 + 100 * S


def test_unknown_power_or_departure_changes_nothing():
    e = AlertEngine()
    plug(e, T0)
    dep = T0 + 60 * S
    e.on_ev_status(status(T0, 50, power=10_000, cap=60_000, dep=dep))
    assert e.on_ev_status(status(T0 + S, 50, power=0, cap=60_000, dep=dep)) == []
    assert e.on_ev_status(status(T0 + 2 * S, 50, power=10_000, cap=60_000, dep=None)) == []
    assert [a.type for a in e.open_alerts()] == [AlertType.LATE_CHARGING]
    assert e.tick(T0 + 3600 * S, T0 + 3600 * S) == []


# -- expiry, ordering, inputs in general --------------------------------------------------------------

def test_several_expired_episodes_close_in_clear_order():
    e = AlertEngine()
    e.on_fault(fault(True, T0, code="A"))
    e.on_fault(fault(True, T0, code="B"))
    e.on_fault(fault(False, T0 + 2 * S, code="B"))
    e.on_fault(fault(False, T0 + 3 * S, code="A"))
    changes = e.tick(T0 + 3 * S + HOLD, T0 + 3 * S + HOLD)
    assert [c.alert.details.ocpp_error_code for c in changes] == ["B", "A"]


def test_zero_hold_closes_at_the_next_input():
    e = AlertEngine(AlertSettings(clear_hold_s=0))
    e.on_fault(fault(True, T0))
    e.on_fault(fault(False, T0 + S))
    [c] = e.tick(T0 + S, T0 + S)
    assert c.kind is ChangeKind.CLOSED


def test_irrelevant_edges_change_nothing():
    e = AlertEngine()
    for cond in (C.PARKING_BAY_OCCUPANCY, C.POWER_PATH_CLOSED, C.DATA_SIGNED, C.RELAY_CLOSED):
        assert e.on_edge(edge(cond, True, T0)) == []
    assert not e.session_open(1)


# -- persistence --------------------------------------------------------------------------------------

def _busy_engine():
    e = AlertEngine()
    plug(e, T0)
    e.on_edge(edge(C.ENERGY_TRANSFER, True, T0 + S))
    e.on_ev_status(status(T0 + 2 * S, 15, power=7_000, cap=60_000, dep=T0 + 3600 * S))
    e.tick(T0 + 5 * MIN + 2 * S, T0 + 2 * S)
    e.on_fault(fault(True, T0 + 5 * MIN + 3 * S))
    e.on_fault(fault(False, T0 + 5 * MIN + 4 * S))  # clearing at the snapshot
    return e


def test_snapshot_is_json_and_restores_open_episodes_without_duplicates():
    e = _busy_engine()
    data = json.loads(json.dumps(e.snapshot()))
    r = AlertEngine.from_snapshot(data)
    assert r.open_alerts() == e.open_alerts()
    assert r.snapshot() == e.snapshot()
    assert {a.type for a in r.open_alerts()} == {AlertType.LOW_BATTERY, AlertType.LATE_CHARGING,
                                                 AlertType.CHARGING_SESSION_ERROR, AlertType.OFFLINE_CHARGER}
    t = T0 + 7 * MIN
    # the same conditions again after the restart: no new alert; the clearing fault closes with its clear time
    changes = r.on_ev_status(status(t, 14, power=7_000, cap=60_000, dep=T0 + 3600 * S))
    assert opened(changes) == []
    [c] = closed(changes)
    assert (c.type, c.end_us) == (AlertType.CHARGING_SESSION_ERROR, T0 + 5 * MIN + 4 * S)
    assert r.tick(t, T0 + 2 * S) == []
    # the session is still known: energy had flowed in it
    [a] = opened(r.on_fault(fault(True, t, code="HighTemperature")))
    assert a.details.error_context == ENDED_EARLY and a.session_start_us == T0


def test_restored_engine_keeps_the_thresholds_its_episodes_opened_with():
    e = AlertEngine(AlertSettings(low_soc_threshold=30))
    plug(e, T0)
    e.on_ev_status(status(T0 + S, 25))
    r = AlertEngine.from_snapshot(e.snapshot(), AlertSettings(low_soc_threshold=10))
    assert r.open_alerts()[0].details.soc_threshold == 30


@pytest.mark.parametrize("bad", [
    None, {}, {"version": 2}, {"version": 1}, {"version": 1, "episodes": [{"alert": {}}], "evses": {}},
    {"version": 1, "episodes": [], "evses": {"1": {"connected": True}}},
    {"version": 1, "episodes": [], "evses": {"x": {"connected": True, "authorized": False, "session_start_us": None,
                                                   "energy_flowed": False, "soc_percent": None}}},
    {"version": 1, "episodes": [], "evses": {"1": {"connected": True, "authorized": False, "session_start_us": "1",
                                                   "energy_flowed": False, "soc_percent": None}}},
    {"version": 1, "episodes": [], "evses": {"1": {"connected": True, "authorized": False, "session_start_us": 1,
                                                   "energy_flowed": False, "soc_percent": "50"}}},
])
def test_malformed_snapshots_raise_value_error(bad):
    with pytest.raises(ValueError):
        AlertEngine.from_snapshot(bad)


def test_alert_dict_round_trip_and_stable_episode_id():
    e = _busy_engine()
    for a in e.open_alerts():
        assert alert_from_dict(json.loads(json.dumps(alert_to_dict(a)))) == a
    a = Alert(AlertType.OFFLINE_CHARGER, None, None, 5, OfflineDetails(5))
    assert (a.key, a.episode_id) == ("offlineCharger", "offlineCharger@5")
    with pytest.raises(ValueError):
        alert_from_dict({"type": "lowBattery"})
    with pytest.raises(ValueError):
        alert_from_dict({**alert_to_dict(a), "type": "nope"})


# -- settings -----------------------------------------------------------------------------------------

def test_default_settings():
    s = AlertSettings()
    assert (s.clear_hold_s, s.offline_threshold_minutes, s.link_gap_s, s.low_soc_threshold,
            s.completed_soc_threshold, s.completed_stop_band, s.soc_hysteresis, s.late_clear_margin_s,
            s.eta_update_s) == (60, 5, 5, 20, 100, 3, 2, 300, 60)


@pytest.mark.parametrize("data, message", [
    ({"clear_hold": 1}, r"\[alerts\] clear_hold: unknown key"),
    ({"clear_hold_s": "60"}, r"\[alerts\] clear_hold_s: expected a number"),
    ({"clear_hold_s": True}, r"clear_hold_s: expected a number"),
    ({"clear_hold_s": -1}, r"clear_hold_s: must not be negative"),
    ({"clear_hold_s": float("nan")}, r"clear_hold_s: expected a number"),
    ({"offline_threshold_minutes": 0}, r"offline_threshold_minutes: must be positive"),
    ({"low_soc_threshold": 101}, r"low_soc_threshold: a state of charge"),
    ({"low_soc_threshold": 90, "completed_soc_threshold": 80}, r"low_soc_threshold: plus soc_hysteresis"),
])
def test_settings_errors_name_the_key(data, message):
    with pytest.raises(AlertSettingsError, match=message):
        AlertSettings.from_mapping(data)


def test_settings_from_mapping():
    assert AlertSettings.from_mapping({"clear_hold_s": 30, "low_soc_threshold": 15.5}) == \
        AlertSettings(clear_hold_s=30, low_soc_threshold=15.5)


# -- properties ---------------------------------------------------------------------------------------

_gaps = st.lists(st.integers(min_value=1, max_value=int(HOLD) - 1), min_size=1, max_size=40)


@given(raise_gaps=_gaps, clear_gaps=_gaps, tick_every=st.sampled_from([None, S, 7 * S]))
@hsettings(max_examples=150, deadline=None)
def test_any_fault_flapping_within_the_hold_is_exactly_one_alert(raise_gaps, clear_gaps, tick_every):
    """Raised/cleared any number of times, each clear shorter than the hold: one alert, then one close."""
    e = AlertEngine()
    changes, t, clears = [], T0, []
    for up, down in zip(raise_gaps, clear_gaps):
        changes += e.on_fault(fault(True, t))
        t += up
        changes += e.on_fault(fault(False, t))
        clears.append(t)
        if tick_every:
            stop = t + down
            for tt in range(t, stop, tick_every):
                changes += e.tick(tt, tt)
        t += down
    assert len(opened(changes)) == 1 and closed(changes) == []
    changes = e.tick(clears[-1] + int(HOLD), clears[-1] + int(HOLD))
    [c] = closed(changes)
    assert (c.start_us, c.end_us, c.occurrences) == (T0, clears[-1], len(clears))


@given(events=st.lists(st.tuples(st.booleans(), st.integers(min_value=1, max_value=3 * int(HOLD))),
                       min_size=1, max_size=40))
@hsettings(max_examples=150, deadline=None)
def test_fault_episodes_follow_the_hold_rule(events):
    """Any raise/clear sequence: a new alert exactly when a raise follows a clear by at least the hold;
    opens and closes alternate; starts and ends are record times."""
    e = AlertEngine()
    changes, t, expected, times = [], T0, 0, set()
    episode = None  # reference model: None, "active" or the time it cleared
    for active, gap in events:
        t += gap
        times.add(t)
        if episode not in (None, "active") and t - episode >= HOLD:
            episode = None
        if active:
            expected += episode is None
            episode = "active"
        elif episode == "active":
            episode = t
        changes += e.on_fault(fault(active, t))
    assert len(opened(changes)) == expected
    kinds_seq = [c.kind for c in changes]
    assert all(a != b for a, b in zip(kinds_seq, kinds_seq[1:]))  # open, close, open, ...
    assert all(c.alert.start_us in times and (c.alert.end_us is None or c.alert.end_us in times) for c in changes)


@given(socs=st.lists(st.floats(min_value=0, max_value=22, allow_nan=False), min_size=1, max_size=50))
@hsettings(max_examples=100, deadline=None)
def test_soc_anywhere_below_the_band_after_a_low_is_one_low_battery_alert(socs):
    e = AlertEngine()
    plug(e, T0)
    changes = e.on_ev_status(status(T0 + S, 10))
    for i, soc in enumerate(socs):
        changes += e.on_ev_status(status(T0 + (i + 2) * 30 * S, soc))
    assert kinds(changes) == [(ChangeKind.OPENED, AlertType.LOW_BATTERY)]


@given(pattern=st.lists(st.tuples(st.integers(min_value=1, max_value=50), st.integers(min_value=6, max_value=50)),
                        min_size=1, max_size=8))
@hsettings(max_examples=50, deadline=None)
def test_any_link_flapping_after_an_outage_is_one_offline_alert(pattern):
    """Heard for less than the hold, then silent beyond the gap, any number of times: one alert."""
    e = AlertEngine(AlertSettings(offline_threshold_minutes=1))
    changes = e.tick(T0 + MIN, T0)
    t, heard = T0 + MIN, T0
    for heard_s, silent_s in pattern:
        for _ in range(heard_s):
            t += S
            heard = t
            changes += e.tick(t, heard)
        for _ in range(silent_s):
            t += S
            changes += e.tick(t, heard)
    assert len(opened(changes)) == 1 and closed(changes) == []


def test_changes_are_plain_values():
    c = AlertChange(ChangeKind.OPENED, Alert(AlertType.OFFLINE_CHARGER, None, None, 1, OfflineDetails(5)))
    assert c == AlertChange(ChangeKind.OPENED, Alert(AlertType.OFFLINE_CHARGER, None, None, 1, OfflineDetails(5)))
    with pytest.raises(AttributeError):
        c.kind = ChangeKind.CLOSED  # frozen
