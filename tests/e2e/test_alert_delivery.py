"""Alerts end to end: simulator over a real pty -> bridge -> GET /api/alerts, MQTT and notify_event on the broker."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from josev_bridge import schemas
from josev_bridge.core.timestamps import format_us, parse_us
from josev_bridge.harness.waiting import wait_until

IDENTITY = "test-charger"
TOLERANCE_US = 2000  # the bridge's UTC mapping of the MCU clock vs the simulator's true time
TYPE_KEYS = ("lowBattery", "chargingCompleted", "chargingSessionError", "offlineCharger", "lateCharging")
FAST = {"clear_hold_s": 1.0, "offline_threshold_minutes": 0.05, "link_gap_s": 1.0}
CHARGER = {"manufacturer": "ACME", "model": "Wallbox 22", "serial_number": "SN-1", "charger_type": "AC",
           "network_service_provider": "JosevNet", "evse_count": 2, "max_power_kw": 22.0}


class Listener:
    """Everything published on some topics of the real broker, collected from the moment it subscribed."""

    def __init__(self, broker, *topics: str) -> None:
        self.messages: list[tuple[str, dict]] = []
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"alert-listener-{id(self)}")
        self._client.on_connect = lambda c, *a: c.subscribe([(t, 1) for t in topics])
        self._client.on_subscribe = lambda *a: self._subscribed.set()
        self._client.on_message = lambda c, u, m: self.messages.append((m.topic, json.loads(m.payload)))
        self._client.connect("127.0.0.1", broker.port)
        self._client.loop_start()
        assert self._subscribed.wait(10)

    def on(self, topic: str) -> list[dict]:
        return [body for t, body in list(self.messages) if t == topic]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def alert_bridge(make_bridge):
    return make_bridge(alerts=FAST, charger=CHARGER)


@pytest.fixture
def listener(broker):
    lst = Listener(broker, f"josev-bridge/{IDENTITY}/alerts", "cs/josev")
    yield lst
    lst.close()


def api(bridge, params=()):
    url = bridge.api_url("/api/alerts") + ("?" + urlencode(list(params)) if params else "")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {bridge.api_token()}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def alerts(bridge, *params):
    status, body = api(bridge, params)
    assert status == 200, body
    return body["data"]


def wait_alerts(bridge, predicate, what, *params, timeout=15):
    return wait_until(lambda: (a := alerts(bridge, *params)) and predicate(a) and a, timeout, what)


def cmd(sim, name, **event):
    status, body = sim.command(name, event)
    assert status == 200, body
    return body


def true_us(body, record_type="FAULT"):
    return next(r["true_time_us"] for r in body["records"] if r["type"] == record_type)


def near(timestamp: str, expected_us: int) -> bool:
    return abs(parse_us(timestamp) - expected_us) <= TOLERANCE_US


def check_shape(alert: dict, alert_type: str) -> None:
    """The seed's shape: every type key present, exactly the one of this type non-null."""
    assert alert["type"] == alert_type
    assert {k for k in TYPE_KEYS if alert[k] is not None} == {alert_type}
    for key in ("chargingSession", "site", "charger", "port", "vehicle", "organization"):
        assert key in alert
    assert isinstance(alert["id"], int) and isinstance(alert["muted"], bool)
    assert schemas.validator("alert").is_valid(alert)


