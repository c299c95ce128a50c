"""schemathesis against the live API of a real josev-bridge daemon, driven by docs/api.openapi.json.

Every operation is generated: GET /api/ocpp-messages (over a seeded journal), GET /api/alerts
(over faults and a low state of charge raised through the simulator), and the status page's
/api/status, /api/timeline, /api/journal-tail and /api/device-model.

The bridge runs as in production (`josev-bridge run`, real mosquitto, the simulated MCU on a pty);
its journal holds answered, unanswered, invalid and ignored requests plus link and device-model
events before the run starts, over more than one page. schemathesis then generates valid and
invalid queries from the document (examples, coverage and fuzzing phases) with the bridge's bearer
token and `chargerId` set to its identity, and checks every answer: no 5xx, the status code is one
the document lists, the content type and body fit the document's schema for that status, invalid
input is rejected, a missing token gives 401 and other methods 405. Every page that has a next page
is followed once with its cursor and checked the same way.

The token is written where the bridge looks for it (`<state_dir>/api-token`, 0600) before it
starts, so schemathesis applies it itself (an auth provider) and can leave it out to expect a 401.

Not checked: `positive_data_acceptance` (schema-valid input must not get a 400). Some valid-looking
queries are rightly refused with 400 by rules JSON Schema cannot state: a range of 8 days or more
(two parameters together), more than 32 distinct types over `messageType` and `messageType[]`, a
cursor this server never issued (opaque strings), a leap second.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from josev_bridge.config import MqttConfig
from josev_bridge.harness.waiting import wait_until
from josev_bridge.request_client import RequestClient

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "api.openapi.json"
IDENTITY = "schemathesis-charger"
TOKEN = secrets.token_urlsafe(32)  # known before collection: schemathesis applies auth while generating
MAX_EXAMPLES = 150  # fuzzed cases, valid and invalid together; the coverage phase adds ~100 more


def seed_journal(broker, sim, bridge) -> int:
    """Put every kind of row into the bridge's journal through its real inputs; returns how many."""
    status, body = sim.command("plug-connector", {"evse_id": 1})
    assert status == 200, body
    bridge.wait_log("EVSE 1 EVConnected TxEventStart")
    sent = 0
    with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port)) as client:
        for _ in range(20):  # answered
            reply = client.send("get_event_timestamp", {"event_type": "TxEventStart", "trigger_reason": "EVConnected"})
            assert reply.response is not None
            sent += 1
        raw = [  # not answered: published without waiting for the silence
            {"id": str(uuid.uuid4()), "name": "get_event_timestamp", "type": "request",
             "data": {"event_type": "TxEventStop", "trigger_reason": "Authorized"}},  # NoEventRecorded
            {"id": str(uuid.uuid4()), "name": "get_event_timestamp", "type": "request",
             "data": {"event_type": "TxEventStop", "trigger_reason": "DataSigned"}},  # NotSupported
            {"id": str(uuid.uuid4()), "name": "get_event_timestamp", "type": "request",
             "data": {"event_type": "Nonsense"}},  # InvalidMessage (schema)
            {"id": str(uuid.uuid4()), "name": "authorize", "type": "request", "data": {}},  # Ignored
        ]
        for _ in range(10):
            for request in raw:
                request["id"] = str(uuid.uuid4())
                client.publish_raw(json.dumps(request).encode())
                sent += 1
            client.publish_raw(b"{not json")
            sent += 1
    return sent


@pytest.fixture
def live_api(broker, sim, make_bridge) -> str:
    """A running bridge with a seeded journal and the token TOKEN: its base URL."""
    bridge = make_bridge(charger={"identity": IDENTITY}, api={"rate_limit_per_s": 100_000.0},
                         logging={"level": "INFO"})
    token_file = bridge.workdir / "state" / "api-token"  # where the bridge would create one; it reads ours
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(TOKEN + "\n")
    os.chmod(token_file, 0o600)
    bridge.start()
    assert bridge.api_token() == TOKEN
    sent = seed_journal(broker, sim, bridge)
    assert bridge.cli("dm", "set", "JOSEV_CTRLR", "EnableGetEventTimestampRequest", "false").returncode == 0
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = bridge.api_url("/api/ocpp-messages")

    def journaled() -> bool:
        body = requests.get(url, params={"chargerId": IDENTITY, "limit": 500}, headers=headers, timeout=5).json()
        types = {row["messageType"] for row in body["data"]}
        return len(body["data"]) >= sent and {"device_model_change", "mcu_link"} <= types
    wait_until(journaled, 10, f"{sent} requests and the events in the journal", interval=0.05)
    seed_alerts(sim)
    alerts_url = bridge.api_url("/api/alerts")
    wait_until(lambda: len(requests.get(alerts_url, params={"includeMuted": "true"}, headers=headers,
                                        timeout=5).json()["data"]) >= 4, 10, "four alerts", interval=0.05)
    return bridge.api_url()


def seed_alerts(sim) -> None:
    """Alerts of two types through the simulator (the connector is plugged): three faults and a low SoC."""
    for code in ("GroundFailure", "OverVoltage", "HighTemperature"):
        status, body = sim.command("inject-fault", {"evse_id": 1, "error_code": code, "vendor_error_code": "E1"})
        assert status == 200, body
    status, body = sim.command("ev-status", {"evse_id": 1, "soc_percent": 12.5, "battery_capacity_wh": 50000})
    assert status == 200, body


# Loaded eagerly from the file: schemathesis.pytest.from_fixture() needs a pytest-internal attribute
# that pytest 9 no longer has; the document is static, so only the base URL and token come per test.
schema = schemathesis.openapi.from_path(DOC_PATH)
schema.config.update(parameters={"chargerId": IDENTITY})
schema.config.generation.update(max_examples=MAX_EXAMPLES)
schema.config.checks.update(excluded_check_names=["positive_data_acceptance"])  # see the module's docstring


@schema.auth(refresh_interval=None)
class BridgeToken:
    """The bearer token, applied by schemathesis itself: so it can also leave it out and expect a 401."""

    def get(self, case, context) -> str:
        return TOKEN

    def set(self, case, data: str, context) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.timeout(90)
def test_live_api_conforms_to_its_openapi_document(case, live_api):
    response = case.call_and_validate(base_url=live_api)
    body = response.json() if response.status_code == 200 else {}
    cursor = (body.get("pagination") or {}).get("nextPageCursor")  # the status page's routes are not paged
    if cursor:  # the next page, as a client asks for it: the same parameters and the cursor
        case.query = {**case.query, "nextPageCursor": cursor}
        case.call_and_validate(base_url=live_api)
