"""The journal and GET /api/ocpp-messages against the live daemon: OCPP client -> mosquitto -> bridge -> HTTP."""

from __future__ import annotations

import http.client
import json
import shutil
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlencode

import pytest

from josev_bridge.config import MqttConfig
from josev_bridge.core.timestamps import format_us, parse_us
from josev_bridge.harness.bridge_process import BridgeProcess
from josev_bridge.harness.waiting import wait_until
from josev_bridge.request_client import RequestClient

IDENTITY = "test-charger"


def client_for(broker) -> RequestClient:
    return RequestClient(MqttConfig(host="127.0.0.1", port=broker.port))


def api(bridge, params=(), *, path="/api/ocpp-messages", token: str | None = "", method="GET"):
    """(status, body, headers). `params` is a list of pairs, so repeated keys can be sent."""
    url = bridge.api_url(path) + ("?" + urlencode(list(params)) if params else "")
    request = urllib.request.Request(url, method=method)
    token = bridge.api_token() if token == "" else token
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def rows(bridge, *params):
    status, body, _ = api(bridge, [("chargerId", IDENTITY), *params])
    assert status == 200, body
    return body["data"]


def wait_rows(bridge, predicate, what, *params):
    return wait_until(lambda: (r := rows(bridge, *params)) and predicate(r) and r, 10, what)


def by_correlation(data, correlation_id):
    return next(r for r in data if r["correlationId"] == correlation_id)


def test_journal_rows_for_answered_disabled_unknown_invalid_and_ignored_requests(broker, sim, bridge):
    assert sim.command("plug-connector", {"evse_id": 1})[0] == 200
    bridge.wait_log("EVSE 1 EVConnected TxEventStart")
    with client_for(broker) as client:
        answered = client.send("get_event_timestamp", {"event_type": "TxEventStart", "trigger_reason": "EVConnected"})
        assert answered.response is not None
        unknown = client.send("get_event_timestamp", {"event_type": "TxEventStop", "trigger_reason": "Authorized"},
                              timeout=0.5)
        assert unknown.response is None
        invalid_id = str(uuid.uuid4())
        client.publish_raw(json.dumps({"id": invalid_id, "name": "get_event_timestamp", "type": "request",
                                       "data": {"event_type": "TxEventStart", "trigger_reason": 7}}).encode())
        client.publish_raw(b"{not json")
        other_id = str(uuid.uuid4())
        client.publish_raw(json.dumps({"id": other_id, "name": "boot_notification", "type": "request",
                                       "data": {}}).encode())
        assert bridge.cli("dm", "set", "JOSEV_CTRLR", "EnableGetEventTimestampRequest", "false").returncode == 0
        bridge.wait_log("EnableGetEventTimestampRequest Actual changed")
        disabled = client.send("get_event_timestamp", {"event_type": "TxEventStart", "trigger_reason": "EVConnected"},
                               timeout=0.5)
        assert disabled.response is None

    data = wait_rows(bridge, lambda r: len(r) >= 7, "seven journal rows")
    row = by_correlation(data, answered.request["id"])
    assert row["messageType"] == "get_event_timestamp" and row["direction"] == "in" and row["topic"] == "ocpp/cs"
    assert row["messagePayload"] == answered.request["data"]
    assert row["messageResponse"] == answered.response["data"]
    assert row["ocppChargerIdentity"] == IDENTITY and row["chargerId"] == 1 and row["protocol"] == "ocpp2.0.1"
    assert 0 < row["latencyMs"] < 1000
    assert by_correlation(data, unknown.request["id"])["messageResponse"] == "NoEventRecorded"
    assert "TxEventStop/Authorized" in by_correlation(data, unknown.request["id"])["note"]
    assert by_correlation(data, disabled.request["id"])["messageResponse"] == "NotSupported"
    assert "EnableGetEventTimestampRequest is false" in by_correlation(data, disabled.request["id"])["note"]
    invalid = by_correlation(data, invalid_id)
    assert invalid["messageResponse"] == "InvalidMessage" and "trigger_reason" in invalid["note"]
    assert invalid["messagePayload"] == {"event_type": "TxEventStart", "trigger_reason": 7}
    garbage = next(r for r in data if r["messagePayload"] == "{not json")
    assert garbage["messageResponse"] == "InvalidMessage" and garbage["messageType"] == "unknown"
    assert by_correlation(data, other_id)["messageResponse"] == "Ignored"
    change = next(r for r in data if r["messageType"] == "device_model_change")
    assert change["direction"] == "event" and change["messagePayload"]["newValue"] == "false"
    link = next(r for r in data if r["messageType"] == "mcu_link")
    assert link["direction"] == "event" and link["messagePayload"]["state"] in ("open", "closed", "silent")
    assert [r["id"] for r in data] == sorted((r["id"] for r in data), reverse=True)  # newest first
    assert all(parse_us(r["createdAt"]) % 1000 == 0 and r["createdAt"].endswith("Z") for r in data)


