"""Request bodies cannot desynchronise the API's keep-alive connections, nor crash a handler.

The API takes no bodies; the ones that come are read and thrown away so the next request starts
where the client put it. A body whose end is unknown (a bad or negative Content-Length, a
Transfer-Encoding) or that is too large to read is refused with a JSON error and the connection
closed: left in the stream, its bytes would be parsed as a second request. Against the live
server over a raw socket, so the exact bytes reach it.
"""

from __future__ import annotations

import logging

import pytest

from josev_bridge.api.server import MAX_BODY, ApiServer, Response
from josev_bridge.harness.raw_http import exchange, request

AUTH = {"Authorization": "Bearer t"}
SMUGGLED = request("GET", "/smuggled", AUTH)  # answered 404 if it is ever parsed as a request


@pytest.fixture
def server(caplog, capsys):
    """The live API; after the test, no handler crashed (no traceback logged or printed)."""
    api = ApiServer("127.0.0.1", 0, "t", {"/x": lambda r: Response({"ok": True})}, rate_per_s=1e6)
    api.start()
    caplog.set_level(logging.DEBUG)
    yield api
    api.stop()
    assert not [r for r in caplog.records if r.exc_info], "a handler raised"
    assert "Traceback" not in capsys.readouterr().err


def assert_refused_and_closed(answers, status: int) -> None:
    """One JSON error, `Connection: close`, and nothing after it on the connection."""
    assert [a.status for a in answers] == [status], [(a.status, a.body) for a in answers]
    assert answers[0].headers["connection"] == "close" and "error" in answers[0].json()


def assert_still_answers(server: ApiServer) -> None:
    answers = exchange(server.address, request("GET", "/x", {**AUTH, "Connection": "close"}))
    assert [a.status for a in answers] == [200]


@pytest.mark.parametrize("length", ["abc", "-5", "+5", "1_0", "0x10", "5 5"])
def test_a_bad_content_length_is_400_and_the_connection_closed(server, length):
    answers = exchange(server.address, request("GET", "/x", {**AUTH, "Content-Length": length}, b"hello") + SMUGGLED)
    assert_refused_and_closed(answers, 400)
    assert_still_answers(server)


def test_conflicting_content_lengths_are_400_and_the_connection_closed(server):
    data = request("GET", "/x", AUTH).replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n")
    assert_refused_and_closed(exchange(server.address, data + b"hello" + SMUGGLED), 400)
    assert_still_answers(server)


def test_a_body_over_the_limit_is_413_and_never_parsed_as_a_request(server):
    body = b"x" * MAX_BODY + SMUGGLED  # a reader that stops at the limit finds a request after it
    answers = exchange(server.address, request("GET", "/x", {**AUTH, "Content-Length": str(len(body))}, body))
    assert_refused_and_closed(answers, 413)
    assert_still_answers(server)


def test_a_chunked_body_is_refused_not_parsed_as_requests(server):
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)
    answers = exchange(server.address, request("GET", "/x", {**AUTH, "Transfer-Encoding": "chunked"}, chunked))
    assert_refused_and_closed(answers, 411)
    assert_still_answers(server)


@pytest.mark.parametrize("size", [1, len(SMUGGLED), MAX_BODY])
def test_a_body_on_get_is_read_and_thrown_away_on_keep_alive(server, size):
    body = (SMUGGLED * (size // len(SMUGGLED) + 1))[:size]
    data = (request("GET", "/x", {**AUTH, "Content-Length": str(size)}, body)
            + request("GET", "/x", {**AUTH, "Connection": "close"}))
    assert [a.status for a in exchange(server.address, data)] == [200, 200]


def test_the_refusal_reaches_a_client_still_sending_its_body(server):
    """The 413 reaches a client that is still writing its body, and the connection ends."""
    body = b"y" * (8 * MAX_BODY)
    answers = exchange(server.address, request("GET", "/x", {**AUTH, "Content-Length": str(len(body))}, body))
    assert_refused_and_closed(answers, 413)
