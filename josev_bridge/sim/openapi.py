"""The OpenAPI 3.1 document of the sim's control API, built from `catalogue.COMMAND_SPECS`.

    python -m josev_bridge.sim.openapi docs/sim-control-api.openapi.json

writes the published copy; tests/sim/test_sim_openapi.py fails when that copy is stale, when a
command the server accepts has no path (or the reverse), or when a documented example is refused.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .. import __version__
from ..core.conditions import TRIGGER_REASONS, EventType, Signal
from .catalogue import COMMAND_SPECS, CommandSpec, FieldSpec
from .mcu import DEFAULT_EVSE_COUNT, FAULT_CODES

DOCUMENT_PATH = Path(__file__).resolve().parents[2] / "docs" / "sim-control-api.openapi.json"
EXAMPLE_CHARGER = "josev-sim"

DESCRIPTION = """\
Control API of the josev-bridge MCU simulator (`josev-bridge sim` / `python -m josev_bridge.sim`),
modelled on the OCPPLAB gateway: `POST /ocpp/commands/<command>` with
`{"target": {"charger_id": ...}, "event": {...}}`, Bearer auth, FastAPI-style 422 details.

**Answers.** Every command answers `id`, `event_type`, `target`, `edges` (the OCPP trigger-reason
edges the command caused: the truth the bridge is tested against) and `records` (the records it put
on the serial line, in seq order: SIGNAL, LEVEL, FAULT and EV_STATUS, told apart by `type`), plus
command-specific fields and, when the command did less than asked, a `note`. Refusals that model
charger behaviour (unlock during a session, unknown tag with a local list, energy without a closed
power path or with a fault) are 200 with a note, never an error.

**Clocks.** The sim has a TRUE clock (UTC) and an MCU clock, the one on the wire:
`mcu = true_at_start + offset + (true - true_at_start) * (1 + drift_ppm/1e6)` (CLI
`--clock-offset-s`, `--clock-drift-ppm`; at run time `clock-set`). `edges[].timestamp` is TRUE time;
`records[].time_us`/`timestamp` are the MCU clock (wire value) and `records[].true_time_us`/
`true_timestamp` the TRUE time. With offset 0 and drift 0 they are identical. The MCU answers a
CLOCK_PROBE at once with CLOCK_REPLY(probe id, MCU clock when the probe was read), ahead of queued
records.

**Addressing.** Per-EVSE commands take `evse_id` (default 1; 1..N, N = `--evse-count`, default
{evse_count}) and `connector_id` (1..255, remembered by the EVSE; default the one last addressed); charger-wide commands (authorization cache and
list, clock-set, link-*) take neither (422 extra_forbidden).