def test_data_signed_has_no_stop_says_so_in_the_note(broker, bridge):
    """NotSupported has three causes (flag off, trigger reason not supported, no stop event): the note says which."""
    with client_for(broker) as client:
        stop_signed = client.send("get_event_timestamp", {"event_type": "TxEventStop", "trigger_reason": "DataSigned"},
                                  timeout=0.5)
        assert stop_signed.response is None
    data = wait_rows(bridge, lambda r: any(x["correlationId"] == stop_signed.request["id"] for x in r),
                     "the DataSigned row")
    row = by_correlation(data, stop_signed.request["id"])
    assert row["messageResponse"] == "NotSupported" and row["note"] == "DataSigned has no stop event"


def test_unsupported_trigger_reason_names_the_variable(broker, sim, tmp_path):
    """A board whose hardware cannot time EnergyTransfer (its definitions say so): the note says why."""
    src = Path(__file__).resolve().parents[2] / "device_model"
    definitions = tmp_path / "definitions"
    shutil.copytree(src, definitions)
    for path in definitions.glob("*.json"):
        text = path.read_text()
        path.write_text(text.replace("EVConnected,Authorized,ParkingBayOccupancy,PowerPathClosed,EnergyTransfer,"
                                     "DataSigned", "EVConnected,Authorized"))
    with BridgeProcess(tmp_path / "bridge", broker_port=broker.port, serial_url=str(sim.pty_link),
                       extra={"paths": {"device_model_dir": str(definitions)}}) as bridge:
        with client_for(broker) as client:
            reply = client.send("get_event_timestamp", {"event_type": "TxEventStart",
                                                        "trigger_reason": "EnergyTransfer"}, timeout=0.5)
        assert reply.response is None
        data = wait_rows(bridge, lambda r: any(x["correlationId"] == reply.request["id"] for x in r), "the row")
        row = by_correlation(data, reply.request["id"])
        assert row["messageResponse"] == "NotSupported"
        assert row["note"] == "trigger reason EnergyTransfer not in EventTimestampTriggerReasonsSupported"


def fill(bridge, broker, n: int, name: str = "heartbeat") -> None:
    """n journal rows quickly: messages of a name the bridge ignores (each is still journaled)."""
    before = bridge.status()["journal"]["last_id"]
    with client_for(broker) as client:
        for _ in range(n):
            client.publish_raw(json.dumps({"id": str(uuid.uuid4()), "name": name, "type": "request",
                                           "data": {}}).encode())
    wait_until(lambda: bridge.status()["journal"]["last_id"] >= before + n, 15, f"{n} more journal rows")


