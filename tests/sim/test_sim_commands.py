"""SimulatedMcu's newer commands (unit level, fake clock): unlock, power, faults, authorization
list and cache, clock-set, reboot and the shared ring; and the MCU/TRUE clock split."""

from __future__ import annotations

import math
import threading

import pytest

from josev_bridge.core.alert_inputs import FaultRecord
from josev_bridge.core.conditions import LevelRecord, Signal, SignalRecord
from josev_bridge.core.timestamps import format_us
from josev_bridge.sim.catalogue import SPECS
from josev_bridge.sim.control_api import SimController
from josev_bridge.sim.mcu import DEFAULT_POWER_W, FAULT_CODES, McuClock, SimulatedMcu

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
S = Signal
START, STOP = "TxEventStart", "TxEventStop"


class TickingClock:
    """Each reading is 1.007 ms after the previous one (one reading per record)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        self.now += 1_007
        return self.now


class ManualClock:
    """Stands still until the test moves it."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def mcu() -> SimulatedMcu:
    return SimulatedMcu(evse_count=2, clock=TickingClock(), boot_id=42)


def sigs(result) -> list[tuple]:
    """Signals as (signal, state); FAULT as ("FAULT", code, active); EV_STATUS as ("EV_STATUS", power_w)."""
    return [(r.signal, r.state) if isinstance(r, SignalRecord) else ("FAULT", r.error_code, r.active)
            if isinstance(r, FaultRecord) else ("EV_STATUS", r.power_w) for r in result.records]


def edges(result) -> list[tuple[str, str]]:
    return [(e["trigger_reason"], e["event_type"]) for e in result.edges]


# -- unlock-connector ---------------------------------------------------------------------------------
def test_unlock_is_refused_during_an_authorized_session(mcu):
    mcu.start_session()
    result = mcu.unlock_connector()
    assert result.records == [] and result.edges == []
    assert result.info == {"unlock_status": "OngoingAuthorizedTransaction"}
    assert "stop-session" in result.note
    assert mcu.evses[1].connected and mcu.evses[1].energy_flowing


def test_unlock_after_stop_session_releases_the_cable(mcu):
    mcu.start_session()
    mcu.data_signed()
    mcu.stop_session()
    result = mcu.unlock_connector()
    assert result.info["unlock_status"] == "Unlocked" and result.note is None
    assert sigs(result) == [(S.EV_CONNECTED, False), (S.DATA_SIGNED, False)]
    assert edges(result) == [("EVConnected", STOP)]


def test_unlock_without_a_cable_changes_nothing(mcu):
    mcu.authorize_id_tag("T")  # authorized first, no cable yet: nothing to unlock, authorization kept
    result = mcu.unlock_connector()
    assert result.records == [] and result.info["unlock_status"] == "Unlocked"
    assert mcu.evses[1].authorized


# -- power-update ---------------------------------------------------------------------------------------
def test_power_zero_while_charging_stops_energy_keeps_the_relay(mcu):
    mcu.start_session(evse_id=2)
    assert mcu.evses[2].power_w == DEFAULT_POWER_W
    result = mcu.power_update(0, evse_id=2)
    assert sigs(result) == [(S.ENERGY_FLOWING, False)]
    assert edges(result) == [("EnergyTransfer", STOP)]
    assert mcu.evses[2].relay_closed and result.info["power_w"] == 0


def test_power_above_zero_with_the_power_path_closed_starts_energy(mcu):
    mcu.plug_connector()
    mcu.authorize_id_tag("T")
    result = mcu.power_update(7400.5)
    assert sigs(result) == [(S.RELAY_CLOSED, True), (S.ENERGY_FLOWING, True)]
    assert edges(result) == [("EnergyTransfer", START)]
    assert result.info["power_w"] == 7400.5
    again = mcu.power_update(3000)  # already flowing: a new power, no records
    assert again.records == [] and again.info["power_w"] == 3000
    assert mcu.status()["evses"][0]["power_w"] == 3000


def test_power_without_the_power_path_is_only_remembered(mcu):
    mcu.plug_connector()
    result = mcu.power_update(5000)
    assert result.records == [] and "power path is not closed" in result.note
    assert result.info["power_w"] == 0 and mcu.evses[1].ev_power_w == 5000
    mcu.authorize_id_tag("T")
    assert sigs(mcu.ev_requests_energy()) == [(S.RELAY_CLOSED, True), (S.ENERGY_FLOWING, True)]
    assert mcu.evses[1].power_w == 5000  # the remembered demand, not the default