def test_charging_session_error_field_by_field_with_notify_event_mqtt_and_journal(sim, alert_bridge, listener):
    bridge = alert_bridge.start()
    plug = cmd(sim, "plug-connector", evse_id=1)
    cmd(sim, "authorize-id-tag", evse_id=1, id_tag="T1")  # a session, but no energy yet
    fault = cmd(sim, "inject-fault", evse_id=1, error_code="GroundFailure", vendor_error_code="E042",
                info="leakage 31 mA")
    (alert,) = wait_alerts(bridge, lambda a: len(a) == 1, "one alert")
    check_shape(alert, "chargingSessionError")
    assert alert["chargingSessionError"] == {"status": "Faulted", "ocppErrorCode": "GroundFailure",
                                             "ocppVendorErrorCode": "E042", "ocppInfo": "leakage 31 mA",
                                             "errorContext": "Charging failed to start"}
    assert near(alert["startTimestamp"], true_us(fault)) and alert["muted"] is False
    assert alert["endTimestamp"] is None and alert["evseId"] == 1
    assert alert["charger"] == {"id": 1, "name": IDENTITY, "manufacturer": "ACME", "model": "Wallbox 22",
                                "networkServiceProvider": "JosevNet", "chargerType": "AC", "serialNumber": "SN-1",
                                "numberOfPorts": 2, "latitude": None, "longitude": None, "externalId": None,
                                "ocppId": IDENTITY}
    assert alert["port"] == {"id": 1, "name": "EVSE 1", "portNumber": 1, "maximumPowerKw": 22}
    assert alert["site"] is None and alert["vehicle"] is None and alert["organization"] is None
    session = alert["chargingSession"]  # the session the fault came in: opened by the plug-in edge
    assert near(session["startTime"], true_us(plug, "SIGNAL")) and session["endTime"] is None
    assert session["id"] == parse_us(session["startTime"]) // 1000

    notify = wait_until(lambda: [m for m in listener.on("cs/josev") if m["name"] == "notify_event"], 10,
                        "notify_event on cs/josev")
    assert schemas.validator("notify_event.update").is_valid(notify[0])
    assert notify[0]["type"] == "update"
    assert notify[0]["data"]["event_id"] == alert["id"] and notify[0]["data"]["tech_code"] == "GroundFailure"
    assert notify[0]["data"]["evse_id"] == 1 and notify[0]["data"]["timestamp"] == alert["startTimestamp"]
    local = wait_until(lambda: listener.on(f"josev-bridge/{IDENTITY}/alerts"), 10, "the alert on the local topic")
    assert local[0]["event"] == "opened" and local[0]["alert"]["id"] == alert["id"]
    assert f"ALERT {alert['id']} chargingSessionError on EVSE 1" in bridge.wait_log("ALERT ")

    clear = cmd(sim, "clear-fault", evse_id=1, error_code="GroundFailure")
    (closed,) = wait_alerts(bridge, lambda a: a[0]["endTimestamp"] is not None, "the alert to end")
    assert closed["id"] == alert["id"] and near(closed["endTimestamp"], true_us(clear))
    sent = wait_until(lambda: [m for m in listener.on("cs/josev") if m["name"] == "notify_event"][1:], 10,
                      "a second notify_event for the end")
    wait_until(lambda: [r for r in journal_rows(bridge, "notify_event") if r["direction"] == "out"][1:],
               10, "both notify_event updates in the journal")  # what the bridge sent, it says it sent
    journaled = [r for r in journal_rows(bridge, "notify_event") if r["direction"] == "out"]
    assert {r["correlationId"] for r in journaled} == {notify[0]["id"], sent[0]["id"]}
    assert all(r["topic"] == "cs/josev" and r["messageResponse"] is None for r in journaled)
    assert {r["messagePayload"]["event_id"] for r in journaled} == {alert["id"]}


