"""The sim's FAULT and EV_STATUS records: what inject-fault, clear-fault, ev-status and the power
commands put in the ring (unit level, fake clock), and what reaches a host over the real pty."""

from __future__ import annotations

import math

import pytest

from josev_bridge.core.alert_inputs import DepartureSource, EvStatusRecord, FaultRecord
from josev_bridge.core.conditions import SignalRecord
from josev_bridge.core.timestamps import format_us, parse_us
from josev_bridge.protocol import records
from josev_bridge.protocol.framing import FrameDecoder
from josev_bridge.protocol.records import Ack, FrameType
from josev_bridge.sim.mcu import SimulatedMcu

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
DEPARTURE = "2026-01-01T02:00:00Z"


class TickingClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        self.now += 1_000
        return self.now


@pytest.fixture
def mcu() -> SimulatedMcu:
    return SimulatedMcu(evse_count=2, clock=TickingClock(), boot_id=42, clock_offset_s=-10)


def kinds(result) -> list[tuple]:
    out = []
    for r in result.records:
        if isinstance(r, SignalRecord):
            out.append((r.signal.name, r.state))
        elif isinstance(r, FaultRecord):
            out.append(("FAULT", r.error_code, r.active))
        else:
            out.append(("EV_STATUS", r.power_w))
    return out


def wire_round_trip(result) -> list:
    """Every record of a result as the host decodes it, with its seq."""
    frames = FrameDecoder().feed(b"".join(records.encode(s.record, s.seq) for s in result.sent()))
    return [(f.seq, records.decode(f)) for f in frames]


# -- faults -------------------------------------------------------------------------------------------------
def test_inject_fault_sends_the_fault_first_on_the_mcu_clock(mcu):
    mcu.start_session()
    result = mcu.inject_fault("OverCurrentFailure", vendor_error_code="OC-3", info="34 A on L2", evse_id=1)
    assert kinds(result) == [("FAULT", "OverCurrentFailure", True), ("ENERGY_FLOWING", False),
                             ("RELAY_CLOSED", False)]
    fault = result.records[0]
    mcu_us = result.true_times[0] - 10_000_000  # the MCU clock is 10 s behind
    assert fault == FaultRecord(1, 1, True, "OverCurrentFailure", "OC-3", "34 A on L2", mcu_us)
    assert result.seqs == [5, 6, 7] and wire_round_trip(result) == list(zip(result.seqs, result.records))


def test_clear_fault_sends_one_cleared_record_per_code_with_its_vendor_code(mcu):
    mcu.inject_fault("HighTemperature", vendor_error_code="T-9", info="82 C", evse_id=2, connector_id=3)
    mcu.inject_fault("OverVoltage", evse_id=2)
    result = mcu.clear_fault(evse_id=2)
    assert result.records == [FaultRecord(2, 3, False, "HighTemperature", "T-9", None, result.records[0].time_us),
                              FaultRecord(2, 3, False, "OverVoltage", None, None, result.records[1].time_us)]
    assert result.info["cleared"] == ["HighTemperature", "OverVoltage"] and result.seqs == [3, 4]
    assert mcu.clear_fault("OverVoltage", evse_id=2).records == []  # not active any more: a note, no record


def test_long_info_is_cut_to_fit_the_frame_and_empty_texts_are_none(mcu):
    result = mcu.inject_fault("OtherError", vendor_error_code="", info="é" * 500)
    fault = result.records[0]
    assert fault.vendor_error_code is None and fault.info == "é" * 238  # 476 of the 477 bytes left by "OtherError"
    assert mcu.status()["evses"][0]["faults"][0]["info"] == "é" * 500  # the sim's state keeps it whole
    assert wire_round_trip(result)[0][1] == fault


@pytest.mark.parametrize("kwargs", [{"vendor_error_code": "é" * 26}, {"info": "\ud800"},
                                    {"vendor_error_code": "\udfff"}, {"info": 5}])
def test_fault_texts_the_wire_cannot_carry_are_refused(mcu, kwargs):
    with pytest.raises(ValueError):
        mcu.inject_fault("OtherError", **kwargs)
    assert mcu.next_seq == 1 and mcu.evses[1].faults == {}