def test_ev_stops_and_requests_energy_keep_power_consistent(mcu):
    mcu.start_session()
    mcu.power_update(9000)
    mcu.ev_stops_energy()
    assert mcu.evses[1].power_w == 0 and mcu.evses[1].ev_power_w == 0
    mcu.ev_requests_energy()
    assert mcu.evses[1].power_w == DEFAULT_POWER_W
    mcu.power_update(0)
    assert mcu.power_update(0).records == []  # idempotent


@pytest.mark.parametrize("power", [-1, math.nan, math.inf, True, "5", 2e6])
def test_power_update_rejects_bad_values(mcu, power):
    with pytest.raises(ValueError):
        mcu.power_update(power)


# -- faults -----------------------------------------------------------------------------------------------
def test_fault_while_charging_stops_energy_and_opens_the_relay(mcu):
    mcu.start_session()
    result = mcu.inject_fault("GroundFailure", vendor_error_code="GF-1", info="31 mA")
    assert sigs(result) == [("FAULT", "GroundFailure", True), (S.ENERGY_FLOWING, False), (S.RELAY_CLOSED, False)]
    assert edges(result) == [("EnergyTransfer", STOP)]  # the power path (connected AND authorized) stays
    assert result.info["faults"] == [{"error_code": "GroundFailure", "vendor_error_code": "GF-1", "info": "31 mA"}]
    evse = mcu.status()["evses"][0]
    assert evse["faulted"] and evse["connected"] and evse["authorized"] and evse["power_w"] == 0


def test_no_energy_while_faulted_and_none_resumed_by_clearing(mcu):
    mcu.plug_connector()
    mcu.authorize_id_tag("T")
    assert sigs(mcu.inject_fault("HighTemperature")) == [("FAULT", "HighTemperature", True)]  # nothing to stop
    mcu.inject_fault("OverVoltage")
    refused = mcu.ev_requests_energy()
    assert refused.records == [] and "faulted (HighTemperature, OverVoltage)" in refused.note
    assert mcu.power_update(1000).records == []
    cleared = mcu.clear_fault("HighTemperature")
    assert cleared.info["cleared"] == ["HighTemperature"] and sigs(cleared) == [("FAULT", "HighTemperature", False)]
    assert [f["error_code"] for f in cleared.info["faults"]] == ["OverVoltage"]
    assert mcu.clear_fault().info == {"cleared": ["OverVoltage"], "faults": []}
    assert not mcu.evses[1].energy_flowing  # clearing does not restart the EV
    assert sigs(mcu.ev_requests_energy()) == [(S.RELAY_CLOSED, True), (S.ENERGY_FLOWING, True)]


def test_clear_fault_that_is_not_active_has_a_note(mcu):
    result = mcu.clear_fault("ReaderFailure", evse_id=2)
    assert result.info["cleared"] == [] and "not active on EVSE 2" in result.note


def test_faults_are_per_evse_and_reinjecting_replaces(mcu):
    mcu.inject_fault("WeakSignal", evse_id=2, info="a")
    mcu.inject_fault("WeakSignal", evse_id=2, info="b")
    assert mcu.evses[1].faults == {}
    assert [(f.error_code, f.info) for f in mcu.evses[2].faults.values()] == [("WeakSignal", "b")]


@pytest.mark.parametrize("kwargs", [{"error_code": "NoError"}, {"error_code": "groundfailure"},
                                    {"error_code": "GroundFailure", "vendor_error_code": "x" * 51},
                                    {"error_code": "GroundFailure", "info": "x" * 501},
                                    {"error_code": "GroundFailure", "evse_id": 3}])
def test_inject_fault_rejects_bad_values(mcu, kwargs):
    with pytest.raises(ValueError):
        mcu.inject_fault(**kwargs)


def test_fault_codes_are_the_ocpp_ones():
    assert {"ConnectorLockFailure", "EVCommunicationError", "GroundFailure", "HighTemperature", "InternalError",
            "LocalListConflict", "OtherError", "OverCurrentFailure", "OverVoltage", "PowerMeterFailure",
            "PowerSwitchFailure", "ReaderFailure", "UnderVoltage", "WeakSignal"} <= set(FAULT_CODES)
    assert "NoError" not in FAULT_CODES


# -- authorization list and cache ---------------------------------------------------------------------------
def test_local_list_rejects_unknown_tags_with_a_note(mcu):
    assert mcu.send_local_authorization_list(["CARD-1", "CARD-2", "CARD-1"]).info == {"list_size": 2}
    rejected = mcu.authorize_id_tag("STRANGER")
    assert rejected.records == [] and rejected.info == {"id_tag_status": "Invalid"}
    assert "rejected" in rejected.note and not mcu.evses[1].authorized
    accepted = mcu.authorize_id_tag("CARD-2")
    assert accepted.info == {"id_tag_status": "Accepted"} and sigs(accepted) == [(S.AUTHORIZED, True)]


