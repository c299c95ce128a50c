import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from josev_bridge import schemas
from josev_bridge.core.alert_inputs import EvStatusRecord, FaultRecord
from josev_bridge.core.alert_view import (
    TYPE_KEYS,
    ChargerInfo,
    ChargingSessionInfo,
    OrganizationInfo,
    PortInfo,
    SiteInfo,
    VehicleInfo,
    render_alert,
)
from josev_bridge.core.alerts import (
    Alert,
    AlertEngine,
    AlertType,
    ChangeKind,
    LateDetails,
    OfflineDetails,
    SessionErrorDetails,
    SocDetails,
)
from josev_bridge.core.conditions import Condition, Edge
from josev_bridge.core.timestamps import parse_us

ROOT = Path(__file__).resolve().parents[2]
T0 = parse_us("2024-04-30T01:00:07.321999Z")
VALIDATOR = schemas.validator("alert")

CHARGER = ChargerInfo(ocpp_id="OCPP123", id=2, name="Main Charger", manufacturer="ABB", model="Terra 54",
                      network_service_provider="Flipturn", charger_type="DCFC", serial_number="SN123456",
                      number_of_ports=2, latitude=37.7749, longitude=-122.4194, external_id="EXT123")
PORTS = {1: PortInfo(evse_id=1, name="Port A", port_number=1, maximum_power_kw=50.0, id=3)}
SITE = SiteInfo(1, "Site 1", "LOC123")
ORG = OrganizationInfo(1, "My Organization")
VEHICLE = VehicleInfo(101, "Proterra", "ZX5", "My Car", "VIN123456789")

ALERTS = {
    "lowBattery": Alert(AlertType.LOW_BATTERY, 1, 1, T0, SocDetails(20.0, 15.0)),
    "chargingCompleted": Alert(AlertType.CHARGING_COMPLETED, 1, 1, T0, SocDetails(100.0, 97.5), end_us=T0 + 5000),
    "chargingSessionError": Alert(AlertType.CHARGING_SESSION_ERROR, 1, 1, T0, SessionErrorDetails(
        "Faulted", "GroundFailure", "E042", "ground fault", "Charging ended early")),
    "offlineCharger": Alert(AlertType.OFFLINE_CHARGER, None, None, T0, OfflineDetails(5.0)),
    "lateCharging": Alert(AlertType.LATE_CHARGING, 1, 1, T0, LateDetails(T0 + 3_600_000_000, T0 + 7_200_000_000,
                                                                         T0 + 1_800_000_000, None)),
}


def render(alert, **kw):
    return render_alert(alert, alert_id=kw.pop("alert_id", 123), muted=kw.pop("muted", False), **kw)


def test_the_seed_example_rendered_field_by_field():
    out = render(ALERTS["lowBattery"], charger=CHARGER, ports=PORTS, site=SITE, organization=ORG, vehicle=VEHICLE)
    seed_example = {
        "id": 123, "type": "lowBattery", "startTimestamp": "2024-04-30T01:00:07.321Z", "muted": False,
        "lowBattery": {"socThreshold": 20, "socPercent": 15},
        "chargingCompleted": None, "chargingSessionError": None, "offlineCharger": None, "lateCharging": None,
        "chargingSession": None,
        "site": {"id": 1, "name": "Site 1", "locationId": "LOC123"},
        "charger": {"id": 2, "name": "Main Charger", "manufacturer": "ABB", "model": "Terra 54",
                    "networkServiceProvider": "Flipturn", "chargerType": "DCFC", "serialNumber": "SN123456",
                    "numberOfPorts": 2, "latitude": 37.7749, "longitude": -122.4194, "externalId": "EXT123",
                    "ocppId": "OCPP123"},
        "port": {"id": 3, "name": "Port A", "portNumber": 1, "maximumPowerKw": 50},
        "vehicle": {"id": 101, "make": "Proterra", "model": "ZX5", "name": "My Car", "vin": "VIN123456789"},
        "organization": {"id": 1, "name": "My Organization"},
    }
    assert out == {**seed_example, "endTimestamp": None, "evseId": 1}
    assert list(out)[:len(seed_example)] == list(seed_example)  # the seed's key order
    assert json.dumps(out["lowBattery"]) == '{"socThreshold": 20, "socPercent": 15}'
    VALIDATOR.validate(out)