# -- EV status ------------------------------------------------------------------------------------------------
def test_ev_status_needs_a_connected_ev(mcu):
    result = mcu.ev_status(soc_percent=50)
    assert result.records == [] and "no EV connected on EVSE 1" in result.note and mcu.evses[1].ev is None


def test_ev_status_reports_the_battery_the_meter_and_the_departure_on_the_mcu_clock(mcu):
    mcu.start_session()
    result = mcu.ev_status(soc_percent=45.34, battery_capacity_wh=60_000, departure_time=DEPARTURE,
                           departure_source="operator")
    (record,) = result.records
    assert record == EvStatusRecord(1, 1, result.true_times[0] - 10_000_000, 45.3, 11_000, 60_000,
                                    parse_us(DEPARTURE) - 10_000_000, DepartureSource.OPERATOR)
    assert result.info["ev"] == {"soc_percent": 45.3, "battery_capacity_wh": 60_000,
                                 "departure_time": format_us(parse_us(DEPARTURE)), "departure_source": "operator",
                                 "power_w": 11_000}
    assert wire_round_trip(result) == [(5, record)]
    again = mcu.ev_status(soc_percent=45.3, battery_capacity_wh=60_000, departure_time=DEPARTURE,
                          departure_source="operator")
    assert again.records == [] and "unchanged" in again.note


def test_each_call_replaces_the_whole_report(mcu):
    mcu.plug_connector()
    mcu.ev_status(soc_percent=20, battery_capacity_wh=40_000, departure_time=DEPARTURE)
    (record,) = mcu.ev_status(soc_percent=21).records
    assert (record.soc_percent, record.power_w, record.battery_capacity_wh, record.departure_time_us,
            record.departure_source) == (21.0, 0, None, None, DepartureSource.NONE)


def test_power_changes_send_one_ev_status_each_while_the_ev_reports(mcu):
    mcu.plug_connector()
    mcu.authorize_id_tag("T")
    mcu.ev_status(soc_percent=30)
    assert kinds(mcu.power_update(7400)) == [("RELAY_CLOSED", True), ("ENERGY_FLOWING", True), ("EV_STATUS", 7400)]
    assert kinds(mcu.power_update(3700.4)) == [("EV_STATUS", 3700)]
    assert kinds(mcu.power_update(3700.2)) == []  # the same watts on the wire: no change to report
    assert kinds(mcu.ev_stops_energy()) == [("ENERGY_FLOWING", False), ("EV_STATUS", 0)]
    assert kinds(mcu.ev_requests_energy()) == [("ENERGY_FLOWING", True), ("EV_STATUS", 11_000)]
    assert kinds(mcu.inject_fault("GroundFailure")) == [("FAULT", "GroundFailure", True), ("ENERGY_FLOWING", False),
                                                        ("RELAY_CLOSED", False), ("EV_STATUS", 0)]
    reported = [s.record for s in mcu.unacked() if isinstance(s.record, EvStatusRecord)]
    assert len(reported) == 6 and {r.soc_percent for r in reported} == {30}


def test_stop_session_reports_zero_power_and_unplug_forgets_the_ev(mcu):
    mcu.start_session()
    mcu.ev_status(soc_percent=80)
    assert kinds(mcu.stop_session()) == [("ENERGY_FLOWING", False), ("RELAY_CLOSED", False), ("AUTHORIZED", False),
                                         ("EV_STATUS", 0)]
    assert kinds(mcu.unplug_connector()) == [("EV_CONNECTED", False)]  # EV_CONNECTED 0 says the EV is gone
    assert mcu.evses[1].ev is None and mcu.status()["evses"][0]["ev"] is None
    mcu.start_session()
    assert "EV_STATUS" not in {k[0] for k in kinds(mcu.power_update(5000))}  # a new EV that reports nothing


def test_charging_without_ev_status_sends_only_signals(mcu):
    for result in (mcu.start_session(), mcu.power_update(7000), mcu.ev_stops_energy(), mcu.stop_session()):
        assert all(isinstance(r, SignalRecord) for r in result.records)