**Errors.** 400 malformed JSON or Content-Length; 401 missing or wrong token; 404 unknown path,
command or charger_id; 409 a link fault that cannot apply now (device unplugged); 411 a
Transfer-Encoding (send a Content-Length); 413 a body over 64 KiB; 422 field errors; 500 a sim bug.
400 for the Content-Length, 411 and 413 close the connection (`Connection: close`): the unread
body is never taken for the next request.
"""  # noqa: E501 - rewrapping one line would change docs/sim-control-api.openapi.json too


def _field_schema(spec: FieldSpec) -> dict:
    schema: dict[str, Any]
    if spec.kind in ("int", "number"):
        schema = {"type": "integer" if spec.kind == "int" else "number"}
        for key, value in (("minimum", spec.minimum), ("exclusiveMinimum", spec.exclusive_minimum),
                           ("maximum", spec.maximum)):
            if value is not None:
                schema[key] = value
    elif spec.kind == "string":
        schema = {"type": "string", **_lengths(spec)}
    elif spec.kind == "datetime":
        schema = {"type": "string", "format": "date-time"}
    elif spec.kind == "bool":
        schema = {"type": "boolean"}
    elif spec.kind == "enum":
        schema = {"type": "string", "enum": list(spec.enum)}
    elif spec.kind == "string_list":
        schema = {"type": "array", "items": {"type": "string", **_lengths(spec)}}
        if spec.max_items is not None:
            schema["maxItems"] = spec.max_items
    else:  # pragma: no cover
        raise AssertionError(spec.kind)
    schema["description"] = spec.description
    return schema


def _lengths(spec: FieldSpec) -> dict:
    out = {}
    if spec.min_length:
        out["minLength"] = spec.min_length
    if spec.max_length is not None:
        out["maxLength"] = spec.max_length
    return out


def _schema_name(spec: CommandSpec) -> str:
    return "".join(part.capitalize() for part in spec.name.split("-"))


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _response(name: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _command_operation(spec: CommandSpec) -> dict:
    name = _schema_name(spec)
    responses = {
        "200": _response(f"{name}Answer", "Done (or refused as the charger would, with a `note`)."),
        "400": {"$ref": "#/components/responses/BadRequest"},
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "404": {"$ref": "#/components/responses/NotFound"},
        "411": {"$ref": "#/components/responses/LengthRequired"},
        "413": {"$ref": "#/components/responses/ContentTooLarge"},
        "422": {"$ref": "#/components/responses/UnprocessableEntity"},
        "500": {"$ref": "#/components/responses/InternalServerError"},
    }
    if spec.kind == "link":
        responses["409"] = {"$ref": "#/components/responses/Conflict"}
    return {"post": {
        "operationId": name[0].lower() + name[1:],
        "summary": spec.summary,
        "description": spec.description,
        "tags": [spec.tag],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": _ref(f"{name}Request"),
            "example": {"target": {"charger_id": EXAMPLE_CHARGER}, "event": spec.example}}}},
        "responses": dict(sorted(responses.items())),
    }}


def _command_schemas(spec: CommandSpec) -> dict:
    name = _schema_name(spec)
    fields = spec.all_fields()
    event: dict[str, Any] = {"type": "object", "additionalProperties": False,
                             "properties": {f.name: _field_schema(f) for f in fields}}
    required = [f.name for f in fields if f.required]
    if required:
        event["required"] = required
    answer: dict[str, Any] = {"allOf": [_ref("CommandAnswer")]}
    if spec.answer:
        answer["allOf"].append({"type": "object", "properties": spec.answer})
    return {
        f"{name}Event": event,
        f"{name}Request": {"type": "object", "additionalProperties": False, "required": ["target", "event"],
                           "properties": {"target": _ref("Target"), "event": _ref(f"{name}Event")}},
        f"{name}Answer": answer,
    }


_TIMESTAMP = {"type": "string", "description": "UTC, YYYY-MM-DDTHH:MM:SS.sssZ (Josev's format, truncated to ms)"}

def _record_schema(type_name: str, fields: dict) -> dict:
    """A record of one type as the answers list it: the common fields and its own."""
    return {"type": "object",
            "required": ["seq", "type", "evse_id", "connector_id", *fields, "timestamp", "time_us",
                         "true_time_us", "true_timestamp"],
            "properties": {"seq": {"type": "integer", "minimum": 1}, "type": {"const": type_name},
                           "evse_id": {"type": "integer"}, "connector_id": {"type": "integer"}, **fields,
                           "time_us": {"type": "integer", "description": f"MCU clock, the {type_name}'s wire value"},
                           "timestamp": {**_TIMESTAMP, "description": "time_us formatted"},
                           "true_time_us": {"type": "integer", "description": "TRUE time of the event, µs"},
                           "true_timestamp": _TIMESTAMP}}


_COMMON_SCHEMAS: dict[str, Any] = {
    "Target": {"type": "object", "additionalProperties": False, "required": ["charger_id"],
               "properties": {"charger_id": {"type": "string", "description": "the sim's --charger-id "
                                             "(default josev-sim); another id is 404"}}},
    "Edge": {"type": "object", "required": ["evse_id", "trigger_reason", "event_type", "timestamp"],
             "properties": {"evse_id": {"type": "integer"},
                            "trigger_reason": {"type": "string", "enum": [c.value for c in TRIGGER_REASONS]},
                            "event_type": {"type": "string", "enum": [e.value for e in EventType]},
                            "timestamp": {**_TIMESTAMP, "description": "TRUE time of the edge, " +
                                          _TIMESTAMP["description"]}}},
    "Record": {"description": "One record on the serial line, by `type`.",
               "oneOf": [_ref("SignalRecord"), _ref("LevelRecord"), _ref("FaultRecord"), _ref("EvStatusRecord")]},
    "SignalRecord": _record_schema("SIGNAL", {"signal": {"type": "string", "enum": [s.name for s in Signal]},
                                              "state": {"type": "boolean"}}),
    "LevelRecord": _record_schema("LEVEL", {"signal": {"type": "string", "enum": [s.name for s in Signal]},
                                            "state": {"type": "boolean"},
                                            "age_us": {"type": ["integer", "null"], "description": "how long the "
                                                       "level had held (MCU clock µs); null: unknown"}}),
    "FaultRecord": _record_schema("FAULT", {
        "active": {"type": "boolean", "description": "true: raised, false: cleared"},
        "error_code": {"type": "string", "enum": list(FAULT_CODES)},
        "vendor_error_code": {"type": ["string", "null"]},
        "info": {"type": ["string", "null"], "description": "as sent: cut to what fits a 512-byte frame"}}),
    "EvStatusRecord": _record_schema("EV_STATUS", {
        "soc_percent": {"type": ["number", "null"]}, "power_w": {"type": ["integer", "null"]},
        "battery_capacity_wh": {"type": ["integer", "null"]},
        "departure_time_us": {"type": ["integer", "null"], "description": "MCU clock, the wire value"},
        "departure_timestamp": {"type": ["string", "null"], "description": "departure_time_us formatted"},
        "departure_source": {"type": "string", "enum": ["none", "ev", "operator"]}}),
    "CommandAnswer": {"type": "object", "required": ["id", "event_type", "target", "edges", "records"],
                      "properties": {"id": {"type": "string"},
                                     "event_type": {"type": "string", "description": "the command name"},
                                     "target": _ref("Target"),
                                     "edges": {"type": "array", "items": _ref("Edge")},
                                     "records": {"type": "array", "items": _ref("Record")},
                                     "note": {"type": "string", "description": "why the command did less "
                                              "than asked"}}},
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "ValidationError": {"type": "object", "required": ["detail"], "properties": {"detail": {
        "type": "array", "items": {"type": "object", "required": ["loc", "msg", "type"], "properties": {
            "loc": {"type": "array", "items": {"type": ["string", "integer"]},
                    "description": 'e.g. ["body", "event", "evse_id"]'},
            "msg": {"type": "string"},
            "type": {"type": "string", "description": "missing, extra_forbidden, dict_type, int_type, "
                     "float_type, finite_number, string_type, string_too_short, string_too_long, datetime_type, "
                     "datetime_parsing, bool_type, enum, list_type, too_long, greater_than, greater_than_equal, "
                     "less_than_equal, value_error"}}}}}},
    "Fault": {"type": "object", "properties": {"error_code": {"type": "string", "enum": list(FAULT_CODES)},
                                               "vendor_error_code": {"type": ["string", "null"]},
                                               "info": {"type": ["string", "null"]}}},
    "EvseStatus": {"type": "object", "properties": {
        "evse_id": {"type": "integer"}, "connector_id": {"type": "integer"},
        **{key: {"type": "boolean"} for key in ("connected", "authorized", "bay_occupied", "relay_closed",
                                                "energy_flowing", "data_signed", "power_path_closed", "faulted")},
        "id_tag": {"type": ["string", "null"]},
        "power_w": {"type": "number", "description": "metered: the EV's draw while energy flows, else 0"},
        "ev_power_w": {"type": "number", "description": "the EV's demand (last power-update)"},
        "faults": {"type": "array", "items": _ref("Fault")},
        "ev": {"type": ["object", "null"], "description": "the EV's last ev-status (null: none since plug-in)",
               "properties": {"soc_percent": {"type": ["number", "null"]},
                              "battery_capacity_wh": {"type": ["integer", "null"]},
                              "departure_time": {"type": ["string", "null"]},
                              "departure_source": {"type": ["string", "null"]}}}}},
    "Status": {"type": "object", "required": ["charger_id", "boot_id", "next_seq", "unacked", "evses"],
               "properties": {
                   "charger_id": {"type": "string"}, "boot_id": {"type": "integer"},
                   "firmware": {"type": "string"}, "evse_count": {"type": "integer"},
                   "next_seq": {"type": "integer"}, "oldest_seq": {"type": "integer"},
                   "last_acked_seq": {"type": "integer"}, "unacked": {"type": "integer"},
                   "ring_size": {"type": "integer"}, "ring_overflowed": {"type": "integer"},
                   "reboots": {"type": "integer"},
                   "protocol_version": {"type": "integer", "description": "the serial protocol the MCU speaks "
                                        "(--protocol-version)"},
                   "previous_boots": {"type": "array", "description": "earlier boots whose unacknowledged "
                                      "records were kept over link-reboot", "items": {"type": "object"}},
                   "clock": {"type": "object", "description": "drift_ppm, offset_s, mcu_minus_true_us, "
                             "true_us, mcu_us"},
                   "local_authorization_list": {"type": ["array", "null"], "items": {"type": "string"}},
                   "authorization_cache": {"type": "array", "items": {"type": "string"}},
                   "evses": {"type": "array", "items": _ref("EvseStatus")},
                   "pty": {"type": ["string", "null"], "description": "null while link-unplug lasts"},
                   "pty_link": {"type": "string"},
                   "link": {"type": "object", "description": "state (up, silent, unplugged), counters, decoder"}}},
}

_ERROR_RESPONSES = {
    "BadRequest": ("Error", "Malformed JSON, or a malformed or conflicting Content-Length (connection closed)."),
    "LengthRequired": ("Error", "A Transfer-Encoding: send the body with a Content-Length (connection closed)."),
    "ContentTooLarge": ("Error", "A body over 64 KiB (connection closed)."),
    "Unauthorized": ("Error", "Missing or wrong bearer token (WWW-Authenticate: Bearer)."),
    "NotFound": ("Error", "Unknown path, unknown command, or a charger_id that is not this sim's."),
    "Conflict": ("Error", "The link fault cannot apply now (the serial device is unplugged)."),
    "UnprocessableEntity": ("ValidationError", "Field errors, FastAPI style."),
    "InternalServerError": ("Error", "A sim bug (logged)."),
}


def build_document() -> dict:
    schemas = dict(_COMMON_SCHEMAS)
    paths: dict[str, Any] = {}
    for spec in COMMAND_SPECS:
        schemas.update(_command_schemas(spec))
        paths[f"/ocpp/commands/{spec.name}"] = _command_operation(spec)
    paths["/ocpp/status"] = {"get": {
        "operationId": "getStatus", "summary": "Sim status",
        "description": "MCU state (boot, ring, clock, EVSEs, faults, authorization) and the serial link's.",
        "tags": ["Status"],
        "responses": {"200": _response("Status", "The sim's state."),
                      "401": {"$ref": "#/components/responses/Unauthorized"},
                      "404": {"$ref": "#/components/responses/NotFound"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "josev-bridge MCU simulator control API", "version": __version__,
                 "description": DESCRIPTION.replace("{evse_count}", str(DEFAULT_EVSE_COUNT))},
        "servers": [{"url": "http://127.0.0.1:8765", "description": "default --control"}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": "Charger operations", "description": "Change the simulated MCU's state."},
                 {"name": "Link faults", "description": "Faults of the serial line and the MCU itself."},
                 {"name": "Status"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "description":
                                               "the token in --token-file, or generated into <pty-link>.token"}},
            "responses": {key: _response(schema, description)
                          for key, (schema, description) in _ERROR_RESPONSES.items()},
            "schemas": schemas,
        },
    }


def render() -> str:
    return json.dumps(build_document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        Path(args[0]).write_text(render(), encoding="utf-8")
    else:
        sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
