"""set_variable_validate over a real broker, and device-model changes reaching the running daemon."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from josev_bridge.config import MqttConfig
from josev_bridge.request_client import RequestClient

SILENCE = 1.0


def josev(broker) -> RequestClient:
    return RequestClient(MqttConfig(host="127.0.0.1", port=broker.port, request_topic="josev/cs",
                                    response_topic="cs/josev"))


def ocpp(broker) -> RequestClient:
    return RequestClient(MqttConfig(host="127.0.0.1", port=broker.port))


def validate(client, component, variable, value, timeout=5.0, **extra):
    data = {"attribute_value": value, "attribute_type": "Actual", "component": {"name": component, **extra},
            "variable": {"name": variable}}
    return client.send("set_variable_validate", data, timeout=timeout)


def test_accepted_value_is_applied_with_source_csms(broker, sim, bridge):
    status, body = sim.command("plug-connector")
    bridge.wait_log("EVConnected TxEventStart")
    with josev(broker) as client:
        reply = validate(client, "JOSEV_CTRLR", "EnableGetEventTimestampRequest", "false")
    assert reply.response["id"] == reply.request["id"] and reply.response["type"] == "response"
    assert reply.response["data"] == {"result": "accepted"}
    bridge.wait_log("EnableGetEventTimestampRequest Actual changed true -> false (source csms, by csms)")
    with ocpp(broker) as client:
        silent = client.send("get_event_timestamp", {"event_type": "TxEventStart", "trigger_reason": "EVConnected"},
                             timeout=SILENCE)
    assert silent.response is None
    history = bridge.cli("dm", "history", "--json").stdout.splitlines()
    assert '"source": "csms"' in history[0]


def test_invalid_and_read_only_values_are_rejected(broker, bridge):
    with josev(broker) as client:
        assert validate(client, "JOSEV_CTRLR", "EnableGetEventTimestampRequest", "yes").response["data"] == \
            {"result": "rejected"}
        assert validate(client, "JOSEV_CTRLR", "EventTimestampTriggerReasonsSupported",
                        "EVConnected").response["data"] == {"result": "rejected"}
    bridge.wait_log("expects true or false, got 'yes'")
    assert bridge.cli("dm", "get", "JOSEV_CTRLR", "EnableGetEventTimestampRequest").stdout.strip() == "true"


def test_other_components_and_malformed_requests_get_no_reply(broker, bridge):
    with josev(broker) as client:
        assert validate(client, "OCPPCommCtrlr", "HeartbeatInterval", "60", timeout=SILENCE).response is None
        assert validate(client, "JOSEV_CTRLR", "SomeOtherVariable", "1", timeout=SILENCE).response is None
        assert validate(client, "JOSEV_CTRLR", "EnableGetEventTimestampRequest", "false", timeout=SILENCE,
                        evse_id=1).response is None
        malformed = {"id": str(uuid.uuid4()), "name": "set_variable_validate", "type": "request",
                     "data": {"attribute_value": True, "component": {"name": "JOSEV_CTRLR"}}}
        assert client.send_raw(malformed, timeout=SILENCE).response is None
        # and the bridge still answers a good one
        assert validate(client, "JOSEV_CTRLR", "EnableGetEventTimestampRequest", "true").response["data"] == \
            {"result": "accepted"}
    bridge.wait_log("dropping schema violation message on josev/cs")


def test_unsupported_trigger_reason_is_not_answered(broker, sim, tmp_path, make_bridge):
    defs = tmp_path / "defs"
    defs.mkdir()
    src = json.loads((Path(__file__).parents[2] / "device_model" / "JOSEV_CTRLR.json").read_text())
    for var in src["variables"]:
        if var["name"] == "EventTimestampTriggerReasonsSupported":
            var["attributes"][0]["default"] = "EVConnected,Authorized,PowerPathClosed"  # no bay sensor
    (defs / "JOSEV_CTRLR.json").write_text(json.dumps(src))
    bridge = make_bridge(paths={"device_model_dir": str(defs)})
    bridge.start()
    sim.command("parking-bay-occupied")
    bridge.wait_log("ParkingBayOccupancy TxEventStart")
    with ocpp(broker) as client:
        reply = client.send("get_event_timestamp",
                            {"event_type": "TxEventStart", "trigger_reason": "ParkingBayOccupancy"}, timeout=SILENCE)
    assert reply.response is None
    bridge.wait_log("this hardware cannot time ParkingBayOccupancy")


def test_a_reused_id_with_another_value_is_a_new_request_not_the_old_answer(broker, bridge):
    """QoS 1 redelivery carries the same body; the same id with another body must be decided again."""
    msg_id = str(uuid.uuid4())
    with josev(broker) as client:
        first = validate_with_id(client, msg_id, "false")
        second = validate_with_id(client, msg_id, "true")
        again = validate_with_id(client, msg_id, "true")  # a true redelivery of the second: same answer
    assert first.response["data"] == second.response["data"] == again.response["data"] == {"result": "accepted"}
    assert bridge.cli("dm", "get", "JOSEV_CTRLR", "EnableGetEventTimestampRequest").stdout.strip() == "true"
    history = [json.loads(line) for line in bridge.cli("dm", "history", "--json").stdout.splitlines()]
    assert [h["new_value"] for h in history if h["source"] == "csms"][:2] == ["true", "false"]  # newest first


def validate_with_id(client, msg_id, value):
    data = {"attribute_value": value, "attribute_type": "Actual", "component": {"name": "JOSEV_CTRLR"},
            "variable": {"name": "EnableGetEventTimestampRequest"}}
    return client.send("set_variable_validate", data, msg_id=msg_id)
