"""Josev messages in and out: size limit, JSON parsing, envelope checks, a per-name handler registry.

Topics are shared buses (other services listen too), so a message with a name/type nobody here
handles is ignored at debug level, never answered with an error. Bad input gets exactly one clear
log line and no reply.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from jsonschema import Draft202012Validator

from . import schemas

log = logging.getLogger("josev_bridge.messages")

MAX_PAYLOAD = 64 * 1024


@dataclass(slots=True)  # not frozen: built per request on the answer path, where a frozen __init__ costs 4x
class Message:
    id: str
    name: str
    type: str
    data: dict


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why an inbound payload was not handled. `kind` is the journal/metrics category."""

    kind: str  # oversized | malformed_json | not_an_envelope | schema_violation | ignored
    detail: str
    id: str | None = None
    name: str | None = None
    data: object = None  # the parsed `data`, when the payload was JSON


@dataclass(slots=True)  # not frozen: built per request on the answer path, where a frozen __init__ costs 4x
class Outcome:
    """What a handler did: the response `data` it published, or why it sent none (a NoAnswer value)."""

    response: dict | None = None
    no_answer: str | None = None


@dataclass(slots=True)  # not frozen: built per request on the answer path, where a frozen __init__ costs 4x
class Handled:
    message: Message
    outcome: Outcome


Handler = Callable[[Message], Outcome]
FastCheck = Callable[[dict], bool]


@dataclass(slots=True)
class _Route:
    validator: Draft202012Validator
    handler: Handler
    certainly_valid: FastCheck | None = None


class Router:
    """Validates inbound payloads and dispatches them to the handler registered for (name, type)."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], _Route] = {}

    def register(self, name: str, type_: str, schema_name: str, handler: Handler,
                 certainly_valid: FastCheck | None = None) -> None:
        """`certainly_valid` may short-cut the schema for the common case: it must return True only
        for messages the schema accepts (a property test holds it to that); anything else, valid or
        not, goes to the full validator, which has the last word and names the violation."""
        self._routes[(name, type_)] = _Route(schemas.validator(schema_name), handler, certainly_valid)

    def handles(self, name: str, type_: str) -> bool:
        return (name, type_) in self._routes

    def route(self, payload: bytes) -> Handled | Rejected:
        """Parse and validate; call the handler and return what it did, or return why not."""
        if len(payload) > MAX_PAYLOAD:
            return Rejected("oversized", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
        try:
            obj = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            return Rejected("malformed_json", f"not JSON: {exc}")
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not isinstance(obj.get("type"), str):
            return Rejected("not_an_envelope", "not a JSON object with string 'name' and 'type'")
        name, type_ = obj["name"], obj["type"]
        msg_id = obj.get("id") if isinstance(obj.get("id"), str) else None
        route = self._routes.get((name, type_))
        if route is None:
            return Rejected("ignored", f"no handler for name={name!r} type={type_!r}", msg_id, name, obj.get("data"))
        fast = route.certainly_valid
        if not (fast is not None and fast(obj)) and not route.validator.is_valid(obj):
            return Rejected("schema_violation", schemas.first_error(route.validator, obj) or "invalid",
                            msg_id, name, obj.get("data"))
        message = Message(obj["id"], name, type_, obj["data"])
        return Handled(message, route.handler(message))


class ReplyCache:
    """Remembers the last replies by request id, so a QoS 1 redelivery gets the very same answer."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._replies: OrderedDict[str, bytes] = OrderedDict()

    def get(self, msg_id: str) -> bytes | None:
        return self._replies.get(msg_id)

    def put(self, msg_id: str, payload: bytes) -> None:
        self._replies[msg_id] = payload
        if len(self._replies) > self._size:
            self._replies.popitem(last=False)


_ENCODE = json.JSONEncoder(separators=(",", ":")).encode  # built once: json.dumps(separators=...) builds
# an encoder per call, a third of the cost of encoding a response


def encode_response(request: Message, data: dict) -> bytes:
    """The response envelope: same id and name, type "response"."""
    return _ENCODE({"id": request.id, "name": request.name, "type": "response", "data": data}).encode()
