"""The sim's control API over a real socket: tokens fail closed, request bodies cannot desynchronise it."""

from __future__ import annotations

import http.client
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from josev_bridge.harness.raw_http import exchange, request
from josev_bridge.sim.control_api import COMMAND_PREFIX, MAX_BODY, STATUS_PATH, ControlServer, SimController
from josev_bridge.sim.mcu import SimulatedMcu

CHARGER = "josev-sim"
AUTH = {"Authorization": "Bearer s3cret"}
PLUG = json.dumps({"target": {"charger_id": CHARGER}, "event": {"evse_id": 1}}).encode()
SMUGGLED = request("POST", COMMAND_PREFIX + "unplug-connector", {**AUTH, "Content-Length": str(len(PLUG))}, PLUG)


@pytest.fixture
def serve() -> Iterator:
    """Start a ControlServer with a given token on a free loopback port; stopped at the end."""
    servers: list[ControlServer] = []

    def start(token: str) -> ControlServer:
        server = ControlServer(("127.0.0.1", 0), SimController(SimulatedMcu(evse_count=1), threading.RLock(), None,
                                                                CHARGER, token))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def status_for(server: ControlServer, authorization: str) -> int:
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    try:
        conn.request("GET", STATUS_PATH, headers={"Authorization": authorization})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.mark.parametrize("token", ["", " \n"])
def test_an_empty_token_authorizes_nothing(serve, token):
    server = serve(token)
    assert [status_for(server, h) for h in ("Bearer ", "Bearer", "Bearer  ", "Bearer x")] == [401] * 4


def test_the_token_authorizes(serve):
    server = serve("s3cret")
    assert status_for(server, "Bearer s3cret") == 200 and status_for(server, "Bearer s3cre") == 401


@pytest.fixture
def sim_api(serve, caplog, capsys):
    """A live control API with token s3cret; after the test, no handler crashed (no traceback)."""
    caplog.set_level(logging.DEBUG)
    server = serve("s3cret")
    yield server.server_address[:2]
    assert not [r for r in caplog.records if r.exc_info], "a handler raised"
    assert "Traceback" not in capsys.readouterr().err


def plug(headers: dict[str, str], body: bytes) -> bytes:
    return request("POST", COMMAND_PREFIX + "plug-connector", {**AUTH, **headers}, body)


def assert_refused_and_closed(answers, status: int) -> None:
    """One JSON error, `Connection: close`, and nothing after it on the connection."""
    assert [a.status for a in answers] == [status], [(a.status, a.body) for a in answers]
    assert answers[0].headers["connection"] == "close" and "error" in answers[0].json()


def assert_still_answers(address) -> None:
    answers = exchange(address, request("GET", STATUS_PATH, {**AUTH, "Connection": "close"}))
    assert [a.status for a in answers] == [200]


@pytest.mark.parametrize("length", ["abc", "-5", "+5", "1_0"])
def test_a_bad_content_length_is_400_and_the_connection_closed(sim_api, length):
    assert_refused_and_closed(exchange(sim_api, plug({"Content-Length": length}, PLUG) + SMUGGLED), 400)
    assert_still_answers(sim_api)


def test_a_body_over_the_limit_is_413_and_never_parsed_as_a_request(sim_api):
    body = b" " * MAX_BODY + SMUGGLED
    assert_refused_and_closed(exchange(sim_api, plug({"Content-Length": str(len(body))}, body)), 413)
    assert_still_answers(sim_api)


def test_a_chunked_body_is_refused_not_parsed_as_requests(sim_api):
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)
    assert_refused_and_closed(exchange(sim_api, plug({"Transfer-Encoding": "chunked"}, chunked)), 411)
    assert_still_answers(sim_api)


def test_bodies_within_the_limit_keep_a_keep_alive_connection_in_step(sim_api):
    data = (plug({"Content-Length": str(len(PLUG))}, PLUG)
            + request("GET", STATUS_PATH, {**AUTH, "Content-Length": str(len(SMUGGLED))}, SMUGGLED)
            + request("GET", STATUS_PATH, {**AUTH, "Connection": "close"}))
    answers = exchange(sim_api, data)
    assert [a.status for a in answers] == [200, 200, 200]
    assert answers[2].json()["evses"][0]["connected"] is True  # plugged, and the body never ran as unplug
