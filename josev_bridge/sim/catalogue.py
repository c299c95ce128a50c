"""Every control-API command of the sim, described once: the request fields (validated here, with
FastAPI/pydantic-style 422 details) and the extra answer fields. `openapi.py` builds the published
document (docs/sim-control-api.openapi.json) from the same table, so the two cannot drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rfc3339_validator import validate_rfc3339

from .mcu import (
    DEFAULT_EVSE_COUNT,
    DEPARTURE_SOURCES,
    FAULT_CODES,
    MAX_BATTERY_WH,
    MAX_CONNECTOR_ID,
    MAX_DRIFT_PPM,
    MAX_FAULT_INFO,
    MAX_ID_TAG,
    MAX_LOCAL_LIST,
    MAX_OFFSET_S,
    MAX_POWER_W,
    MAX_VENDOR_ERROR_CODE,
)

MAX_CORRUPT = 10_000
MAX_NOISE_BYTES = 65_536
MAX_FAULT_SECONDS = 3_600.0
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class FieldSpec:
    """One `event` field. kind: int | number | string | datetime (RFC 3339) | bool | enum | string_list."""

    name: str
    kind: str
    description: str
    required: bool = False
    minimum: float | None = None
    exclusive_minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None  # strings, and each item of a string_list
    max_length: int | None = None
    max_items: int | None = None  # string_list
    enum: tuple[str, ...] = ()


@dataclass(frozen=True)
class CommandSpec:
    name: str
    summary: str
    description: str
    kind: str  # "mcu": MCU state (runs SimulatedMcu.<method>); "link": a fault on the serial line
    addressed: bool  # takes evse_id / connector_id
    fields: tuple[FieldSpec, ...] = ()
    answer: dict[str, dict] = field(default_factory=dict)  # extra answer fields: name -> JSON schema
    example: dict[str, Any] = field(default_factory=dict)  # an `event` that succeeds

    @property
    def tag(self) -> str:
        return "Link faults" if self.kind == "link" else "Charger operations"

    def all_fields(self, evse_count: int | None = None) -> tuple[FieldSpec, ...]:
        if not self.addressed:
            return self.fields
        high = evse_count if evse_count is not None else 255
        return (FieldSpec("evse_id", "int", f"EVSE to act on (default 1): 1..N, N being the sim's --evse-count "
                          f"(default {DEFAULT_EVSE_COUNT}).",
                          minimum=1, maximum=high),
                FieldSpec("connector_id", "int", "Connector of the EVSE; remembered by the EVSE and named in "
                          "its records (default: the connector last addressed, initially 1).",
                          minimum=1, maximum=MAX_CONNECTOR_ID),
                *self.fields)


_ID_TAG: dict[str, Any] = dict(kind="string", min_length=1, max_length=MAX_ID_TAG)
_SECONDS: dict[str, Any] = dict(kind="number", exclusive_minimum=0, maximum=MAX_FAULT_SECONDS)
_FAULT = {"type": "object", "required": ["error_code"],
          "properties": {"error_code": {"type": "string", "enum": list(FAULT_CODES)},
                         "vendor_error_code": {"type": ["string", "null"]},
                         "info": {"type": ["string", "null"]}}}
_ID_TAG_STATUS = {"type": "string", "enum": ["Accepted", "Invalid"],
                  "description": "Invalid: a local authorization list is installed and the tag is not on it "
                                 "(nothing changes; `note` says so)."}
_EV = {"type": "object", "description": "What the EV reports (null: unknown), and the metered power.",
       "properties": {"soc_percent": {"type": ["number", "null"]},
                      "battery_capacity_wh": {"type": ["integer", "null"]},
                      "departure_time": {"type": ["string", "null"], "description": "TRUE time (UTC)"},
                      "departure_source": {"type": ["string", "null"], "enum": [*DEPARTURE_SOURCES, None]},
                      "power_w": {"type": "number"}}}
_CLOCK = {"type": "object", "description": "The MCU clock after the command.",
          "properties": {"drift_ppm": {"type": "number"},
                         "offset_s": {"type": "number", "description": "offset set at start or by the last "
                                      "clock-set offset_s"},
                         "mcu_minus_true_us": {"type": "integer", "description": "current MCU clock minus TRUE clock"},
                         "true_us": {"type": "integer"}, "mcu_us": {"type": "integer"}}}

COMMAND_SPECS: tuple[CommandSpec, ...] = (
    # -- charger operations (MCU state) ------------------------------------------------------------
    CommandSpec("plug-connector", "Plug connector", "The EV's cable is connected (EV_CONNECTED 1).",
                "mcu", True),
    CommandSpec("unplug-connector", "Unplug connector",
                "The cable is pulled: energy stops, the relay opens, the EV disconnects, authorization and "
                "signed data end (in that order). Allowed at any time (the physical act cannot be refused).",
                "mcu", True),
    CommandSpec("unlock-connector", "Unlock connector",
                "OCPP UnlockConnector. While a session is authorized on a connected EV (power path closed) "
                "it is refused with 200, no records, `unlock_status` OngoingAuthorizedTransaction and a note "
                "(as OCPP 2.0.1 answers); stop-session first. Otherwise the cable is released and pulled out "
                "(the records and edges of unplug-connector) and `unlock_status` is Unlocked.",
                "mcu", True,
                answer={"unlock_status": {"type": "string", "enum": ["Unlocked", "OngoingAuthorizedTransaction"]}}),
    CommandSpec("authorize-id-tag", "Authorize ID tag",
                "The driver or EV is authorized at the MCU (AUTHORIZED 1) with this tag. The sim has no CSMS: "
                "without a local authorization list every tag is accepted (and cached); with one installed "
                "only listed tags are, an unlisted tag answers 200 with `id_tag_status` Invalid, a note, and "
                "changes nothing.",
                "mcu", True, (FieldSpec("id_tag", description="OCPP IdToken.", required=True, **_ID_TAG),),
                answer={"id_tag_status": _ID_TAG_STATUS}, example={"evse_id": 1, "id_tag": "CARD-1"}),
    CommandSpec("start-session", "Start session",
                "plug-connector, authorize-id-tag and ev-requests-energy as one sequence. A rejected tag "
                "stops the sequence after the plug (note says why).",
                "mcu", True, (FieldSpec("id_tag", description="OCPP IdToken (default SIM-TAG).", **_ID_TAG),),
                answer={"id_tag_status": _ID_TAG_STATUS}, example={"evse_id": 1, "id_tag": "CARD-1"}),
    CommandSpec("stop-session", "Stop session",
                "Deauthorize: energy stops, the relay opens, authorization ends; the EV stays plugged.",
                "mcu", True),
    CommandSpec("ev-requests-energy", "EV requests energy",
                "The EV draws power: the relay closes and energy flows (at the last power-update, or 11 kW). "
                "Needs the power path closed (connected and authorized) and no active fault, else 200 with "
                "no records and a note.",
                "mcu", True),
    CommandSpec("ev-stops-energy", "EV stops energy",
                "The EV suspends: energy stops, the relay stays closed; its power draw becomes 0.",
                "mcu", True),
    CommandSpec("power-update", "Power update",
                "The EV's power draw changed. 0 while energy flows: ENERGY_FLOWING 0, the relay stays closed "
                "(like ev-stops-energy). > 0 with the power path closed and no fault: the relay closes and "
                "energy flows (like ev-requests-energy). > 0 otherwise: remembered as the EV's demand, no "
                "records, a note. `power_w` in the answer is the metered power afterwards. If the EV reports "
                "its battery state (ev-status), a change of the metered power also sends an EV_STATUS record.",
                "mcu", True, (FieldSpec("power_w", "number", "The EV's power draw in W.", required=True,
                                        minimum=0, maximum=MAX_POWER_W),),
                answer={"power_w": {"type": "number", "description": "metered power after the update (0 if no "
                                    "energy flows)"}},
                example={"evse_id": 1, "power_w": 7400}),
    CommandSpec("ev-status", "EV status",
                "The plugged EV reports its battery state (as over ISO 15118 or CHAdeMO): one EV_STATUS record "
                "with these values, the metered power and the time. Each call replaces the whole report: an "
                "omitted field is unknown. From then until the EV is unplugged, every change of the metered "
                "power (power-update, ev-requests-energy, ev-stops-energy, stop-session, inject-fault) sends "
                "one more EV_STATUS; a call that changes nothing sends none (a note says so). The sim is "
                "deterministic: it does not integrate the SoC over time nor repeat the status every 60 s; set "
                "the SoC explicitly. Without an EV connected: 200, no record, a note. The departure time "
                "goes on the wire on the MCU clock.",
                "mcu", True,
                (FieldSpec("soc_percent", "number", "State of charge in %, sent in 0.1 % steps.",
                           minimum=0, maximum=100),
                 FieldSpec("battery_capacity_wh", "int", "Usable battery capacity in Wh.", minimum=1,
                           maximum=MAX_BATTERY_WH),
                 FieldSpec("departure_time", "datetime", "When the EV leaves, RFC 3339 with a time zone "
                           "(TRUE time)."),
                 FieldSpec("departure_source", "enum", "Who set the departure time (default ev); only with "
                           "departure_time.", enum=tuple(DEPARTURE_SOURCES))),
                answer={"ev": _EV},
                example={"evse_id": 1, "soc_percent": 45.3, "battery_capacity_wh": 60000,
                         "departure_time": "2026-02-17T12:20:30Z", "departure_source": "ev"}),
    CommandSpec("parking-bay-occupied", "Parking bay occupied", "The bay detector sees a vehicle.", "mcu", True),
    CommandSpec("parking-bay-vacated", "Parking bay vacated", "The bay detector no longer sees one.", "mcu", True),
    CommandSpec("data-signed", "Data signed", "The fiscal meter delivered signed data (DATA_SIGNED 1).",
                "mcu", True),
    CommandSpec("inject-fault", "Inject fault",
                "The EVSE faults with an OCPP error code: a FAULT record (raised, with the vendor code and "
                "the info, cut to what fits a frame), then energy stops and the relay opens (records and the "
                "EnergyTransfer stop edge if it was charging; an EV_STATUS if the EV reports its status); "
                "the EV stays connected and authorized. No energy flows until every fault is cleared and "
                "the EV asks again. The fault is kept in the sim's state (GET /ocpp/status, "
                "`evses[].faults`). Injecting an active code again replaces its vendor code and info and "
                "sends the FAULT again.",
                "mcu", True,
                (FieldSpec("error_code", "enum", "OCPP 1.6 ChargePointErrorCode (NoError excluded).",
                           required=True, enum=FAULT_CODES),
                 FieldSpec("vendor_error_code", "string", "Vendor-specific code (at most 50 bytes of UTF-8).",
                           max_length=MAX_VENDOR_ERROR_CODE),
                 FieldSpec("info", "string", "Free text.", max_length=MAX_FAULT_INFO)),
                answer={"faults": {"type": "array", "items": _FAULT, "description": "active faults of the EVSE"}},
                example={"evse_id": 1, "error_code": "GroundFailure", "vendor_error_code": "GF-12",
                         "info": "residual current 31 mA"}),
    CommandSpec("clear-fault", "Clear fault",
                "Clear one active fault (or all of the EVSE's, without error_code): one FAULT record "
                "(cleared, with its vendor code) per code cleared. Energy does not resume by itself. "
                "Clearing a code that is not active answers 200 with no record and a note.",
                "mcu", True,
                (FieldSpec("error_code", "enum", "The fault to clear (default: all).", enum=FAULT_CODES),),
                answer={"cleared": {"type": "array", "items": {"type": "string"}},
                        "faults": {"type": "array", "items": _FAULT}},
                example={"evse_id": 1, "error_code": "GroundFailure"}),
    CommandSpec("reset-authorization-cache", "Reset authorization cache",
                "OCPP ClearCache: forget the tags accepted so far. Charger-wide: no evse_id/connector_id.",
                "mcu", False, answer={"cleared": {"type": "integer", "description": "tags forgotten"}}),
    CommandSpec("send-local-authorization-list", "Send local authorization list",
                "Install a full local authorization list, replacing any. While one is installed only listed "
                "tags are accepted by authorize-id-tag / start-session. An empty list removes the list "
                "(OCPP: a full update without entries). Charger-wide: no evse_id/connector_id. Survives "
                "link-reboot.",
                "mcu", False,
                (FieldSpec("id_tags", "string_list", "The tags to accept.", required=True, min_length=1,
                           max_length=MAX_ID_TAG, max_items=MAX_LOCAL_LIST),),
                answer={"list_size": {"type": "integer"}}, example={"id_tags": ["CARD-1", "CARD-2"]}),
    CommandSpec("clear-local-authorization-list", "Clear local authorization list",
                "Remove the local authorization list: every tag is accepted again. Charger-wide.",
                "mcu", False, answer={"cleared": {"type": "integer"}, "list_size": {"type": "integer"}}),
    CommandSpec("clock-set", "Set the MCU clock",
                "Change the MCU clock (the one on the wire) at run time. `offset_s` sets the MCU clock to "
                "TRUE + offset_s now (a step; the accumulated drift is absorbed); `drift_ppm` changes the "
                "rate from now on without a step. Both optional (none: just report the clock). `step_us` "
                "is how far the MCU clock jumped. Charger-wide.",
                "mcu", False,
                (FieldSpec("offset_s", "number", "MCU clock minus TRUE clock from now, in seconds.",
                           minimum=-MAX_OFFSET_S, maximum=MAX_OFFSET_S),
                 FieldSpec("drift_ppm", "number", "MCU clock rate error in ppm (+: runs fast).",
                           minimum=-MAX_DRIFT_PPM, maximum=MAX_DRIFT_PPM)),
                answer={"step_us": {"type": "integer"}, "clock": _CLOCK},
                example={"offset_s": 2.5, "drift_ppm": 40}),
    # -- link faults -----------------------------------------------------------------------------------
    CommandSpec("link-corrupt-frames", "Corrupt frames",
                "Damage the next `count` record frames (SIGNAL, FAULT, EV_STATUS) on the line (bad CRC). "
                "The records stay in the ring: "
                "the host recovers them by HOST_HELLO replay.",
                "link", False, (FieldSpec("count", "int", "Frames to damage.", required=True, minimum=1,
                                          maximum=MAX_CORRUPT),),
                answer={"corrupting": {"type": "integer"}}, example={"count": 2}),
    CommandSpec("link-noise", "Line noise",
                "Write `bytes` random bytes (any value, 0x00 included) between two frames, then one 0x00 so "
                "the noise ends at a frame boundary and the frames around it arrive intact. The noise is "
                "random.Random(seed).randbytes(bytes): give `seed` to know the bytes in advance.",
                "link", False,
                (FieldSpec("bytes", "int", "How many bytes of noise.", required=True, minimum=1,
                           maximum=MAX_NOISE_BYTES),
                 FieldSpec("seed", "int", "Seed of the noise (default: random; echoed in the answer).",
                           minimum=0, maximum=MAX_SEED)),
                answer={"noise_bytes": {"type": "integer"}, "seed": {"type": "integer"}},
                example={"bytes": 64, "seed": 7}),
    CommandSpec("link-silence", "Link silence",
                "The MCU sends nothing at all for `seconds`: no KEEPALIVE and no CLOCK_REPLY (probes received "
                "meanwhile are not answered: a late reply would be a wrong sample), and no record or HELLO: "
                "those are held and sent when the silence ends, in order. Records created meanwhile also "
                "stay in the ring. The MCU still receives (ACKs, HOST_HELLO are processed).",
                "link", False, (FieldSpec("seconds", description="Length of the silence.", required=True,
                                          **_SECONDS),),
                answer={"silent_for_s": {"type": "number"}}, example={"seconds": 0.05}),
    CommandSpec("link-reboot", "MCU reboot",
                "The MCU reboots: new random boot id, seq restarts at 1, faults cleared; the local "
                "authorization list and cache survive. A plugged cable and a parked car keep their level. "
                "A cold reboot (default) loses the rest: authorization, relay, energy and signed data drop "
                "to 0, with their edges at the reboot's TRUE time in `edges`, and the EV's status and power "
                "are forgotten. A warm reboot (`warm`) keeps every level and the time of each signal's last "
                "edge. The new boot's first records report every level (`records`): protocol version 2 a "
                "LEVEL per signal and EVSE, 0s included, with the level's age after a warm reboot; version 1 "
                "(--protocol-version 1) a SIGNAL per signal that is 1. Frames not yet sent are lost. "
                "keep_ring false: unacknowledged records are lost. keep_ring true: they are kept under "
                "their old boot id and announced first: for each earlier boot with unacknowledged records "
                "HELLO(old boot, oldest_seq, next_seq) and those records in seq order, then HELLO(new "
                "boot, 1, next_seq) and the level reports. Every later HOST_HELLO replays the same way "
                "until the host ACKs them with the old boot id.",
                "link", False, (FieldSpec("keep_ring", "bool", "Keep unacknowledged records (default false)."),
                                FieldSpec("warm", "bool", "A warm reboot: levels and edge times kept (default "
                                          "false: cold).")),
                answer={"boot_id": {"type": "integer"}, "previous_boot_id": {"type": "integer"},
                        "kept": {"type": "integer", "description": "records kept for replay"},
                        "lost": {"type": "integer", "description": "unacknowledged records lost"},
                        "warm": {"type": "boolean"}},
                example={"keep_ring": True, "warm": False}),
    CommandSpec("link-unplug", "Unplug the serial device",
                "The pty disappears, as a USB adapter pulled out: the sim closes both ends and removes the "
                "--pty-link symlink, so the host's port fails and cannot be reopened. After `seconds` a new "
                "pty is created and the link re-pointed to it. Frames meanwhile are lost, records stay in the "
                "ring; the host's HOST_HELLO after reopening replays them. 409 while already unplugged.",
                "link", False, (FieldSpec("seconds", description="How long the device stays away.",
                                          required=True, **_SECONDS),),
                answer={"unplugged_for_s": {"type": "number"}}, example={"seconds": 0.05}),
)

SPECS: dict[str, CommandSpec] = {spec.name: spec for spec in COMMAND_SPECS}
LINK_COMMANDS = frozenset(name for name, spec in SPECS.items() if spec.kind == "link")
MCU_COMMANDS = frozenset(name for name, spec in SPECS.items() if spec.kind == "mcu")


# -- validation (422 details in the FastAPI/pydantic shape) ------------------------------------------
class Errors:
    def __init__(self) -> None:
        self.items: list[dict] = []

    def add(self, loc: list, msg: str, kind: str) -> None:
        self.items.append({"loc": ["body", *loc], "msg": msg, "type": kind})


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def _check_bounds(errors: Errors, loc: list, value: float, spec: FieldSpec) -> None:
    if spec.exclusive_minimum is not None and value <= spec.exclusive_minimum:
        errors.add(loc, f"Input should be greater than {_num(spec.exclusive_minimum)}", "greater_than")
    elif spec.minimum is not None and value < spec.minimum:
        errors.add(loc, f"Input should be greater than or equal to {_num(spec.minimum)}", "greater_than_equal")
    elif spec.maximum is not None and value > spec.maximum:
        errors.add(loc, f"Input should be less than or equal to {_num(spec.maximum)}", "less_than_equal")


def _check_string(errors: Errors, loc: list, value: Any, spec: FieldSpec) -> None:
    if not isinstance(value, str):
        errors.add(loc, "Input should be a valid string", "string_type")
    elif spec.min_length and len(value) < spec.min_length:
        errors.add(loc, f"String should have at least {spec.min_length} character"
                        f"{'s' if spec.min_length > 1 else ''}", "string_too_short")
    elif spec.max_length is not None and len(value) > spec.max_length:
        errors.add(loc, f"String should have at most {spec.max_length} characters", "string_too_long")


def check_field(errors: Errors, value: Any, spec: FieldSpec) -> None:
    loc = ["event", spec.name]
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            errors.add(loc, "Input should be a valid integer", "int_type")
        else:
            _check_bounds(errors, loc, value, spec)
    elif spec.kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.add(loc, "Input should be a valid number", "float_type")
        elif not math.isfinite(value):
            errors.add(loc, "Input should be a finite number", "finite_number")
        else:
            _check_bounds(errors, loc, value, spec)
    elif spec.kind == "string":
        _check_string(errors, loc, value, spec)
    elif spec.kind == "datetime":
        if not isinstance(value, str):
            errors.add(loc, "Input should be a valid datetime", "datetime_type")
        elif not validate_rfc3339(value):
            errors.add(loc, "Input should be a valid datetime: RFC 3339 with a time zone", "datetime_parsing")
    elif spec.kind == "bool":
        if not isinstance(value, bool):
            errors.add(loc, "Input should be a valid boolean", "bool_type")
    elif spec.kind == "enum":
        if value not in spec.enum or not isinstance(value, str):
            names = [f"'{name}'" for name in spec.enum]
            errors.add(loc, f"Input should be {', '.join(names[:-1])} or {names[-1]}", "enum")
    elif spec.kind == "string_list":
        if not isinstance(value, list):
            errors.add(loc, "Input should be a valid list", "list_type")
        elif spec.max_items is not None and len(value) > spec.max_items:
            errors.add(loc, f"List should have at most {spec.max_items} items after validation, "
                            f"not {len(value)}", "too_long")
        else:
            for i, item in enumerate(value):
                before = len(errors.items)
                _check_string(errors, loc, item, spec)
                for detail in errors.items[before:]:
                    detail["loc"].append(i)
    else:  # pragma: no cover - a catalogue bug
        raise AssertionError(f"unknown field kind {spec.kind!r}")


def check_object(errors: Errors, body: dict, key: str) -> dict | None:
    if key not in body:
        errors.add([key], "Field required", "missing")
        return None
    if not isinstance(body[key], dict):
        errors.add([key], "Input should be a valid dictionary", "dict_type")
        return None
    return body[key]


def extra_fields(errors: Errors, obj: dict, allowed: set[str], loc: list) -> None:
    for key in obj:
        if key not in allowed:
            errors.add([*loc, key], "Extra inputs are not permitted", "extra_forbidden")


def validate_event(errors: Errors, event: dict, spec: CommandSpec, evse_count: int) -> dict:
    """Check the `event` of one command; returns the method keywords (errors are added, not raised)."""
    fields = spec.all_fields(evse_count)
    extra_fields(errors, event, {f.name for f in fields}, ["event"])
    for field_spec in fields:
        if field_spec.name in event:
            check_field(errors, event[field_spec.name], field_spec)
        elif field_spec.required:
            errors.add(["event", field_spec.name], "Field required", "missing")
    return {f.name: event[f.name] for f in fields if f.name in event}
