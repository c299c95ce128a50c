"""Josev messages in and out: the edge checks, a per-name handler registry, and the one reply path.

Topics are shared buses (other services listen too), so a message with a name/type nobody here
handles is ignored at debug level, never answered with an error. Bad input gets exactly one clear
log line and no reply.

The router owns every reply: a handler only computes the response `data` (or says why there is
none); the router looks the request up in the reply cache, encodes the envelope, checks it against
the response schema, publishes it and records whether the link took it. So the redelivery rule and
the "answered means handed to the broker" rule are the same for every message name.

Input that JSON or SQLite cannot carry faithfully (NaN, Infinity, numbers beyond a double, text
with lone surrogates, NULs in the envelope, nesting deeper than MAX_DEPTH) is refused here, at the
edge, so nothing downstream (journal, API, logs) ever holds text it cannot read back.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from jsonschema import Draft202012Validator

from . import schemas
from .core.journal_entry import NoAnswer

log = logging.getLogger("josev_bridge.messages")

MAX_PAYLOAD = 64 * 1024
MAX_DEPTH = 32  # Josev's messages nest 4 levels; SQLite's JSON functions stop at 1000
RAW_TEXT = 2048  # characters of an unusable payload kept (as text) for the journal
DETAIL_TEXT = 300  # characters of a rejection's detail (a schema error can quote the whole value)
NOT_SENT = NoAnswer.NOT_SENT.value

#: Queue a message on the broker link: None when it was handed over, else why it was not.
Publish = Callable[[str, bytes], "str | None"]


class BadJson(ValueError):
    """JSON that parses in Python but that strict JSON (or SQLite's JSON functions) cannot carry."""


def _no_constants(name: str) -> float:
    raise BadJson(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise BadJson(f"number {text[:40]} is beyond a double")
    return value


_DECODE = json.JSONDecoder(parse_constant=_no_constants, parse_float=_finite).decode
_UNSAFE_TEXT = re.compile("[\ud800-\udfff\x00]")  # lone surrogates (json.loads joins valid pairs) and NUL


def decode(payload: bytes) -> object:
    """Strict JSON: no NaN/Infinity, no overflowing numbers, bounded depth, valid Unicode text.

    A lone surrogate or a NUL can only come from a `\\u` escape (raw bytes are UTF-8 and raw
    control characters are refused by the parser), so the text scan runs only when one is present.
    """
    try:
        obj = _DECODE(payload.decode("utf-8"))
    except RecursionError:
        raise BadJson("nested too deeply") from None
    if b"\\u" in payload and _has_unsafe_text(obj):
        raise BadJson("text holds a lone surrogate or a NUL character")
    if payload.count(b"{") + payload.count(b"[") > MAX_DEPTH and _depth_exceeds(obj, MAX_DEPTH):
        raise BadJson(f"nested deeper than {MAX_DEPTH} levels")  # (fewer brackets than that: not deeper)
    return obj


def _has_unsafe_text(obj: object) -> bool:
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _UNSAFE_TEXT.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _depth_exceeds(obj: object, limit: int) -> bool:
    """Iterative, so a deep document cannot exhaust the stack; a flat request costs one pass."""
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[object]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def raw_text(payload: bytes | bytearray) -> str:
    """An unusable payload as text anything can store and read back: UTF-8 with replacements, no NUL."""
    return payload[:RAW_TEXT].decode("utf-8", "replace").replace("\x00", "\ufffd")


@dataclass(slots=True)  # answer path: not frozen (docs/architecture.md)
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
    data: object = None  # the parsed `data`, when the payload was JSON it could carry


@dataclass(slots=True)  # answer path: not frozen (docs/architecture.md)
class Outcome:
    """What a handler decided: the response `data` to send, or why none (a NoAnswer value).

    `note` says the cause of a silence, or what is special about an answer. The router sets
    `sent` (the broker link took the answer) and, when it did not, `no_answer` = NotSent.
    """

    response: dict | None = None
    no_answer: str | None = None
    note: str | None = None
    sent: bool = False


@dataclass(slots=True)  # answer path: not frozen (docs/architecture.md)
class Handled:
    message: Message
    outcome: Outcome


Handler = Callable[[Message], Outcome]
FastCheck = Callable[[dict], bool]
Encoder = Callable[[Message, dict], bytes]


class ReplyCache:
    """The last replies by request id, with a fingerprint of the request body they answered.

    A QoS 1 redelivery carries the same bytes, so it gets the very same answer; the same id with
    another body is another request and must never get this one.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._replies: OrderedDict[str, tuple[int, bytes, str | None]] = OrderedDict()

    def get(self, msg_id: str) -> tuple[int, bytes, str | None] | None:
        """(body hash, reply, the first answer's note)."""
        return self._replies.get(msg_id)

    def put(self, msg_id: str, body_hash: int, payload: bytes, note: str | None = None) -> None:
        self._replies[msg_id] = (body_hash, payload, note)
        if len(self._replies) > self._size:
            self._replies.popitem(last=False)


class ResponseCheck:
    """The response schema, applied to every answer; a `data` already seen valid is not re-checked.

    The rest of a response is the request's id (checked by the request schema against the same
    envelope) and constants, so a `data` that passed once passes again: this keeps the check on
    every answer's content without paying the full validation for each repeat.
    """

    MEMO = 4096

    def __init__(self, schema_name: str) -> None:
        self._validator = schemas.validator(schema_name)
        self._valid: set[Hashable] = set()

    def error(self, data: dict, payload: bytes) -> str | None:
        key = _memo_key(data)
        if key is not None and key in self._valid:
            return None
        if not self._validator.is_valid(json.loads(payload)):
            return schemas.first_error(self._validator, json.loads(payload)) or "invalid"
        if key is not None:
            if len(self._valid) >= self.MEMO:
                self._valid.clear()
            self._valid.add(key)
        return None


def _memo_key(data: dict) -> Hashable | None:
    if len(data) == 1:  # the usual answer, {"timestamp": ...} or {"result": ...}: no set to build
        key, value = next(iter(data.items()))
        return (key, value) if isinstance(value, (str, int)) else None
    try:
        return frozenset(data.items())
    except TypeError:  # a nested value: validate every time
        return None


_ENCODE = json.JSONEncoder(separators=(",", ":")).encode  # built once: json.dumps(separators=...) builds
# an encoder per call, a third of the cost of encoding a response


def encode_response(request: Message, data: dict) -> bytes:
    """The response envelope: same id and name, type "response"."""
    return _ENCODE({"id": request.id, "name": request.name, "type": "response", "data": data}).encode()


@dataclass(slots=True)
class ReplyCounts:
    """What became of the requests of one message name (status and the systemd status line)."""

    answered: int = 0  # answers the MQTT link took
    silent: int = 0  # no answer by decision (NotSupported, NoEventRecorded, Ignored)
    not_sent: int = 0  # an answer decided, but not sent (NotSent)


@dataclass(slots=True)
class _Route:
    validator: Draft202012Validator
    handler: Handler
    certainly_valid: FastCheck | None
    response_topic: str
    response_check: ResponseCheck
    encode: Encoder
    replies: ReplyCache
    counts: ReplyCounts


class Router:
    """Validates inbound payloads, dispatches them by (name, type), and sends the handler's answer."""

    def __init__(self, publish: Publish) -> None:
        self._publish = publish
        self._routes: dict[tuple[str, str], _Route] = {}

    def register(self, name: str, type_: str, schema_name: str, handler: Handler, *, response_topic: str,
                 response_schema: str, certainly_valid: FastCheck | None = None,
                 encode: Encoder = encode_response, cache_size: int = 4096) -> None:
        """`certainly_valid` may short-cut the schema for the common case: it must return True only
        for messages the schema accepts (a property test holds it to that); anything else, valid or
        not, goes to the full validator, which has the last word and names the violation.
        `encode` may format the envelope faster than the JSON encoder; it must write the same bytes."""
        self._routes[(name, type_)] = _Route(schemas.validator(schema_name), handler, certainly_valid,
                                             response_topic, ResponseCheck(response_schema), encode,
                                             ReplyCache(cache_size), ReplyCounts())

    def handles(self, name: str, type_: str) -> bool:
        return (name, type_) in self._routes

    def counts(self, name: str, type_: str = "request") -> ReplyCounts:
        return self._routes[(name, type_)].counts

    def route(self, payload: bytes) -> Handled | Rejected:
        """Parse and validate; call the handler, send its answer, and return what happened (or why not)."""
        checked = self._check(payload)
        if isinstance(checked, Rejected):
            return checked
        route, message = checked
        body_hash = hash(payload)
        cached = route.replies.get(message.id)
        if cached is not None and cached[0] == body_hash:
            outcome = self._repeat(route, message, cached[1], cached[2])
        else:
            if cached is not None:
                log.warning("request id %s reused with a different body: handled as a new request", message.id)
            outcome = route.handler(message)
            if outcome.response is not None:
                self._send(route, message, outcome, body_hash)
        counts = route.counts
        if outcome.sent:
            counts.answered += 1
        elif outcome.no_answer == NOT_SENT:
            counts.not_sent += 1
        else:
            counts.silent += 1
        return Handled(message, outcome)

    def _check(self, payload: bytes) -> tuple[_Route, Message] | Rejected:
        if len(payload) > MAX_PAYLOAD:
            return Rejected("oversized", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
        try:
            obj = decode(payload)
        except (ValueError, UnicodeDecodeError) as exc:  # BadJson and JSONDecodeError are ValueErrors
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
            detail = schemas.first_error(route.validator, obj) or "invalid"
            if len(detail) > DETAIL_TEXT:
                detail = detail[:DETAIL_TEXT] + f"... ({len(detail)} characters)"
            return Rejected("schema_violation", detail, msg_id, name, obj.get("data"))
        return route, Message(obj["id"], name, type_, obj["data"])

    def _repeat(self, route: _Route, message: Message, reply: bytes, note: str | None) -> Outcome:
        log.info("request %s seen again (QoS 1 redelivery); repeating the same answer", message.id)
        repeated = "redelivery: the same answer repeated"
        outcome = Outcome(json.loads(reply)["data"], note=f"{repeated}; {note}" if note else repeated)
        self._hand_over(route, message, outcome, reply)
        return outcome

    def _send(self, route: _Route, message: Message, outcome: Outcome, body_hash: int) -> None:
        data = outcome.response
        assert data is not None
        reply = route.encode(message, data)
        problem = route.response_check.error(data, reply)
        if problem is not None:  # a bug of ours: never sent, journaled with what it was
            log.error("%s %s: our response fails its schema, not sent: %s", message.name, message.id, problem)
            outcome.no_answer, outcome.note = NOT_SENT, f"response fails its schema: {problem}"
            return
        if self._hand_over(route, message, outcome, reply):
            route.replies.put(message.id, body_hash, reply, outcome.note)

    def _hand_over(self, route: _Route, message: Message, outcome: Outcome, reply: bytes) -> bool:
        refused = self._publish(route.response_topic, reply)
        if refused is None:
            outcome.sent = True
            return True
        outcome.no_answer = NOT_SENT
        outcome.note = f"the MQTT link did not take the answer ({refused})"
        return False
