"""docs/sim-control-api.openapi.json against the server: same commands, same rules, fresh."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from josev_bridge.sim.catalogue import COMMAND_SPECS, SPECS, FieldSpec
from josev_bridge.sim.control_api import HttpError, SimController, accepted_commands, validate_body
from josev_bridge.sim.mcu import SimulatedMcu
from josev_bridge.sim.openapi import DOCUMENT_PATH, build_document
from josev_bridge.sim.pty_link import PtyLink

PREFIX = "/ocpp/commands/"


@pytest.fixture(scope="module")
def document() -> dict:
    return json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))


def validator(document: dict, schema: dict) -> Draft202012Validator:
    """A validator for `schema` whose #/components/... references resolve in the document."""
    return Draft202012Validator({**schema, "components": document["components"]})


def request_schema(document: dict, name: str) -> dict:
    return document["paths"][PREFIX + name]["post"]["requestBody"]["content"]["application/json"]["schema"]


def answer_schema(document: dict, name: str) -> dict:
    return document["paths"][PREFIX + name]["post"]["responses"]["200"]["content"]["application/json"]["schema"]


def test_the_published_document_is_current(document):
    assert document == build_document(), \
        "stale: run `python -m josev_bridge.sim.openapi docs/sim-control-api.openapi.json`"
    assert DOCUMENT_PATH == Path(__file__).resolve().parents[2] / "docs" / "sim-control-api.openapi.json"


def test_every_accepted_command_is_a_path_and_vice_versa(document):
    documented = {path[len(PREFIX):] for path in document["paths"] if path.startswith(PREFIX)}
    assert documented == set(accepted_commands())
    assert set(document["paths"]) - {PREFIX + name for name in documented} == {"/ocpp/status"}


def test_the_live_server_knows_every_documented_path(document, shared_sim):
    """Every documented command is routed (a bad field is 422, not 404); anything else is 404."""
    for path, item in document["paths"].items():
        if "post" in item:
            body = json.dumps({"target": {"charger_id": shared_sim.charger_id}, "event": {"not_a_field": 1}})
            status, answer = shared_sim.request("POST", path, body.encode())
            assert status == 422 and answer["detail"][0]["type"] == "extra_forbidden", path
        else:
            assert shared_sim.request("GET", path)[0] == 200
    assert shared_sim.command("proxy-message", {})[0] == 404  # OCPPLAB has it; an MCU does not


def test_document_shape(document):
    assert document["openapi"].startswith("3.1")
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        **document["components"]["securitySchemes"]["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert document["security"] == [{"bearerAuth": []}]
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    for path, item in document["paths"].items():
        for operation in item.values():
            codes = set(operation["responses"])
            assert {"200", "401", "404"} <= codes, path
            if path.startswith(PREFIX):
                assert {"400", "422", "500"} <= codes
                assert ("409" in codes) == (SPECS[path[len(PREFIX):]].kind == "link")


def test_documented_examples_succeed_and_answers_match_the_schema(document, tmp_path):
    """Each example request is valid by the document, runs (200) on a real sim, and its answer and
    the final status validate against the documented response schemas."""
    mcu = SimulatedMcu(boot_id=5)
    lock = threading.RLock()
    link = PtyLink(mcu, lock, tmp_path / "mcu.pty")
    link.start()
    controller = SimController(mcu, lock, link, "josev-sim", "t")
    try:
        for spec in COMMAND_SPECS:  # catalogue order: link-unplug last
            operation = document["paths"][PREFIX + spec.name]["post"]
            example = operation["requestBody"]["content"]["application/json"]["example"]
            validator(document, request_schema(document, spec.name)).validate(example)
            answer = controller.command(spec.name, example)
            validator(document, answer_schema(document, spec.name)).validate(answer)
            assert set(spec.answer) <= set(answer), spec.name
        status_schema = document["paths"]["/ocpp/status"]["get"]["responses"]["200"]["content"]["application/json"]
        validator(document, status_schema["schema"]).validate(controller.status())
    finally:
        link.close()


def _bad_values(field: FieldSpec) -> list[Any]:
    """Values the field must refuse, derived from its spec."""
    values: list[Any] = [None, {}]
    if field.kind in ("int", "number"):
        values += ["1", True]
        if field.maximum is not None:
            values.append(field.maximum + 1)
        if field.minimum is not None:
            values.append(field.minimum - 1)
        if field.exclusive_minimum is not None:
            values.append(field.exclusive_minimum)
        if field.kind == "int":
            values.append(1.5)
    elif field.kind == "string":
        values += [5] + (["x" * (field.max_length + 1)] if field.max_length else []) + \
            ([""] if field.min_length else [])
    elif field.kind == "datetime":
        values += [5]
    elif field.kind == "bool":
        values += ["true", 1]
    elif field.kind == "enum":
        values += ["Bogus", field.enum[0].swapcase()]  # enums are case-sensitive
    elif field.kind == "string_list":
        values += ["A", [5], [""], ["x" * (field.max_length + 1)]]
    return values


@pytest.mark.parametrize("name", sorted(SPECS))
def test_server_and_document_refuse_the_same_fields(document, name):
    spec = SPECS[name]
    check = validator(document, request_schema(document, name))
    base = {"target": {"charger_id": "josev-sim"}, "event": dict(spec.example)}
    for field in spec.all_fields(evse_count=255):  # the document cannot know --evse-count
        for value in _bad_values(field):
            body = json.loads(json.dumps({**base, "event": {**base["event"], field.name: value}}))
            assert not check.is_valid(body), (name, field.name, value)
            with pytest.raises(HttpError) as refused:
                validate_body(body, name, evse_count=255)
            assert refused.value.status == 422
            assert refused.value.body["detail"][0]["loc"][:3] == ["body", "event", field.name]
    for field in spec.fields:
        if field.required:
            event = {k: v for k, v in spec.example.items() if k != field.name}
            assert not check.is_valid({**base, "event": event})
            with pytest.raises(HttpError):
                validate_body({**base, "event": event}, name, evse_count=255)
    extra = {**base, "event": {**base["event"], "extra": 1}}
    assert not check.is_valid(extra)
    with pytest.raises(HttpError):
        validate_body(extra, name, evse_count=255)
    assert check.is_valid(base) and validate_body(base, name, evse_count=255)[0] == "josev-sim"