def test_filters_limit_defaults_and_both_array_styles(broker, bridge):
    fill(bridge, broker, 6, "alpha")
    fill(bridge, broker, 4, "beta")
    fill(bridge, broker, 3, "gamma")
    assert len(rows(bridge, ("messageType", "alpha"))) == 6
    assert len(rows(bridge, ("messageType[]", "alpha"), ("messageType[]", "beta"))) == 10
    assert len(rows(bridge, ("messageType", "alpha"), ("messageType", "gamma"))) == 9
    assert {r["messageType"] for r in rows(bridge, ("messageType[]", "gamma"))} == {"gamma"}
    assert len(rows(bridge, ("limit", "2"), ("messageType", "alpha"))) == 2
    everything = rows(bridge)
    assert len(everything) >= 13 and len(everything) <= 50  # default limit 50
    newest = parse_us(everything[0]["createdAt"])
    assert rows(bridge, ("startTimestamp", format_us(newest + 1000))) == []
    assert rows(bridge, ("endTimestamp", format_us(newest - 86_400_000_000))) == []  # default start: end - 24 h
    assert len(rows(bridge, ("startTimestamp", format_us(newest - 60_000_000)))) == len(everything)
    assert rows(bridge, ("messageType", "no-such-type")) == []


def test_numeric_fleet_id_is_accepted_and_other_chargers_are_404(broker, bridge):
    status, body, _ = api(bridge, [("chargerId", "1")])
    assert status == 200 and "data" in body
    status, body, _ = api(bridge, [("chargerId", "someone-else")])
    assert status == 404 and "chargerId" in body["error"]


@pytest.mark.parametrize("params,parameter", [
    ([], "chargerId"),
    ([("chargerId", IDENTITY), ("startTimestamp", "2024-05-01T00:00:00Z"), ("endTimestamp", "2024-05-09T00:00:00Z")],
     "startTimestamp"),
    ([("chargerId", IDENTITY), ("startTimestamp", "last tuesday")], "startTimestamp"),
    ([("chargerId", IDENTITY), ("endTimestamp", "2024-02-30T00:00:00Z")], "endTimestamp"),
    ([("chargerId", IDENTITY), ("limit", "501")], "limit"),
    ([("chargerId", IDENTITY), ("limit", "0")], "limit"),
    ([("chargerId", IDENTITY), ("nextPageCursor", "garbage")], "nextPageCursor"),
    ([("chargerId", IDENTITY), ("colour", "blue")], "colour"),
])
def test_bad_parameters_are_400_naming_the_parameter(bridge, params, parameter):
    status, body, _ = api(bridge, params)
    assert status == 400 and body["error"].startswith(parameter)


def test_auth_is_required_and_errors_are_json(bridge):
    status, body, headers = api(bridge, [("chargerId", IDENTITY)], token=None)
    assert status == 401 and "error" in body and headers["WWW-Authenticate"].startswith("Bearer")
    assert api(bridge, [("chargerId", IDENTITY)], token="wrong")[0] == 401
    assert api(bridge, [], path="/api/nothing")[:2] == (404, {"error": "no such route: /api/nothing"})
    status, body, headers = api(bridge, [("chargerId", IDENTITY)], method="POST")
    assert status == 405 and headers["Allow"] == "GET"
    token_file = bridge.workdir / "state" / "api-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert bridge.api_token() not in bridge.log_text()  # a secret never reaches the log
    assert bridge.status()["api"]["listen"].startswith("127.0.0.1:")  # loopback