def test_start_session_with_a_rejected_tag_stops_after_the_plug(mcu):
    mcu.send_local_authorization_list(["CARD-1"])
    result = mcu.start_session(id_tag="STRANGER")
    assert sigs(result) == [(S.EV_CONNECTED, True)]
    assert result.info["id_tag_status"] == "Invalid" and "rejected" in result.note


def test_clearing_or_emptying_the_list_accepts_every_tag_again(mcu):
    mcu.send_local_authorization_list(["A"])
    assert mcu.clear_local_authorization_list().info == {"cleared": 1, "list_size": 0}
    assert mcu.authorize_id_tag("ANY").info["id_tag_status"] == "Accepted"
    mcu.send_local_authorization_list(["A"])
    assert mcu.send_local_authorization_list([]).info == {"list_size": 0}
    assert mcu.local_list is None


def test_authorization_cache_collects_accepted_tags_until_reset(mcu):
    mcu.authorize_id_tag("A", evse_id=1)
    mcu.start_session(evse_id=2, id_tag="B")
    assert mcu.status()["authorization_cache"] == ["A", "B"]
    assert mcu.reset_authorization_cache().info == {"cleared": 2}
    assert mcu.status()["authorization_cache"] == []
    assert mcu.evses[1].authorized  # the cache is bookkeeping: sessions are untouched


@pytest.mark.parametrize("tags", ["A", [""], ["x" * 37], [5], ["A"] * 10_001])
def test_local_list_rejects_bad_lists(mcu, tags):
    with pytest.raises(ValueError):
        mcu.send_local_authorization_list(tags)


# -- addressing: every per-EVSE command honours evse_id / connector_id ----------------------------------------
ADDRESSED = sorted(name for name, spec in SPECS.items() if spec.kind == "mcu" and spec.addressed)


@pytest.mark.parametrize("name", ADDRESSED)
def test_every_addressed_command_checks_its_address(mcu, name):
    method = getattr(mcu, name.replace("-", "_"))
    extra = {k: v for k, v in SPECS[name].example.items() if k not in ("evse_id", "connector_id")}
    for bad in ({"evse_id": 3}, {"evse_id": 0}, {"evse_id": True}, {"connector_id": 0}, {"connector_id": 256}):
        with pytest.raises(ValueError):
            method(**extra, **bad)
    method(**extra, evse_id=2, connector_id=4)
    assert mcu.evses[2].connector_id == 4 and mcu.evses[1].connector_id == 1


# -- clocks ------------------------------------------------------------------------------------------------
def test_mcu_clock_is_the_true_clock_without_offset_and_drift():
    true = ManualClock()
    clock = McuClock(true)
    for step in (0, 1, 999_999, 3_600_000_000):
        true.now += step
        assert clock.now() == true.now


def test_offset_and_drift_follow_the_formula():
    true = ManualClock()
    clock = McuClock(true, offset_s=-2.5, drift_ppm=100)
    start = true.now
    assert clock.now() == start - 2_500_000  # anchored here: true_at_start
    for elapsed_s in (1, 10, 1000, 86_400):
        true.now = start + elapsed_s * 1_000_000
        expected = start - 2_500_000 + round(elapsed_s * 1_000_000 * (1 + 100 / 1e6))
        assert clock.now() == expected
    assert clock.at(start + 1_000_000_000) - (start + 1_000_000_000) == -2_500_000 + 100_000  # +100 ms / 1000 s


def test_drift_change_is_continuous_and_applies_from_now_on():
    true = ManualClock()
    clock = McuClock(true, offset_s=1, drift_ppm=50)
    clock.now()
    true.now += 100_000_000  # 100 s at +50 ppm: +5 ms
    before = clock.now()
    assert before == true.now + 1_000_000 + 5_000
    assert clock.set(drift_ppm=-20) == 0
    assert clock.now() == before  # no jump
    true.now += 1_000_000_000  # 1000 s at -20 ppm: -20 ms
    assert clock.now() == before + 1_000_000_000 - 20_000
    assert clock.status()["drift_ppm"] == -20