def journal_rows(bridge, message_type):
    request = urllib.request.Request(bridge.api_url("/api/ocpp-messages") + "?" + urlencode(
        [("chargerId", IDENTITY), ("messageType", message_type)]))
    request.add_header("Authorization", f"Bearer {bridge.api_token()}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


def test_a_fault_cleared_by_an_mcu_reboot_ends_at_the_reboot(sim, alert_bridge):
    """The simulator's reboot clears its faults and, as the protocol says, re-raises none: no clear
    record ever comes, yet the alert must end, at the time the bridge saw the new boot."""
    bridge = alert_bridge.start()
    fault = cmd(sim, "inject-fault", evse_id=1, error_code="GroundFailure")
    (alert,) = wait_alerts(bridge, lambda a: len(a) == 1, "the fault's alert")
    assert near(alert["startTimestamp"], true_us(fault)) and alert["endTimestamp"] is None
    before_us = time.time_ns() // 1000
    reboot = cmd(sim, "link-reboot")
    bridge.wait_log(f"MCU boot {reboot['boot_id']:08x}", timeout=10)
    after_us = time.time_ns() // 1000
    (ended,) = wait_alerts(bridge, lambda a: a[0]["endTimestamp"] is not None, "the alert to end after the hold")
    assert ended["id"] == alert["id"] and ended["startTimestamp"] == alert["startTimestamp"]
    assert before_us - 1000 < parse_us(ended["endTimestamp"]) <= after_us  # ms-truncated time of the HELLO


def test_a_flapping_fault_is_one_alert(sim, make_bridge, listener):
    bridge = make_bridge(alerts={**FAST, "clear_hold_s": 30.0}).start()
    cmd(sim, "plug-connector", evse_id=2)
    for _ in range(5):
        cmd(sim, "inject-fault", evse_id=2, error_code="OverVoltage")
        cmd(sim, "clear-fault", evse_id=2, error_code="OverVoltage")
    cmd(sim, "inject-fault", evse_id=2, error_code="OverVoltage")
    wait_until(lambda: bridge.status()["mcu_link"]["counters"]["faults"] >= 11, 10, "all eleven FAULT records applied")
    data = alerts(bridge)
    assert len(data) == 1 and data[0]["type"] == "chargingSessionError" and data[0]["endTimestamp"] is None
    assert len([m for m in listener.on("cs/josev") if m["name"] == "notify_event"]) == 1


def test_low_battery_completed_and_late_charging_from_ev_status(sim, alert_bridge):
    bridge = alert_bridge.start()
    cmd(sim, "plug-connector", evse_id=1)
    low = cmd(sim, "ev-status", evse_id=1, soc_percent=15, battery_capacity_wh=60000)
    (alert,) = wait_alerts(bridge, lambda a: len(a) == 1, "lowBattery")
    check_shape(alert, "lowBattery")
    assert alert["lowBattery"] == {"socThreshold": 20, "socPercent": 15}
    assert near(alert["startTimestamp"], true_us(low, "EV_STATUS"))

    cmd(sim, "authorize-id-tag", evse_id=1, id_tag="T1")
    cmd(sim, "ev-requests-energy", evse_id=1)
    cmd(sim, "power-update", evse_id=1, power_w=7400)
    departure = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    cmd(sim, "ev-status", evse_id=1, soc_percent=30, battery_capacity_wh=60000, departure_time=departure)
    late = wait_alerts(bridge, lambda a: any(x["type"] == "lateCharging" for x in a), "lateCharging")
    late = next(x for x in late if x["type"] == "lateCharging")
    check_shape(late, "lateCharging")
    eta = parse_us(late["lateCharging"]["currentEta"])
    assert eta > parse_us(late["lateCharging"]["currentDepartureTime"])  # 42 kWh at 7.4 kW: ~5.7 h > 1 h
    assert late["lateCharging"]["originalEta"] is not None and late["lateCharging"]["originalDepartureTime"]

    cmd(sim, "ev-status", evse_id=1, soc_percent=100, battery_capacity_wh=60000, departure_time=departure)
    done = wait_alerts(bridge, lambda a: any(x["type"] == "chargingCompleted" for x in a), "chargingCompleted")
    done = next(x for x in done if x["type"] == "chargingCompleted")
    check_shape(done, "chargingCompleted")
    assert done["chargingCompleted"] == {"socThreshold": 100, "socPercent": 100}


def test_offline_charger_when_the_link_is_silent_past_the_threshold(sim, alert_bridge):
    bridge = alert_bridge.start()
    wait_until(lambda: bridge.status()["mcu_link"]["state"] == "open", 10, "the link")
    assert sim.command("link-silence", {"seconds": 6.0})[0] == 200
    (alert,) = wait_alerts(bridge, lambda a: len(a) == 1, "offlineCharger", timeout=20)
    check_shape(alert, "offlineCharger")
    assert alert["offlineCharger"] == {"thresholdMinutes": 0.05} and alert["evseId"] is None
    (ended,) = wait_alerts(bridge, lambda a: a[0]["endTimestamp"] is not None, "the link back", timeout=20)
    assert parse_us(ended["endTimestamp"]) - parse_us(ended["startTimestamp"]) >= 3_000_000


def test_a_muted_alert_is_recorded_not_delivered(sim, make_bridge, listener):
    bridge = make_bridge(alerts={**FAST, "mute": [{"types": ["lowBattery"], "name": "fleet ignores SoC"}]}).start()
    cmd(sim, "plug-connector", evse_id=1)
    cmd(sim, "ev-status", evse_id=1, soc_percent=10)
    cmd(sim, "inject-fault", evse_id=1, error_code="HighTemperature")
    wait_alerts(bridge, lambda a: len(a) == 1, "the fault alert (the muted one is not listed)")
    everything = alerts(bridge, ("includeMuted", "true"))
    muted = next(a for a in everything if a["type"] == "lowBattery")
    assert muted["muted"] is True and len(everything) == 2
    check_shape(muted, "lowBattery")
    delivered = [m["alert"]["type"] for m in listener.on(f"josev-bridge/{IDENTITY}/alerts")]
    assert "lowBattery" not in delivered and "chargingSessionError" in delivered


def test_paging_recipient_filter_and_start_after(sim, alert_bridge):
    bridge = alert_bridge.start()
    cmd(sim, "plug-connector", evse_id=1)
    codes = ["GroundFailure", "OverVoltage", "UnderVoltage", "HighTemperature", "PowerMeterFailure"]
    for code in codes:
        cmd(sim, "inject-fault", evse_id=1, error_code=code)
    wait_alerts(bridge, lambda a: len(a) == 5, "five alerts")
    seen, cursor = [], None
    while True:
        status, body = api(bridge, [("limit", "2")] + ([("nextPageCursor", cursor)] if cursor else []))
        assert status == 200
        seen += [a["id"] for a in body["data"]]
        if not body["pagination"]["hasNextPage"]:
            break
        cursor = body["pagination"]["nextPageCursor"]
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == 5
    assert len(alerts(bridge, ("alertRecipientIds", "1"), ("alertRecipientIds", "3"))) == 5
    assert len(alerts(bridge, ("alertRecipientIds[]", "2"))) == 5
    assert alerts(bridge, ("alertRecipientIds", "99")) == []
    every = alerts(bridge)
    after = format_us(parse_us(min(a["startTimestamp"] for a in every)) + 1000)
    later = {a["id"] for a in every if a["startTimestamp"] >= after}  # ms-truncated: same order as the µs times
    assert {a["id"] for a in alerts(bridge, ("startTimestampAfter", after))} == later and len(later) < 5
    for bad, name in [(("includeMuted", "maybe"), "includeMuted"), (("alertRecipientIds", "x"), "alertRecipientIds"),
                      (("nextPageCursor", "%%"), "nextPageCursor"),
                      (("startTimestampAfter", "soon"), "startTimestampAfter")]:
        status, body = api(bridge, [bad])
        assert status == 400 and body["error"].startswith(name)


def test_alerts_survive_a_bridge_restart_without_duplicates(sim, alert_bridge):
    bridge = alert_bridge.start()
    cmd(sim, "plug-connector", evse_id=1)
    cmd(sim, "inject-fault", evse_id=1, error_code="ReaderFailure")
    (before,) = wait_alerts(bridge, lambda a: len(a) == 1, "the alert")
    bridge.stop()
    bridge.start()
    assert alerts(bridge) == [before]
    clear = cmd(sim, "clear-fault", evse_id=1, error_code="ReaderFailure")
    (after,) = wait_alerts(bridge, lambda a: a[0]["endTimestamp"] is not None, "the restored alert to end")
    assert after["id"] == before["id"] and near(after["endTimestamp"], true_us(clear))


def test_a_session_without_alerts_survives_a_bridge_restart(sim, alert_bridge):
    """Plugging in and authorizing raise no alert, yet the engine must remember the session across
    a restart: a later fault is 'Charging failed to start' in that session, not outside one."""
    bridge = alert_bridge.start()
    plug = cmd(sim, "plug-connector", evse_id=1)
    cmd(sim, "authorize-id-tag", evse_id=1, id_tag="T1")
    bridge.wait_log("PowerPathClosed TxEventStart")
    bridge.stop()  # a clean stop: the records are acknowledged, so nothing is replayed after the start
    bridge.start()
    cmd(sim, "inject-fault", evse_id=1, error_code="GroundFailure")
    (alert,) = wait_alerts(bridge, lambda a: len(a) == 1, "the fault's alert")
    assert alert["chargingSessionError"]["errorContext"] == "Charging failed to start"
    assert near(alert["chargingSession"]["startTime"], true_us(plug, "SIGNAL"))


def test_cli_alerts(sim, alert_bridge):
    bridge = alert_bridge.start()
    cmd(sim, "plug-connector", evse_id=1)
    cmd(sim, "inject-fault", evse_id=1, error_code="WeakSignal")
    wait_alerts(bridge, lambda a: len(a) == 1, "the alert")
    out = bridge.cli("alerts", "--json")
    assert out.returncode == 0, out.stderr
    (row,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert row["type"] == "chargingSessionError" and row["chargingSessionError"]["ocppErrorCode"] == "WeakSignal"
    table = bridge.cli("alerts", "--since", "1h")
    assert table.returncode == 0 and "WeakSignal" in table.stdout and "chargingSessionError" in table.stdout
