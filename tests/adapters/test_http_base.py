"""The HTTP plumbing both local servers share (adapters/http_base), on a real socket."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from josev_bridge.adapters.http_base import HttpError, JsonHandler, encode_json, require_bearer


class _Echo(JsonHandler):
    """A minimal server on the shared handler: the bearer check, then the body's length as JSON."""

    max_body = 16

    def _serve(self) -> None:
        raw = self.read_body()
        if raw is None:
            return
        try:
            require_bearer(self.headers.get("Authorization"), "tok", message="no", challenge='Bearer realm="t"')
        except HttpError as exc:
            self.send_json(exc.status, exc.body, exc.headers)
            return
        self.send_json(200, {"length": len(raw), "text": "é"})

    do_GET = do_HEAD = do_POST = _serve


@pytest.fixture
def address() -> Iterator[tuple[str, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server.server_address[:2]
    server.shutdown()
    server.server_close()


def call(address, method: str, headers: dict[str, str], body: bytes | None = None):
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request(method, "/", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_a_wrong_or_missing_token_is_a_401_with_the_challenge(address):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Bearer "}):
        status, head, body = call(address, "GET", headers)
        assert (status, head["WWW-Authenticate"], body) == (401, 'Bearer realm="t"', b'{"error":"no"}')


def test_the_answer_is_compact_utf8_json_and_head_has_no_body(address):
    status, head, body = call(address, "POST", {"Authorization": "Bearer tok"}, b"12345")
    assert status == 200 and body == encode_json({"length": 5, "text": "é"}) == '{"length":5,"text":"é"}'.encode()
    assert head["Content-Type"] == "application/json" and int(head["Content-Length"]) == len(body)
    status, head, body = call(address, "HEAD", {"Authorization": "Bearer tok"})
    assert status == 200 and body == b"" and int(head["Content-Length"]) > 0


def test_a_body_over_the_limit_is_refused_and_the_connection_closed(address):
    status, head, body = call(address, "POST", {"Authorization": "Bearer tok"}, b"x" * 17)
    assert status == 413 and head["Connection"] == "close" and b"larger than 16 bytes" in body