def test_offset_set_steps_the_clock_to_true_plus_offset_now():
    true = ManualClock()
    clock = McuClock(true, drift_ppm=1000)
    clock.now()
    true.now += 10_000_000  # 10 s at 1000 ppm: the MCU is 10 ms ahead
    step = clock.set(offset_s=-3)
    assert step == -3_000_000 - 10_000
    assert clock.now() == true.now - 3_000_000
    true.now += 1_000_000  # the drift goes on from the new anchor
    assert clock.now() == true.now - 3_000_000 + 1_000
    assert clock.status()["mcu_minus_true_us"] == -3_000_000 + 1_000


@pytest.mark.parametrize("kwargs", [{"offset_s": math.nan}, {"offset_s": 1e11}, {"drift_ppm": math.inf},
                                    {"drift_ppm": 200_000}, {"drift_ppm": True}])
def test_clock_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        McuClock(ManualClock(), **kwargs)
    clock = McuClock(ManualClock())
    with pytest.raises(ValueError):
        clock.set(**kwargs)
    assert clock.status()["mcu_minus_true_us"] == 0  # nothing half-applied


def test_records_carry_the_mcu_clock_and_edges_the_true_time():
    true = TickingClock()
    mcu = SimulatedMcu(clock=true, boot_id=1, clock_offset_s=-3600)
    result = mcu.start_session()
    assert [r.time_us for r in result.records] == [t - 3_600_000_000 for t in result.true_times]
    # EVConnected, Authorized + PowerPathClosed (same record), EnergyTransfer (4th record; the relay has no edge)
    assert [e["timestamp"] for e in result.edges] == [format_us(result.true_times[i]) for i in (0, 1, 1, 3)]
    assert [s.true_us for s in mcu.unacked()] == result.true_times


def test_api_answer_reports_both_clocks():
    true = ManualClock()
    mcu = SimulatedMcu(clock=true, boot_id=1, clock_offset_s=0.5)
    controller = SimController(mcu, threading.RLock(), None, "c", "t")
    answer = controller.command("plug-connector", {"target": {"charger_id": "c"}, "event": {}})
    record, = answer["records"]
    assert record["true_time_us"] == T0 and record["true_timestamp"] == format_us(T0)
    assert record["time_us"] == T0 + 500_000 and record["timestamp"] == format_us(T0 + 500_000)
    assert answer["edges"][0]["timestamp"] == format_us(T0)
    set_answer = controller.command("clock-set", {"target": {"charger_id": "c"}, "event": {"offset_s": 0}})
    assert set_answer["step_us"] == -500_000 and set_answer["clock"]["mcu_minus_true_us"] == 0


def test_clock_set_through_the_mcu(mcu):
    result = mcu.clock_set(drift_ppm=10)
    assert result.records == [] and result.info["step_us"] == 0 and result.info["clock"]["drift_ppm"] == 10


# -- reboot and the ring -------------------------------------------------------------------------------------
def test_reboot_without_keeping_the_ring(mcu):
    mcu.start_session()
    mcu.inject_fault("OtherError")
    mcu.send_local_authorization_list(["A"])
    info = mcu.reboot(keep_ring=False)
    assert info["previous_boot_id"] == 42 and info["boot_id"] not in (0, 42)
    assert info == {**info, "kept": 0, "lost": 7}  # 4 of the session, the FAULT, energy and relay off
    assert mcu.previous_boots() == []
    reports = [s.record for s in info["sent"]]  # the new boot's first records: every level of every EVSE
    assert [s.seq for s in mcu.unacked()] == list(range(1, 13)) and mcu.next_seq == 13
    assert all(isinstance(r, LevelRecord) and r.age_us is None for r in reports)  # cold: no ages
    assert {(r.evse_id, r.signal) for r in reports if r.state} == {(1, S.EV_CONNECTED)}  # the cable stays
    status = mcu.status()
    assert status["evses"][0]["connected"] and not status["evses"][1]["connected"]
    assert all(not e[k] for e in status["evses"] for k in ("authorized", "relay_closed", "energy_flowing",
                                                             "faulted"))
    assert status["local_authorization_list"] == ["A"]  # flash survives a reboot
    assert mcu.parking_bay_occupied().seqs == [13]


def test_a_cold_reboot_drops_what_the_mcu_held_in_ram_at_its_true_time():
    clock = ManualClock()
    mcu = SimulatedMcu(evse_count=1, clock=clock, boot_id=42)
    mcu.start_session()
    mcu.parking_bay_occupied()
    clock.now += 60_000_000
    info = mcu.reboot()
    at = format_us(clock.now)
    assert {(e["trigger_reason"], e["event_type"]) for e in info["edges"]} == \
        {("Authorized", STOP), ("PowerPathClosed", STOP), ("EnergyTransfer", STOP)}
    assert all(e["timestamp"] == at for e in info["edges"]) and info["warm"] is False
    levels = {r.signal: r.state for r in (s.record for s in info["sent"])}
    assert levels == {S.EV_CONNECTED: True, S.AUTHORIZED: False, S.BAY_OCCUPIED: True, S.RELAY_CLOSED: False,
                      S.ENERGY_FLOWING: False, S.DATA_SIGNED: False}