@pytest.mark.parametrize("kind", TYPE_KEYS)
def test_exactly_one_type_object_is_non_null_and_it_validates(kind):
    out = render(ALERTS[kind])
    assert out["type"] == kind
    assert [k for k in TYPE_KEYS if out[k] is not None] == [kind]
    assert all(k in out for k in TYPE_KEYS)
    VALIDATOR.validate(out)


def test_type_specific_objects():
    assert render(ALERTS["chargingSessionError"])["chargingSessionError"] == {
        "status": "Faulted", "ocppErrorCode": "GroundFailure", "ocppVendorErrorCode": "E042",
        "ocppInfo": "ground fault", "errorContext": "Charging ended early"}
    assert render(ALERTS["offlineCharger"])["offlineCharger"] == {"thresholdMinutes": 5}
    assert render(ALERTS["chargingCompleted"])["chargingCompleted"] == {"socThreshold": 100, "socPercent": 97.5}
    assert render(ALERTS["lateCharging"])["lateCharging"] == {
        "originalEta": "2024-04-30T02:00:07.321Z", "currentEta": "2024-04-30T03:00:07.321Z",
        "originalDepartureTime": "2024-04-30T01:30:07.321Z", "currentDepartureTime": None}


def test_extensions_end_timestamp_and_evse_id():
    assert render(ALERTS["chargingCompleted"])["endTimestamp"] == "2024-04-30T01:00:07.326Z"
    out = render(ALERTS["offlineCharger"], ports=PORTS, charger=CHARGER)
    assert (out["endTimestamp"], out["evseId"], out["port"]) == (None, None, None)  # the whole charger
    assert out["charger"]["ocppId"] == "OCPP123"


def test_unknown_context_is_null_and_defaults_come_from_what_is_known():
    out = render(ALERTS["lowBattery"], muted=True, alert_id=7)
    assert (out["id"], out["muted"]) == (7, True)
    assert all(out[k] is None for k in ("chargingSession", "site", "charger", "port", "vehicle", "organization"))
    out = render(ALERTS["lowBattery"], charger=ChargerInfo("CP-0042"), ports={1: PortInfo(1)})
    assert out["charger"] == {"id": 1, "name": "CP-0042", "manufacturer": None, "model": None,
                              "networkServiceProvider": "", "chargerType": "", "serialNumber": None,
                              "numberOfPorts": 1, "latitude": None, "longitude": None, "externalId": None,
                              "ocppId": "CP-0042"}
    assert out["port"] == {"id": 1, "name": "EVSE 1", "portNumber": 1, "maximumPowerKw": None}
    assert render(ALERTS["lowBattery"], ports={2: PortInfo(2)})["port"] is None  # no port for EVSE 1
    VALIDATOR.validate(out)


def test_charging_session():
    session = ChargingSessionInfo(9, T0, T0 + 3_725_900_000, 12_345.0, 15.0, 80.5)
    out = render(ALERTS["lowBattery"], session=session)
    assert out["chargingSession"] == {"id": 9, "startTime": "2024-04-30T01:00:07.321Z",
                                      "endTime": "2024-04-30T02:02:13.221Z", "durationSeconds": 3725,
                                      "energyDeliveredKwh": 12.345, "socStartPercent": 15, "socEndPercent": 80.5}
    VALIDATOR.validate(out)
    open_session = render(ALERTS["lowBattery"], session=ChargingSessionInfo(9, T0))["chargingSession"]
    assert (open_session["endTime"], open_session["durationSeconds"], open_session["energyDeliveredKwh"]) == \
        (None, None, None)


