"""docs/api.openapi.json's GET /api/alerts: in step with the query parser and true of a live server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from josev_bridge.adapters.alert_store import AlertStore
from josev_bridge.api.alerts_api import PATH, AlertsApi
from josev_bridge.api.server import ApiServer
from josev_bridge.config import from_dict
from josev_bridge.core import alert_query
from josev_bridge.core.alerts import Alert, AlertType, LateDetails, OfflineDetails, SessionErrorDetails, SocDetails

DOC = json.loads((Path(__file__).resolve().parents[2] / "docs" / "api.openapi.json").read_text())
DOC_URI = "urn:josev-bridge:api.openapi.json"
REGISTRY = Registry().with_resource(DOC_URI, Resource(contents=DOC, specification=DRAFT202012))
OPERATION = DOC["paths"][PATH]["get"]
TOKEN = "alerts-token"
T0 = 1_771_323_630_123_000


def validator(status: int) -> Draft202012Validator:
    response = OPERATION["responses"][str(status)]
    while "$ref" in response:
        response = DOC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = response["content"]["application/json"]["schema"]
    return Draft202012Validator({"$ref": DOC_URI + schema["$ref"]}, registry=REGISTRY,
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_parameters_match_the_query_parser():
    assert {p["name"] for p in OPERATION["parameters"]} == alert_query.PARAMETERS


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = tmp_path_factory.mktemp("alerts") / "alerts.sqlite"
    store = AlertStore(path)
    samples = [
        Alert(AlertType.CHARGING_SESSION_ERROR, 1, 1, T0, SessionErrorDetails("Faulted", "GroundFailure", "E042",
                                                                             "leakage", "Charging failed to start"),
              session_start_us=T0 - 60_000_000),
        Alert(AlertType.OFFLINE_CHARGER, None, None, T0 + 1, OfflineDetails(5), end_us=T0 + 400_000_000),
        Alert(AlertType.LOW_BATTERY, 2, 1, T0 + 2, SocDetails(20, 15)),
        Alert(AlertType.CHARGING_COMPLETED, 2, 1, T0 + 3, SocDetails(100, 100)),
        Alert(AlertType.LATE_CHARGING, 1, 1, T0 + 4, LateDetails(T0 + 9, T0 + 10, T0 + 5, T0 + 5)),
    ]
    for i, alert in enumerate(samples):
        store.record(alert, i == 2, (1, 2, 3))
    store.close()
    config = from_dict({"serial": {"url": "x"}, "charger": {"identity": "CP-7", "evse_count": 2}})
    api = AlertsApi(path, config)
    srv = ApiServer("127.0.0.1", 0, TOKEN, {PATH: api}, rate_per_s=1000.0)
    srv.start()
    yield srv
    srv.stop()
    api.close()


def get(server, params=(), token=TOKEN, method="GET"):
    host, port = server.address
    request = urllib.request.Request(f"http://{host}:{port}{PATH}?{urlencode(list(params))}", method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, body = response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        status, body = exc.code, json.loads(exc.read())
    assert str(status) in OPERATION["responses"], f"status {status} not documented"
    validator(status).validate(body)
    return status, body


def test_every_alert_type_validates_and_pages(server):
    status, body = get(server, [("includeMuted", "true"), ("limit", "2")])
    seen = [a["type"] for a in body["data"]]
    while body["pagination"]["hasNextPage"]:
        status, body = get(server, [("includeMuted", "true"), ("limit", "2"),
                                    ("nextPageCursor", body["pagination"]["nextPageCursor"])])
        seen += [a["type"] for a in body["data"]]
    assert sorted(seen) == sorted(t.value for t in AlertType)


@pytest.mark.parametrize("params,status", [([("includeMuted", "perhaps")], 400), ([("limit", "0")], 400),
                                           ([("alertRecipientIds[]", "x")], 400), ([("other", "1")], 400)])
def test_errors_validate(server, params, status):
    assert get(server, params)[0] == status


def test_auth_and_method_errors_validate(server):
    assert get(server, token=None)[0] == 401
    assert get(server, method="DELETE")[0] == 405
