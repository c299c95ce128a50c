"""OCPPLAB-style HTTP control API of the sim: `POST /ocpp/commands/<kebab-name>`, `GET /ocpp/status`.

Same request and error shapes as the OCPPLAB gateway (Bearer auth; 400/401/404/422, 422 with a
FastAPI-style `detail` list) so test scripts written against one work against the other. Commands
run one at a time under the MCU lock, so the records on the pty and the edges in the answers come
out in one consistent order.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from ..core.timestamps import format_us
from .mcu import COMMANDS, MAX_CONNECTOR_ID, MAX_ID_TAG, SentRecord, SimulatedMcu, run_command

log = logging.getLogger("josev_bridge.sim.api")

COMMAND_PREFIX = "/ocpp/commands/"
STATUS_PATH = "/ocpp/status"
MAX_BODY = 64 * 1024

#: Commands that take an id tag, and whether it is required.
_ID_TAG_COMMANDS: dict[str, bool] = {"authorize-id-tag": True, "start-session": False}
LINK_COMMANDS = frozenset({"link-corrupt-frames"})


class RecordSink(Protocol):
    def send_records(self, sent: list[SentRecord]) -> None: ...

    def corrupt_next(self, count: int) -> None: ...

    def status(self) -> dict: ...


class HttpError(Exception):
    def __init__(self, status: int, body: dict) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def error(status: int, message: str) -> HttpError:
    return HttpError(status, {"error": message})


# -- body validation (422) --------------------------------------------------------------------------
@dataclass
class _Errors:
    items: list[dict]

    def add(self, loc: list, msg: str, kind: str) -> None:
        self.items.append({"loc": ["body", *loc], "msg": msg, "type": kind})


def _check_int(errors: _Errors, event: dict, key: str, low: int, high: int) -> None:
    value = event[key]
    if isinstance(value, bool) or not isinstance(value, int):
        errors.add(["event", key], "Input should be a valid integer", "int_type")
    elif value < low:
        errors.add(["event", key], f"Input should be greater than or equal to {low}", "greater_than_equal")
    elif value > high:
        errors.add(["event", key], f"Input should be less than or equal to {high}", "less_than_equal")


def _check_id_tag(errors: _Errors, value: Any) -> None:
    if not isinstance(value, str):
        errors.add(["event", "id_tag"], "Input should be a valid string", "string_type")
    elif not value:
        errors.add(["event", "id_tag"], "String should have at least 1 character", "string_too_short")
    elif len(value) > MAX_ID_TAG:
        errors.add(["event", "id_tag"], f"String should have at most {MAX_ID_TAG} characters", "string_too_long")


def _check_object(errors: _Errors, body: dict, key: str) -> dict | None:
    if key not in body:
        errors.add([key], "Field required", "missing")
        return None
    if not isinstance(body[key], dict):
        errors.add([key], "Input should be a valid dictionary", "dict_type")
        return None
    return body[key]


def _extra_fields(errors: _Errors, obj: dict, allowed: set[str], loc: list) -> None:
    for key in obj:
        if key not in allowed:
            errors.add([*loc, key], "Extra inputs are not permitted", "extra_forbidden")


def validate_body(body: Any, command: str, evse_count: int) -> tuple[str, dict]:
    """Check a command body; return (charger_id, method keywords) or raise a 422 HttpError."""
    errors = _Errors([])
    if not isinstance(body, dict):
        errors.add([], "Input should be a valid dictionary", "dict_type")
        raise HttpError(422, {"detail": errors.items})
    _extra_fields(errors, body, {"target", "event"}, [])
    target = _check_object(errors, body, "target")
    event = _check_object(errors, body, "event")
    charger_id: Any = None
    if target is not None:
        _extra_fields(errors, target, {"charger_id"}, ["target"])
        charger_id = target.get("charger_id")
        if "charger_id" not in target:
            errors.add(["target", "charger_id"], "Field required", "missing")
        elif not isinstance(charger_id, str):
            errors.add(["target", "charger_id"], "Input should be a valid string", "string_type")
    kwargs = _validate_event(errors, event, command, evse_count) if event is not None else {}
    if errors.items:
        raise HttpError(422, {"detail": errors.items})
    return charger_id, kwargs


def _validate_event(errors: _Errors, event: dict, command: str, evse_count: int) -> dict:
    allowed = {"evse_id", "connector_id"} | ({"id_tag"} if command in _ID_TAG_COMMANDS else set())
    _extra_fields(errors, event, allowed, ["event"])
    if "evse_id" in event:
        _check_int(errors, event, "evse_id", 1, evse_count)
    if "connector_id" in event:
        _check_int(errors, event, "connector_id", 1, MAX_CONNECTOR_ID)
    if command in _ID_TAG_COMMANDS:
        if "id_tag" in event:
            _check_id_tag(errors, event["id_tag"])
        elif _ID_TAG_COMMANDS[command]:
            errors.add(["event", "id_tag"], "Field required", "missing")
    return {key: value for key, value in event.items() if key in allowed}


# -- the controller: commands against the MCU and the line ------------------------------------------
def record_dict(item: SentRecord) -> dict:
    r = item.record
    return {"seq": item.seq, "evse_id": r.evse_id, "connector_id": r.connector_id, "signal": r.signal.name,
            "state": r.state, "timestamp": format_us(r.time_us), "time_us": r.time_us}


class SimController:
    """Runs commands against the MCU and queues their records on the line, under one lock."""

    def __init__(self, mcu: SimulatedMcu, lock: threading.RLock, sink: RecordSink | None,
                 charger_id: str, token: str) -> None:
        self.mcu = mcu
        self.lock = lock
        self.sink = sink
        self.charger_id = charger_id
        self.token = token

    def authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[len("Bearer "):].strip().encode(), self.token.encode())

    def link_command(self, name: str, body: Any) -> dict:
        """Faults on the serial line itself (not MCU state): `link-corrupt-frames {count}`."""
        errors = _Errors([])
        if not isinstance(body, dict) or not isinstance(body.get("target"), dict) \
                or not isinstance(body.get("event"), dict):
            errors.add([], "Input should be {target: {charger_id}, event: {count}}", "dict_type")
            raise HttpError(422, {"detail": errors.items})
        event = body["event"]
        _extra_fields(errors, event, {"count"}, ["event"])
        if "count" not in event:
            errors.add(["event", "count"], "Field required", "missing")
        else:
            _check_int(errors, event, "count", 1, 10_000)
        if errors.items:
            raise HttpError(422, {"detail": errors.items})
        if body["target"].get("charger_id") != self.charger_id:
            raise error(404, f"charger {body['target'].get('charger_id')!r} not found")
        if self.sink is None:
            raise error(409, "no serial line to corrupt")
        self.sink.corrupt_next(event["count"])
        log.info("%s: the next %d SIGNAL frame(s) will be damaged on the line", name, event["count"])
        return {"id": secrets.token_hex(6), "event_type": name, "target": body["target"], "corrupting": event["count"]}

    def command(self, name: str, body: Any) -> dict:
        if name in LINK_COMMANDS:
            return self.link_command(name, body)
        charger_id, event = validate_body(body, name, self.mcu.evse_count)
        if charger_id != self.charger_id:
            raise error(404, f"charger {charger_id!r} not found")
        with self.lock:
            result = run_command(self.mcu, name, event)
            sent = result.sent()
            if self.sink is not None:
                self.sink.send_records(sent)
        answer = {"id": secrets.token_hex(6), "event_type": name, "target": {"charger_id": charger_id},
                  "edges": result.edges, "records": [record_dict(item) for item in sent]}
        if result.note:
            answer["note"] = result.note
        log.info("%s %s: %d records, %d edges", name, event, len(sent), len(result.edges))
        return answer

    def status(self) -> dict:
        with self.lock:
            state = {"charger_id": self.charger_id, **self.mcu.status()}
        if self.sink is not None:
            link = self.sink.status()
            state.update(pty=link.get("pty"), pty_link=link.get("pty_link"), link=link)
        return state


# -- HTTP ---------------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: Nagle + delayed ACK = 40 ms each
    server: "ControlServer"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self._serve(self._post)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(self._get)

    def _serve(self, route) -> None:
        try:
            raw = self._read_body()
            if not self.server.controller.authorized(self.headers.get("Authorization")):
                raise error(401, "missing or invalid bearer token")
            status, body = 200, route(raw)
        except HttpError as exc:
            status, body = exc.status, exc.body
        except Exception:  # a sim bug must answer 500, not kill the connection silently
            log.exception("control API request failed")
            status, body = 500, {"error": "internal error"}
        self._send_json(status, body)

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise error(400, "bad Content-Length") from None
        if length > MAX_BODY or length < 0:
            self.close_connection = True
            raise error(400, f"body larger than {MAX_BODY} bytes")
        return self.rfile.read(length) if length else b""

    def _post(self, raw: bytes) -> dict:
        if not self.path.startswith(COMMAND_PREFIX):
            raise error(404, f"no such endpoint: {self.path}")
        name = self.path[len(COMMAND_PREFIX):].split("?", 1)[0]
        if name not in COMMANDS and name not in LINK_COMMANDS:
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

    def _send_json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.debug("%s %s", self.address_string(), format % args)


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
