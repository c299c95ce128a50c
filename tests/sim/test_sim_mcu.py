"""SimulatedMcu: every command's records and edges, with a fake clock that ticks 1 ms per reading."""

from __future__ import annotations

import pytest

from josev_bridge.core.conditions import Signal
from josev_bridge.core.timestamps import format_us
from josev_bridge.sim.catalogue import SPECS
from josev_bridge.sim.mcu import COMMANDS, SimulatedMcu, run_command

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
S = Signal


class FakeClock:
    """Each reading is 1 ms (and a few µs, to exercise truncation) after the previous one."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        self.now += 1_000 + 7
        return self.now


@pytest.fixture
def mcu() -> SimulatedMcu:
    return SimulatedMcu(evse_count=2, clock=FakeClock(), boot_id=42)


def sigs(result) -> list[tuple[Signal, bool]]:
    return [(r.signal, r.state) for r in result.records]


def edges(result) -> list[tuple[str, str]]:
    return [(e["trigger_reason"], e["event_type"]) for e in result.edges]


START, STOP = "TxEventStart", "TxEventStop"


def test_plug_connects_and_is_idempotent(mcu):
    first = mcu.plug_connector()
    assert sigs(first) == [(S.EV_CONNECTED, True)]
    assert edges(first) == [("EVConnected", START)]
    again = mcu.plug_connector()
    assert again.records == [] and again.edges == []


def test_plug_after_authorize_closes_the_power_path(mcu):
    mcu.authorize_id_tag("TAG1")
    result = mcu.plug_connector()
    assert edges(result) == [("EVConnected", START), ("PowerPathClosed", START)]
    assert result.edges[0]["timestamp"] == result.edges[1]["timestamp"] == format_us(result.records[0].time_us)


def test_authorize_then_connected_closes_power_path(mcu):
    mcu.plug_connector()
    result = mcu.authorize_id_tag("TAG1")
    assert sigs(result) == [(S.AUTHORIZED, True)]
    assert edges(result) == [("Authorized", START), ("PowerPathClosed", START)]
    assert mcu.evses[1].id_tag == "TAG1"


@pytest.mark.parametrize("tag", ["", "x" * 37, 5, None])
def test_authorize_rejects_bad_id_tags(mcu, tag):
    with pytest.raises(ValueError):
        mcu.authorize_id_tag(tag)


def test_start_session_is_plug_authorize_and_energy(mcu):
    result = mcu.start_session(evse_id=2, id_tag="ABC")
    assert sigs(result) == [(S.EV_CONNECTED, True), (S.AUTHORIZED, True), (S.RELAY_CLOSED, True),
                            (S.ENERGY_FLOWING, True)]
    assert edges(result) == [("EVConnected", START), ("Authorized", START), ("PowerPathClosed", START),
                             ("EnergyTransfer", START)]
    assert {e["evse_id"] for e in result.edges} == {2}
    assert result.seqs == [1, 2, 3, 4]
    times = [r.time_us for r in result.records]
    assert times == sorted(times) and len(set(times)) == 4  # one clock reading per record
    assert mcu.evses[1].connected is False  # other EVSE untouched


def test_unplug_during_charging_ends_everything_in_order(mcu):
    mcu.start_session()
    mcu.data_signed()
    result = mcu.unplug_connector()
    assert sigs(result) == [(S.ENERGY_FLOWING, False), (S.RELAY_CLOSED, False), (S.EV_CONNECTED, False),
                            (S.AUTHORIZED, False), (S.DATA_SIGNED, False)]
    assert edges(result) == [("EnergyTransfer", STOP), ("EVConnected", STOP), ("PowerPathClosed", STOP),
                             ("Authorized", STOP)]  # the DATA_SIGNED fall has no edge
    assert mcu.evses[1].id_tag is None


def test_unplug_when_only_connected(mcu):
    mcu.plug_connector()
    result = mcu.unplug_connector()
    assert sigs(result) == [(S.EV_CONNECTED, False)]
    assert edges(result) == [("EVConnected", STOP)]
    assert mcu.unplug_connector().records == []


def test_stop_session_deauthorizes_but_keeps_the_ev_connected(mcu):
    mcu.start_session()
    result = mcu.stop_session()
    assert sigs(result) == [(S.ENERGY_FLOWING, False), (S.RELAY_CLOSED, False), (S.AUTHORIZED, False)]
    assert edges(result) == [("EnergyTransfer", STOP), ("Authorized", STOP), ("PowerPathClosed", STOP)]
    assert mcu.evses[1].connected is True
    assert mcu.stop_session().records == []


def test_stop_session_when_not_charging(mcu):
    mcu.plug_connector()
    mcu.authorize_id_tag("T")
    result = mcu.stop_session()
    assert sigs(result) == [(S.AUTHORIZED, False)]
    assert edges(result) == [("Authorized", STOP), ("PowerPathClosed", STOP)]


def test_energy_needs_a_closed_power_path(mcu):
    mcu.plug_connector()
    result = mcu.ev_requests_energy()
    assert result.records == [] and result.edges == []
    assert "power path is not closed" in result.note


def test_energy_suspend_and_resume_keeps_the_relay(mcu):
    mcu.start_session()
    stopped = mcu.ev_stops_energy()
    assert sigs(stopped) == [(S.ENERGY_FLOWING, False)]
    assert edges(stopped) == [("EnergyTransfer", STOP)]
    assert mcu.evses[1].relay_closed is True
    resumed = mcu.ev_requests_energy()
    assert sigs(resumed) == [(S.ENERGY_FLOWING, True)]
    assert edges(resumed) == [("EnergyTransfer", START)]
    assert mcu.ev_requests_energy().records == []  # already flowing
    assert mcu.ev_stops_energy().records and mcu.ev_stops_energy().records == []


def test_parking_bay(mcu):
    occupied = mcu.parking_bay_occupied(evse_id=2)
    assert sigs(occupied) == [(S.BAY_OCCUPIED, True)]
    assert edges(occupied) == [("ParkingBayOccupancy", START)]
    assert mcu.parking_bay_occupied(evse_id=2).records == []
    vacated = mcu.parking_bay_vacated(evse_id=2)
    assert sigs(vacated) == [(S.BAY_OCCUPIED, False)]
    assert edges(vacated) == [("ParkingBayOccupancy", STOP)]


def test_data_signed_is_start_only(mcu):
    result = mcu.data_signed()
    assert sigs(result) == [(S.DATA_SIGNED, True)]
    assert edges(result) == [("DataSigned", START)]
    assert mcu.data_signed().records == []


def test_edge_dicts_have_the_josev_shape(mcu):
    result = mcu.plug_connector(evse_id=2, connector_id=3)
    record = result.records[0]
    assert (record.evse_id, record.connector_id) == (2, 3)
    assert result.edges == [{"evse_id": 2, "trigger_reason": "EVConnected", "event_type": START,
                             "timestamp": format_us(record.time_us)}]
    assert result.edges[0]["timestamp"].endswith(".001Z")  # T0 + 1.007 ms, truncated


def test_connector_is_remembered_from_the_plug(mcu):
    mcu.plug_connector(connector_id=2)
    assert mcu.unplug_connector().records[0].connector_id == 2


@pytest.mark.parametrize("kwargs", [{"evse_id": 0}, {"evse_id": 3}, {"evse_id": True}, {"connector_id": 0},
                                    {"connector_id": 256}])
def test_bad_addresses_are_rejected(mcu, kwargs):
    with pytest.raises(ValueError):
        mcu.plug_connector(**kwargs)


def test_every_command_runs_by_name(mcu):
    for name in COMMANDS:
        run_command(mcu, name, dict(SPECS[name].example))  # the documented example of each command
    assert mcu.next_seq > 1


def test_seq_numbers_and_ack_ring(mcu):
    mcu.start_session()  # seqs 1..4
    mcu.parking_bay_occupied()  # 5
    assert [s.seq for s in mcu.unacked()] == [1, 2, 3, 4, 5]
    assert mcu.ack(boot_id=7, seq=5) is False  # another boot's ACK changes nothing
    assert len(mcu.unacked()) == 5
    assert mcu.ack(boot_id=42, seq=3) is True
    assert [s.seq for s in mcu.unacked()] == [4, 5]
    assert mcu.last_acked_seq == 3
    mcu.ack(42, 5)
    assert mcu.unacked() == [] and mcu.status()["unacked"] == 0


def test_ring_is_bounded():
    mcu = SimulatedMcu(clock=FakeClock(), ring_size=3)
    mcu.start_session()  # 4 records into a ring of 3
    assert [s.seq for s in mcu.unacked()] == [2, 3, 4]
    assert mcu.overflowed == 1


def test_boot_ids_are_random_u32():
    ids = {SimulatedMcu().boot_id for _ in range(5)}
    assert len(ids) > 1 and all(0 < i < 2**32 for i in ids)


def test_status_reports_state(mcu):
    mcu.start_session(evse_id=2)
    status = mcu.status()
    assert status["boot_id"] == 42 and status["unacked"] == 4
    evse2 = status["evses"][1]
    assert evse2["evse_id"] == 2 and evse2["energy_flowing"] and evse2["power_path_closed"]
    assert evse2["id_tag"] == "SIM-TAG"
