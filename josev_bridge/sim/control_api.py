"""OCPPLAB-style HTTP control API of the sim: `POST /ocpp/commands/<kebab-name>`, `GET /ocpp/status`.

Same request and error shapes as the OCPPLAB gateway (Bearer auth; 400/401/404/422, 422 with a
FastAPI-style `detail` list; 409 when a link fault cannot apply now) so test scripts written against
one work against the other. Commands run one at a time under the MCU lock, so the records on the pty
and the edges in the answers come out in one consistent order. The commands and their fields are
described once, in `catalogue.py`; docs/sim-control-api.openapi.json is generated from it.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
from http.server import ThreadingHTTPServer
from typing import Any, Protocol

from ..adapters.http_base import HttpError, JsonHandler, require_bearer
from ..core.alert_inputs import EvStatusRecord, FaultRecord
from ..core.conditions import LevelRecord, SignalRecord
from ..core.timestamps import format_us
from .catalogue import LINK_COMMANDS, SPECS, Errors, check_object, extra_fields, validate_event
from .link_faults import LinkConflict
from .mcu import COMMANDS, SentRecord, SimulatedMcu, run_command

log = logging.getLogger("josev_bridge.sim.api")

COMMAND_PREFIX = "/ocpp/commands/"
STATUS_PATH = "/ocpp/status"
MAX_BODY = 64 * 1024

__all__ = ["COMMAND_PREFIX", "STATUS_PATH", "LINK_COMMANDS", "ControlServer", "HttpError", "LinkConflict",
           "RecordSink", "SimController", "accepted_commands", "parse_hostport", "record_dict", "validate_body"]


class RecordSink(Protocol):
    """The serial side as the controller sees it (PtyLink)."""

    def send_records(self, sent: list[SentRecord]) -> None: ...

    def corrupt_next(self, count: int) -> None: ...

    def inject_noise(self, count: int, seed: int | None = None) -> dict: ...

    def silence(self, seconds: float) -> dict: ...

    def reboot(self, keep_ring: bool, warm: bool = False) -> dict: ...

    def unplug(self, seconds: float) -> dict: ...

    def status(self) -> dict: ...


def error(status: int, message: str) -> HttpError:
    return HttpError(status, {"error": message})


def accepted_commands() -> frozenset[str]:
    """Every name `POST /ocpp/commands/<name>` accepts (anything else is 404)."""
    return frozenset(COMMANDS) | LINK_COMMANDS


# -- body validation (422) --------------------------------------------------------------------------
def validate_body(body: Any, command: str, evse_count: int) -> tuple[str, dict]:
    """Check a command body; return (charger_id, method keywords) or raise a 422 HttpError."""
    errors = Errors()
    if not isinstance(body, dict):
        errors.add([], "Input should be a valid dictionary", "dict_type")
        raise HttpError(422, {"detail": errors.items})
    extra_fields(errors, body, {"target", "event"}, [])
    target = check_object(errors, body, "target")
    event = check_object(errors, body, "event")
    charger_id: Any = None
    if target is not None:
        extra_fields(errors, target, {"charger_id"}, ["target"])
        charger_id = target.get("charger_id")
        if "charger_id" not in target:
            errors.add(["target", "charger_id"], "Field required", "missing")
        elif not isinstance(charger_id, str):
            errors.add(["target", "charger_id"], "Input should be a valid string", "string_type")
    kwargs = validate_event(errors, event, SPECS[command], evse_count) if event is not None else {}
    if errors.items:
        raise HttpError(422, {"detail": errors.items})
    return charger_id, kwargs


# -- the controller: commands against the MCU and the line ------------------------------------------
def record_dict(item: SentRecord) -> dict:
    """A record as the API reports it: `time_us`/`timestamp` are the MCU clock (the wire value),
    `true_time_us`/`true_timestamp` the TRUE time of the event (identical without offset and drift)."""
    r = item.record
    true_us = item.true_us
    return {"seq": item.seq, "type": _RECORD_TYPES[type(r)], "evse_id": r.evse_id, "connector_id": r.connector_id,
            **_record_fields(r), "timestamp": format_us(r.time_us), "time_us": r.time_us,
            "true_time_us": true_us, "true_timestamp": format_us(true_us)}


_RECORD_TYPES = {SignalRecord: "SIGNAL", LevelRecord: "LEVEL", FaultRecord: "FAULT", EvStatusRecord: "EV_STATUS"}


def _record_fields(r: SignalRecord | LevelRecord | FaultRecord | EvStatusRecord) -> dict:
    """The type-specific fields of a record, as on the wire (EV_STATUS departure on the MCU clock)."""
    if isinstance(r, SignalRecord):
        return {"signal": r.signal.name, "state": r.state}
    if isinstance(r, LevelRecord):
        return {"signal": r.signal.name, "state": r.state, "age_us": r.age_us}
    if isinstance(r, FaultRecord):
        return {"active": r.active, "error_code": r.error_code, "vendor_error_code": r.vendor_error_code,
                "info": r.info}
    departure = r.departure_time_us
    return {"soc_percent": r.soc_percent, "power_w": r.power_w, "battery_capacity_wh": r.battery_capacity_wh,
            "departure_time_us": departure, "departure_timestamp": None if departure is None else format_us(departure),
            "departure_source": r.departure_source.name.lower()}


class SimController:
    """Runs commands against the MCU and queues their records on the line, under one lock."""

    def __init__(self, mcu: SimulatedMcu, lock: threading.RLock, sink: RecordSink | None,
                 charger_id: str, token: str) -> None:
        self.mcu = mcu
        self.lock = lock
        self.sink = sink
        self.charger_id = charger_id
        self.token = token

    def authorize(self, header: str | None) -> None:
        """`Bearer <token>`, or a 401 HttpError; an empty token (a token file cut short) authorizes nothing."""
        require_bearer(header, self.token, message="missing or invalid bearer token", challenge="Bearer")

    def command(self, name: str, body: Any) -> dict:
        if name not in SPECS:
            raise error(404, f"unknown command {name!r}")
        charger_id, event = validate_body(body, name, self.mcu.evse_count)
        if charger_id != self.charger_id:
            raise error(404, f"charger {charger_id!r} not found")
        answer: dict[str, Any] = {"id": secrets.token_hex(6), "event_type": name,
                                  "target": {"charger_id": charger_id}}
        if name in LINK_COMMANDS:
            answer.update({"edges": [], "records": [], **self._link_command(name, event)})
            return answer
        with self.lock:
            try:
                result = run_command(self.mcu, name, event)
            except ValueError as exc:  # validation above should have caught it; never a 500
                raise HttpError(422, {"detail": [{"loc": ["body", "event"], "msg": str(exc),
                                                  "type": "value_error"}]}) from None
            sent = result.sent()
            if self.sink is not None and sent:
                self.sink.send_records(sent)
        answer.update(edges=result.edges, records=[record_dict(item) for item in sent], **result.info)
        if result.note:
            answer["note"] = result.note
        log.info("%s %s: %d records, %d edges%s", name, event, len(sent), len(result.edges),
                 f" ({result.note})" if result.note else "")
        return answer

    def _link_command(self, name: str, event: dict) -> dict:
        """Faults on the serial line itself (and the MCU reboot, which the line has to announce)."""
        if self.sink is None:
            raise error(409, "no serial line")
        try:
            if name == "link-corrupt-frames":
                self.sink.corrupt_next(event["count"])
                info: dict = {"corrupting": event["count"]}
            elif name == "link-noise":
                info = self.sink.inject_noise(event["bytes"], event.get("seed"))
            elif name == "link-silence":
                info = self.sink.silence(event["seconds"])
            elif name == "link-reboot":
                info = self.sink.reboot(event.get("keep_ring", False), event.get("warm", False))
                info["records"] = [record_dict(item) for item in info.pop("sent", [])]
            elif name == "link-unplug":
                info = self.sink.unplug(event["seconds"])
            else:  # pragma: no cover - a catalogue entry without an implementation
                raise error(500, f"link command {name!r} is not implemented")
        except LinkConflict as exc:
            raise error(409, str(exc)) from None
        log.info("%s %s: %s", name, event, info)
        return info

    def status(self) -> dict:
        with self.lock:
            state = {"charger_id": self.charger_id, **self.mcu.status()}
        if self.sink is not None:
            link = self.sink.status()
            state.update(pty=link.get("pty"), pty_link=link.get("pty_link"), link=link)
        return state


# -- HTTP ---------------------------------------------------------------------------------------------
class _Handler(JsonHandler):
    log = logging.getLogger("josev_bridge.sim.api")
    label = "control API"
    max_body = MAX_BODY
    server: ControlServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self._serve(self._post)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(self._get)

    def _serve(self, route) -> None:
        raw = self.read_body()  # a body whose end is unknown or too large: already answered and closed
        if raw is None:
            return
        try:
            self.server.controller.authorize(self.headers.get("Authorization"))
            status, body, headers = 200, route(raw), {}
        except HttpError as exc:
            status, body, headers = exc.status, exc.body, exc.headers
        except Exception:  # a sim bug must answer 500, not kill the connection silently
            log.exception("control API request failed")
            status, body, headers = 500, {"error": "internal error"}, {}
        self.send_json(status, body, headers)

    def _post(self, raw: bytes) -> dict:
        if not self.path.startswith(COMMAND_PREFIX):
            raise error(404, f"no such endpoint: {self.path}")
        name = self.path[len(COMMAND_PREFIX):].split("?", 1)[0]
        if name not in accepted_commands():
            raise error(404, f"unknown command {name!r}")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise error(400, "request body is not valid JSON") from None
        return self.server.controller.command(name, body)

    def _get(self, raw: bytes) -> dict:
        if self.path.split("?", 1)[0] != STATUS_PATH:
            raise error(404, f"no such endpoint: {self.path}")
        return self.server.controller.status()


class ControlServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], controller: SimController) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.controller = controller
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), self.server_address[1]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def parse_hostport(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT` -> (host, port); port 0 asks for an ephemeral port."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    value = int(port)
    if not 0 <= value <= 65535:
        raise ValueError(f"port out of range in {text!r}")
    return host, value
