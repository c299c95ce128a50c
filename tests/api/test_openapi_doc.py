"""docs/api.openapi.json: a valid OpenAPI 3.1 document, in step with the code, and true of the live server.

The document is checked against the official OpenAPI 3.1 JSON Schema (the copy schemathesis ships;
openapi-spec-validator is not a dependency), its own JSON Schemas against Draft 2020-12, its `$ref`s
for resolving. Then a real `ApiServer` + `JournalApi` over a real journal file answers real HTTP
requests, and every answer (200 pages, 400, 401, 404, 405, 429) is validated against the schema the
document gives for that status. The schemathesis run against the daemon is tests/e2e/test_api_schemathesis.py.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis.specs.openapi.definitions import OPENAPI_31

from josev_bridge.adapters.journal_store import JournalStore
from josev_bridge.api.journal_api import PATH, JournalApi
from josev_bridge.api.server import ApiServer
from josev_bridge.core import journal_query
from josev_bridge.core.journal_entry import Direction, JournalEntry, NoAnswer, to_row
from josev_bridge.core.journal_query import Position, encode_cursor
from josev_bridge.core.timestamps import parse_us

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "api.openapi.json"
DOC = json.loads(DOC_PATH.read_text())
DOC_URI = "urn:josev-bridge:api.openapi.json"
REGISTRY = Registry().with_resource(DOC_URI, Resource(contents=DOC, specification=DRAFT202012))
OPERATION = DOC["paths"][PATH]["get"]
IDENTITY, FLEET_ID, TOKEN = "CP-0042", 42, "test-token-123"
NOW_US = parse_us("2026-02-17T12:00:00Z")


def resolve(node: dict) -> dict:
    """Follow a local `$ref` (components) until a node without one."""
    while "$ref" in node:
        pointer = node["$ref"].removeprefix("#/").split("/")
        node = DOC
        for part in pointer:
            node = node[part]
    return node


def validator_for(status: int) -> Draft202012Validator:
    """The JSON Schema of the body the document promises for `status`, with format checking on."""
    response = resolve(OPERATION["responses"][str(status)])
    schema = response["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = {"$ref": DOC_URI + schema["$ref"]}
    return Draft202012Validator(schema, registry=REGISTRY, format_checker=Draft202012Validator.FORMAT_CHECKER)


# -- the document itself -------------------------------------------------------------------------------
def test_document_is_valid_openapi_3_1():
    assert DOC["openapi"].startswith("3.1.")
    Draft202012Validator(OPENAPI_31).validate(DOC)


def test_every_embedded_schema_is_valid_draft_2020_12_and_every_ref_resolves():
    schemas = list(DOC["components"]["schemas"].values())
    schemas += [p["schema"] for p in OPERATION["parameters"]]
    schemas += [h["schema"] for r in DOC["components"]["responses"].values() for h in r.get("headers", {}).values()]
    for schema in schemas:
        Draft202012Validator.check_schema(schema)

    def refs(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)
    found = list(refs(DOC))
    assert found
    for ref in found:
        assert ref.startswith("#/components/"), ref
        resolve({"$ref": ref})  # raises KeyError when it names nothing


def test_the_examples_in_the_document_fit_their_schemas():
    validator_for(200).validate(OPERATION["responses"]["200"]["content"]["application/json"]["example"])
    error = DOC["components"]["schemas"]["Error"]
    Draft202012Validator(error).validate(error["example"])
    for parameter in OPERATION["parameters"]:
        if "example" in parameter:
            Draft202012Validator(parameter["schema"]).validate(parameter["example"])


def test_parameters_match_the_query_language():
    params = {p["name"]: p for p in OPERATION["parameters"]}
    assert set(params) == journal_query.PARAMETERS
    assert all(p["in"] == "query" for p in params.values())
    assert [n for n, p in params.items() if p.get("required")] == ["chargerId"]
    limit = params["limit"]["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, journal_query.MAX_LIMIT,
                                                                       journal_query.DEFAULT_LIMIT)
    for name in ("messageType", "messageType[]"):
        p = params[name]
        assert (p["style"], p["explode"], p["schema"]["type"]) == ("form", True, "array")
        assert f"at most {journal_query.MAX_TYPES} distinct types" in params["messageType"]["description"]
    for name in ("startTimestamp", "endTimestamp"):
        assert params[name]["schema"]["format"] == "date-time"
    assert DOC["components"]["securitySchemes"]["bearerAuth"] == {
        **DOC["components"]["securitySchemes"]["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert DOC["security"] == [{"bearerAuth": []}]


def test_row_schema_matches_to_row():
    row_schema = DOC["components"]["schemas"]["OcppMessage"]
    row = to_row(1, JournalEntry(NOW_US, Direction.IN, "x"), IDENTITY, FLEET_ID)
    assert set(row_schema["required"]) == set(row) == set(row_schema["properties"])
    assert set(DOC["components"]["schemas"]["NoAnswer"]["enum"]) == {a.value for a in NoAnswer}
    assert set(row_schema["properties"]["direction"]["enum"]) == {d.value for d in Direction}


# -- the live server's answers -------------------------------------------------------------------------
def entries() -> list[JournalEntry]:
    """One of every kind the daemon writes, a minute apart, ending 10 s before NOW_US."""
    kinds = [
        JournalEntry(0, Direction.IN, "get_event_timestamp", "ocpp/cs", "0d5e4c8a-1b7f-4f3e-9a51-5d2c3b1e8f60",
                     {"event_type": "TxEventStart", "trigger_reason": "EVConnected"},
                     {"timestamp": "2026-02-17T10:20:30.123Z"}, 412),
        JournalEntry(0, Direction.IN, "get_event_timestamp", "ocpp/cs", "6a0e3c2b-4d1f-4a8e-b7c9-0f1e2d3c4b5a",
                     {"event_type": "TxEventStop", "trigger_reason": "DataSigned"}, NoAnswer.NOT_SUPPORTED),
        JournalEntry(0, Direction.IN, "get_event_timestamp", "ocpp/cs", "7b1f4d3c-5e2a-4b9f-8c0d-1a2b3c4d5e6f",
                     {"event_type": "TxEventStop", "trigger_reason": "Authorized", "evse_id": 2},
                     NoAnswer.NO_EVENT_RECORDED),
        JournalEntry(0, Direction.IN, "unknown", "ocpp/cs", None, "{not json", NoAnswer.INVALID_MESSAGE,
                     note="malformed JSON: Expecting property name"),
        JournalEntry(0, Direction.IN, "get_event_timestamp", "ocpp/cs", "x", [1, 2], NoAnswer.INVALID_MESSAGE,
                     note="schema violation"),
        JournalEntry(0, Direction.IN, "authorize", "ocpp/cs", "8c2a5e4d-6f3b-4c0a-9d1e-2b3c4d5e6f70", {},
                     NoAnswer.IGNORED, note="handled by another service"),
        JournalEntry(0, Direction.IN, "set_variable_validate", "josev/cs", "9d3b6f5e-7a4c-4d1b-8e2f-3c4d5e6f7081",
                     {"component": "JOSEV_CTRLR", "variable": "EnableGetEventTimestampRequest", "value": "false"},
                     {"status": "accepted"}, 950),
        JournalEntry(0, Direction.OUT, "status", "josev-bridge/CP-0042/status", None, "online"),
        JournalEntry(0, Direction.EVENT, "device_model_change",
                     payload={"component": "JOSEV_CTRLR", "variable": "EnableGetEventTimestampRequest",
                              "oldValue": "true", "newValue": "false", "source": "local", "user": "alice"}),
        JournalEntry(0, Direction.EVENT, "mcu_link", payload={"state": "up", "mcuBootId": "0000abcd",
                                                               "firmware": "sim-1.0", "lostRecords": 0}),
    ]
    rows = [kinds[i % len(kinds)] for i in range(120)]
    return [JournalEntry(NOW_US - 10_000_000 - (len(rows) - i) * 60_000_000, *_fields(e)[1:])
            for i, e in enumerate(rows)]


def _fields(e: JournalEntry) -> tuple:
    return (e.created_us, e.direction, e.message_type, e.topic, e.correlation_id, e.payload, e.response,
            e.latency_us, e.note)


@pytest.fixture(scope="module")
def journal(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("api") / "journal.sqlite"
    store = JournalStore(path)
    store.insert(entries())
    store.close()
    return path


def serve(journal: Path, rate_per_s: float = 1000.0) -> tuple[ApiServer, JournalApi]:
    api = JournalApi(journal, IDENTITY, FLEET_ID, clock_us=lambda: NOW_US)
    server = ApiServer("127.0.0.1", 0, TOKEN, {PATH: api}, rate_per_s=rate_per_s)
    server.start()
    return server, api


def get(server: ApiServer, path: str, params: list[tuple[str, str]] | None = None, *, method: str = "GET",
        token: str | None = TOKEN) -> tuple[int, dict, dict]:
    host, port = server.address
    url = f"http://{host}:{port}{path}" + (f"?{urlencode(params)}" if params else "")
    request = urllib.request.Request(url, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, headers, body = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, headers, body = exc.code, dict(exc.headers), exc.read()
    assert headers["Content-Type"] == "application/json"
    assert str(status) in OPERATION["responses"], f"status {status} not documented"
    document = json.loads(body)
    validator_for(status).validate(document)
    return status, headers, document


@pytest.fixture(scope="module")
def server(journal):  # one server for the module: stopping one takes up to 0.5 s (serve_forever's poll)
    srv, api = serve(journal)
    yield srv
    srv.stop()
    api.close()


def test_pages_of_every_kind_of_row_validate(server):
    base = [("chargerId", IDENTITY)]
    seen: list[int] = []
    cursor = None
    while True:
        status, _, page = get(server, PATH, base + ([("nextPageCursor", cursor)] if cursor else []))
        assert status == 200
        seen += [row["id"] for row in page["data"]]
        cursor = page["pagination"]["nextPageCursor"]
        if not page["pagination"]["hasNextPage"]:
            assert cursor is None
            break
    assert len(seen) == len(set(seen)) == 120  # every row of the last 24 h, once, in 3 pages of 50
    responses = set()
    for limit, types in ((500, []), (7, ["get_event_timestamp"]), (3, ["mcu_link", "device_model_change"])):
        params = [("chargerId", str(FLEET_ID)), ("limit", str(limit))] + [("messageType[]", t) for t in types]
        status, _, page = get(server, PATH, params)
        assert status == 200 and len(page["data"]) == min(limit, 120)
        responses |= {json.dumps(r["messageResponse"]) for r in page["data"]}
    assert {'"NotSupported"', '"NoEventRecorded"', '"InvalidMessage"', '"Ignored"', "null"} <= responses


@pytest.mark.parametrize("params", [
    [("chargerId", IDENTITY), ("limit", "0")],
    [("chargerId", IDENTITY), ("limit", "501")],
    [("chargerId", IDENTITY), ("limit", "ten")],
    [("limit", "5")],
    [("chargerId", IDENTITY), ("startTimestamp", "yesterday")],
    [("chargerId", IDENTITY), ("startTimestamp", "2026-02-01T00:00:00Z")],
    [("chargerId", IDENTITY), ("messageType", "")],
    [("chargerId", IDENTITY), ("nextPageCursor", "bm90IGEgY3Vyc29y")],
    [("chargerId", IDENTITY), ("chargerID", IDENTITY)],
    [("chargerId", IDENTITY), ("limit", "9" * 5000)],  # was a 500: int() refuses more than 4300 digits
    [("chargerId", IDENTITY), ("nextPageCursor", encode_cursor(Position(10**30, 1)))],  # was a 500: not int64
    [("chargerId", IDENTITY), ("nextPageCursor", encode_cursor(Position(1, 2**63)))],
])
def test_bad_parameters_are_documented_400s(server, params):
    status, _, body = get(server, PATH, params)
    assert status == 400, body


def test_limit_with_leading_zeros_is_still_a_limit(server):
    status, _, page = get(server, PATH, [("chargerId", IDENTITY), ("limit", "0000003")])
    assert status == 200 and len(page["data"]) == 3


def test_auth_route_charger_and_method_errors_validate(server):
    assert get(server, PATH, [("chargerId", IDENTITY)], token=None)[0] == 401
    status, headers, _ = get(server, PATH, [("chargerId", IDENTITY)], token="wrong")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert get(server, PATH, [("chargerId", "CP-9999")])[0] == 404
    for method in ("POST", "DELETE", "TRACE", "PROPFIND"):  # TRACE and PROPFIND were http.server's HTML 501
        status, headers, _ = get(server, PATH, [("chargerId", IDENTITY)], method=method)
        assert status == 405 and headers["Allow"] == "GET", method
    assert get(server, PATH, [("chargerId", IDENTITY)], method="TRACE", token=None)[0] == 401
    host, port = server.address  # an unknown route: not an operation of the document, but the same Error body
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/api/nothing",
                                                      headers={"Authorization": f"Bearer {TOKEN}"}), timeout=10)
    assert info.value.code == 404
    validator_for(404).validate(json.loads(info.value.read()))


def test_http_servers_own_errors_are_json_too(server):
    """A request http.server refuses before it reaches the API (here: too many headers) still gets {"error": ...}."""
    headers = b"".join(b"X-%d: 1\r\n" % i for i in range(101))
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(b"GET /api/ocpp-messages HTTP/1.1\r\n" + headers + b"\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"431" and b"Content-Type: application/json" in head
    assert set(json.loads(body)) == {"error"}


def test_rate_limited_answer_validates(journal):
    srv, api = serve(journal, rate_per_s=0.01)  # a burst of one request, then 429
    try:
        assert get(srv, PATH, [("chargerId", IDENTITY)])[0] == 200
        status, headers, _ = get(srv, PATH, [("chargerId", IDENTITY)])
        assert status == 429 and int(headers["Retry-After"]) >= 1
    finally:
        srv.stop()
        api.close()