def test_reboot_forgets_the_ev_and_the_ring_keeps_alert_records_for_replay(mcu):
    mcu.plug_connector()
    mcu.ev_status(soc_percent=10)
    mcu.inject_fault("WeakSignal")
    assert [type(s.record).__name__ for s in mcu.unacked()] == ["SignalRecord", "EvStatusRecord", "FaultRecord"]
    mcu.ack(42, 1)
    assert [s.seq for s in mcu.unacked()] == [2, 3]
    mcu.reboot(keep_ring=True, boot_id=43)  # cold: the MCU forgot the EV's status (the cable stays)
    assert [[s.seq for s in r.records] for r in mcu.previous_boots()] == [[2, 3]]
    assert mcu.evses[1].ev is None and mcu.evses[1].connected


@pytest.mark.parametrize("kwargs", [
    {"soc_percent": 100.01}, {"soc_percent": -1}, {"soc_percent": math.nan}, {"soc_percent": True},
    {"battery_capacity_wh": 0}, {"battery_capacity_wh": 2**32}, {"battery_capacity_wh": 1.5},
    {"departure_time": "tomorrow"}, {"departure_time": "2026-01-01T02:00:00"}, {"departure_time": 5},
    {"departure_time": DEPARTURE, "departure_source": "car"}, {"departure_source": "ev"},
])
def test_ev_status_rejects_bad_values(mcu, kwargs):
    mcu.plug_connector()
    with pytest.raises(ValueError):
        mcu.ev_status(**kwargs)
    assert mcu.evses[1].ev is None and mcu.next_seq == 2


# -- over the real pty, through the control API ---------------------------------------------------------------
def test_alert_records_reach_the_host_in_seq_order_and_are_replayed(sim, host):
    host.hello()
    _, plugged = sim.command("plug-connector", {})
    status, ev = sim.command("ev-status", {"soc_percent": 62.5, "battery_capacity_wh": 77_000,
                                           "departure_time": DEPARTURE})
    assert status == 200 and ev["records"][0]["type"] == "EV_STATUS"
    status, fault = sim.command("inject-fault", {"error_code": "GroundFailure", "vendor_error_code": "GF-12",
                                                 "info": "31 mA"})
    assert status == 200 and [r["type"] for r in fault["records"]] == ["FAULT"]
    api = plugged["records"] + ev["records"] + fault["records"]
    wanted = {FrameType.SIGNAL, FrameType.FAULT, FrameType.EV_STATUS}
    line = [host.next_frame(lambda f: f.type in wanted) for _ in api]
    got = [(f.seq, records.decode(f)) for f in line]
    assert [seq for seq, _ in got] == [r["seq"] for r in api] == [1, 2, 3]
    ev_record, fault_record = got[1][1], got[2][1]
    assert (ev_record.soc_percent, ev_record.battery_capacity_wh, ev_record.power_w,
            ev_record.departure_time_us, ev_record.departure_source) == (62.5, 77_000, 0, parse_us(DEPARTURE),
                                                                         DepartureSource.EV)
    assert ev["records"][0]["departure_timestamp"] == format_us(parse_us(DEPARTURE))
    assert fault_record == FaultRecord(1, 1, True, "GroundFailure", "GF-12", "31 mA", fault["records"][0]["time_us"])
    assert sim.status()["evses"][0]["ev"]["soc_percent"] == 62.5

    host.send(Ack(sim.boot_id, 1))
    host.hello()  # the unacknowledged EV_STATUS and FAULT come again, same seqs, same bytes
    again = [host.next_frame(lambda f: f.type in wanted) for _ in range(2)]
    assert [(f.seq, records.decode(f)) for f in again] == got[1:]


def test_ev_status_validation_over_http(shared_sim):
    status, body = shared_sim.command("ev-status", {"departure_time": "2026-01-01 02:00"})
    assert status == 422 and body["detail"][0]["type"] == "datetime_parsing"
    assert body["detail"][0]["loc"] == ["body", "event", "departure_time"]
    status, body = shared_sim.command("ev-status", {"departure_source": "ev"})  # needs a departure_time
    assert status == 422 and "departure_source needs a departure_time" in body["detail"][0]["msg"]
    status, body = shared_sim.command("ev-status", {"departure_source": "EV", "departure_time": DEPARTURE})
    assert status == 422 and body["detail"][0]["type"] == "enum"