def test_the_schema_file_is_json_schema_2020_12_and_loaded_by_the_registry():
    raw = json.loads((ROOT / "schemas" / "alert.schema.json").read_text())
    assert raw["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "alert" in schemas.schema_names()


@pytest.mark.parametrize("mutate", [
    lambda o: o.update(lowBattery={"socThreshold": 20, "socPercent": 15}),  # two type objects
    lambda o: o.update(chargingSessionError=None),  # the one for its type is null
    lambda o: o.pop("offlineCharger"),  # a type key missing
    lambda o: o.update(startTimestamp="2024-04-30T01:00:07.321+00:00"),
    lambda o: o.update(startTimestamp="2024-04-30T01:00:07.3219Z"),
    lambda o: o.update(extra=1),
    lambda o: o.update(type="somethingElse"),
    lambda o: o["chargingSessionError"].pop("errorContext"),
    lambda o: o.update(evseId="1"),
    lambda o: o.update(muted="false"),
])
def test_the_schema_refuses_what_the_seed_does_not_allow(mutate):
    out = copy.deepcopy(render(ALERTS["chargingSessionError"]))
    VALIDATOR.validate(out)
    mutate(out)
    assert not VALIDATOR.is_valid(out)


# -- every alert the engine can produce renders and validates ------------------------------------------

_step = st.one_of(
    st.builds(lambda active, code, evse: ("fault", active, code, evse),
              st.booleans(), st.sampled_from(["GroundFailure", "HighTemperature"]), st.integers(0, 2)),
    st.builds(lambda soc, power, dep, evse: ("status", soc, power, dep, evse),
              st.one_of(st.none(), st.sampled_from([5.0, 20.0, 50.0, 98.0, 100.0]), st.floats(0, 100)),
              st.one_of(st.none(), st.integers(-10, 50_000)),
              st.one_of(st.none(), st.integers(0, 10 * 3600)), st.integers(1, 2)),
    st.builds(lambda cond, rising, evse: ("edge", cond, rising, evse),
              st.sampled_from([Condition.EV_CONNECTED, Condition.AUTHORIZED, Condition.ENERGY_TRANSFER]),
              st.booleans(), st.integers(1, 2)),
    st.builds(lambda silent: ("tick", silent), st.integers(0, 400)),
)


@pytest.mark.slow
@given(steps=st.lists(st.tuples(st.integers(1, 120), _step), max_size=60), muted=st.booleans())
@hsettings(max_examples=100, deadline=None)
def test_every_rendered_engine_alert_validates(steps, muted):
    engine = AlertEngine()
    t, heard, changes = T0, T0, []
    for evse in (1, 2):  # start plugged in, so the SoC alerts are reachable
        engine.on_edge(Edge(evse, Condition.EV_CONNECTED, True, T0))
    for gap_s, step in steps:
        t += gap_s * 1_000_000
        if step[0] == "fault":
            _, active, code, evse = step
            changes += engine.on_fault(FaultRecord(evse, 1, active, code, None, None, t))
        elif step[0] == "status":
            _, soc, power, dep, evse = step
            changes += engine.on_ev_status(EvStatusRecord(evse, 1, t, soc, power, 60_000,
                                                          None if dep is None else t + dep * 1_000_000))
        elif step[0] == "edge":
            _, cond, rising, evse = step
            changes += engine.on_edge(Edge(evse, cond, rising, t))
        else:
            heard = t - step[1] * 1_000_000 if step[1] else t
            changes += engine.tick(t, heard)
    alerts = [c.alert for c in changes] + engine.open_alerts()
    for i, alert in enumerate(alerts):
        out = render_alert(alert, alert_id=i + 1, muted=muted, charger=CHARGER, ports=PORTS)
        VALIDATOR.validate(out)
        assert json.loads(json.dumps(out)) == out
        assert [k for k in TYPE_KEYS if out[k] is not None] == [alert.type.value]
    assert all(c.alert.end_us is not None for c in changes if c.kind is ChangeKind.CLOSED)


def test_a_scripted_session_yields_every_type_and_each_renders_valid():
    s = 1_000_000
    engine = AlertEngine()
    changes = engine.on_edge(Edge(1, Condition.EV_CONNECTED, True, T0))
    changes += engine.on_ev_status(EvStatusRecord(1, 1, T0 + s, 10.0, 7_000, 60_000, T0 + 3600 * s))
    changes += engine.on_ev_status(EvStatusRecord(1, 1, T0 + 2 * s, 100.0, 7_000, 60_000, T0 + 3600 * s))
    changes += engine.on_fault(FaultRecord(1, 1, True, "GroundFailure", "E042", None, T0 + 3 * s))
    changes += engine.tick(T0 + 600 * s, T0 + 4 * s)
    opened = [c.alert for c in changes if c.kind is ChangeKind.OPENED]
    assert sorted(a.type.value for a in opened) == sorted(TYPE_KEYS)
    for i, alert in enumerate(opened, 1):
        VALIDATOR.validate(render_alert(alert, alert_id=i, muted=False, charger=CHARGER, ports=PORTS,
                                        site=SITE, organization=ORG, vehicle=VEHICLE,
                                        session=ChargingSessionInfo(1, T0)))