def test_a_warm_reboot_keeps_every_level_and_reports_its_age():
    clock = ManualClock()
    mcu = SimulatedMcu(evse_count=1, clock=clock, boot_id=42, clock_drift_ppm=100)
    mcu.plug_connector()
    clock.now += 5_000_000
    mcu.authorize_id_tag("T")
    clock.now += 7_200_000_000
    info = mcu.reboot(warm=True)
    assert info["edges"] == [] and info["warm"] is True
    reports = {r.signal: r for r in (s.record for s in info["sent"])}
    # ages on the MCU clock (100 ppm fast), from each signal's own edge; unknown for one never seen change
    assert reports[S.EV_CONNECTED].age_us == round(7_205_000_000 * (1 + 100e-6))
    assert reports[S.AUTHORIZED].age_us == round(7_200_000_000 * (1 + 100e-6))
    assert reports[S.BAY_OCCUPIED].state is False and reports[S.BAY_OCCUPIED].age_us is None
    assert mcu.status()["evses"][0]["power_path_closed"]


def test_a_version_1_mcu_re_reports_its_ones_as_signals():
    mcu = SimulatedMcu(evse_count=2, clock=TickingClock(), boot_id=42, protocol_version=1)
    mcu.plug_connector()
    mcu.parking_bay_occupied(evse_id=2)
    info = mcu.reboot(warm=True)
    assert [(type(r), r.evse_id, r.signal, r.state) for r in (s.record for s in info["sent"])] == \
        [(SignalRecord, 1, S.EV_CONNECTED, True), (SignalRecord, 2, S.BAY_OCCUPIED, True)]
    assert mcu.status()["protocol_version"] == 1
    with pytest.raises(ValueError):
        SimulatedMcu(protocol_version=3)


def test_reboot_keeping_the_ring_holds_old_boots_until_acked(mcu):
    mcu.start_session()  # boot 42: seqs 1..4
    mcu.ack(42, 1)
    first = mcu.reboot(keep_ring=True, boot_id=43)  # boot 43: seqs 1..12, the level reports
    assert first == {**first, "previous_boot_id": 42, "boot_id": 43, "kept": 3, "lost": 0}
    mcu.reboot(keep_ring=True, boot_id=44)
    rings = mcu.previous_boots()
    assert [(r.boot_id, r.oldest_seq, r.next_seq, [s.seq for s in r.records]) for r in rings] == \
        [(42, 2, 5, [2, 3, 4]), (43, 1, 13, list(range(1, 13)))]
    assert mcu.ack(42, 3) and [s.seq for s in mcu.previous_boots()[0].records] == [4]
    assert mcu.ack(43, 12) and [r.boot_id for r in mcu.previous_boots()] == [42]
    assert not mcu.ack(41, 1)
    assert mcu.status()["previous_boots"] == [{"boot_id": 42, "oldest_seq": 4, "next_seq": 5, "unacked": 1}]


def test_one_ring_for_all_boots_oldest_lost_first():
    mcu = SimulatedMcu(evse_count=1, clock=TickingClock(), boot_id=1, ring_size=8)
    mcu.start_session()  # 4 records of boot 1
    mcu.reboot(keep_ring=True, boot_id=2)  # 6 level reports: 2 of boot 1's are pushed out
    assert [[s.seq for s in r.records] for r in mcu.previous_boots()] == [[3, 4]]
    assert [s.seq for s in mcu.unacked()] == [1, 2, 3, 4, 5, 6] and mcu.overflowed == 2
    mcu.parking_bay_occupied()
    mcu.parking_bay_vacated()  # the last of boot 1 goes, and its ring with it
    assert mcu.previous_boots() == [] and mcu.overflowed == 4


def test_oldest_and_next_seq_for_hello(mcu):
    assert (mcu.oldest_seq, mcu.next_seq) == (1, 1)
    mcu.start_session()
    mcu.ack(42, 2)
    assert (mcu.oldest_seq, mcu.next_seq) == (3, 5)
    mcu.ack(42, 4)
    assert (mcu.oldest_seq, mcu.next_seq) == (5, 5)