def test_cursor_paging_through_many_pages_while_new_rows_are_written(broker, bridge):
    fill(bridge, broker, 120, "paged")
    start = format_us(parse_us(rows(bridge, ("limit", "1"))[0]["createdAt"]) - 120_000_000)
    stop = threading.Event()

    def writer():
        with client_for(broker) as client:
            while not stop.is_set():
                client.publish_raw(json.dumps({"id": str(uuid.uuid4()), "name": "paged", "type": "request",
                                               "data": {}}).encode())

    thread = threading.Thread(target=writer, daemon=True)
    before = {r["id"] for r in rows(bridge, ("messageType", "paged"), ("limit", "500"), ("startTimestamp", start))}
    thread.start()
    try:
        seen, cursor, pages = [], None, 0
        while True:
            params = [("chargerId", IDENTITY), ("messageType", "paged"), ("limit", "7"), ("startTimestamp", start)]
            status, body, _ = api(bridge, params + ([("nextPageCursor", cursor)] if cursor else []))
            assert status == 200, body
            seen += [r["id"] for r in body["data"]]
            pages += 1
            if not body["pagination"]["hasNextPage"]:
                assert body["pagination"]["nextPageCursor"] is None
                break
            cursor = body["pagination"]["nextPageCursor"]
    finally:
        stop.set()
        thread.join()
    assert pages > 10
    assert len(seen) == len(set(seen))  # no row repeated
    assert before <= set(seen)  # no row that existed when paging began is missing
    assert seen == sorted(seen, reverse=True)


def test_a_hammering_client_gets_429_with_retry_after(make_bridge):
    bridge = make_bridge(api={"rate_limit_per_s": 2.0})
    bridge.start()
    statuses = [api(bridge, [("chargerId", IDENTITY)]) for _ in range(8)]  # burst is 4
    limited = [s for s in statuses if s[0] == 429]
    assert limited and int(limited[0][2]["Retry-After"]) >= 1 and "error" in limited[0][1]
    assert statuses[0][0] == 200


def test_cli_messages_table_json_filters_and_works_with_the_daemon_down(broker, bridge):
    fill(bridge, broker, 3, "alpha")
    fill(bridge, broker, 2, "beta")
    bridge.stop()
    out = bridge.cli("messages", "--type", "alpha", "--json")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["messageType"] for r in lines] == ["alpha"] * 3
    assert [r["id"] for r in lines] == sorted(r["id"] for r in lines)  # oldest first, as a log reads
    table = bridge.cli("messages", "--since", "1h", "--limit", "2")
    assert table.returncode == 0 and table.stdout.splitlines()[0].split() == ["TIME", "TYPE", "WHAT"]
    assert len(table.stdout.splitlines()) == 4 and "beta" in table.stdout  # header, date line, 2 rows
    assert bridge.cli("messages", "--since", "1h", "--until", "2h").stdout.splitlines()[1:] == []
    bad = bridge.cli("messages", "--since", "yesterday-ish")
    assert bad.returncode == 2 and "not a time" in bad.stderr


def test_cli_messages_follow_prints_new_rows_live(broker, bridge):
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-m", "josev_bridge", "messages", "--follow", "--json", "--type", "live",
                             "--config", str(bridge.config)], stdout=subprocess.PIPE, text=True)
    try:
        fill(bridge, broker, 2, "other")
        fill(bridge, broker, 3, "live")
        got: list[dict] = []
        reader = threading.Thread(target=lambda: got.extend(json.loads(proc.stdout.readline()) for _ in range(3)),
                                  daemon=True)
        reader.start()
        wait_until(lambda: len(got) == 3, 10, "three followed rows")
        assert [r["messageType"] for r in got] == ["live"] * 3
    finally:
        proc.kill()
        proc.wait()


def test_an_empty_token_file_is_replaced_at_start_and_an_empty_bearer_refused(make_bridge):
    bridge = make_bridge()
    token_file = bridge.workdir / "state" / "api-token"
    token_file.parent.mkdir(parents=True)
    token_file.write_text("")  # a crash between creating the file and writing the token
    token_file.chmod(0o600)
    bridge.start()
    host, port = bridge.status()["api"]["listen"].rsplit(":", 1)
    for authorization in ("Bearer ", "Bearer"):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", f"/api/ocpp-messages?chargerId={IDENTITY}", headers={"Authorization": authorization})
        assert conn.getresponse().status == 401
        conn.close()
    token = bridge.api_token()
    assert token and token_file.stat().st_mode & 0o777 == 0o600
    assert api(bridge, [("chargerId", IDENTITY)])[0] == 200
    assert str(token_file) in bridge.log_text() and token not in bridge.log_text()
