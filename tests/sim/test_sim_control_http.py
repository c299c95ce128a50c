"""The sim's control API over a real socket: tokens fail closed, request bodies cannot desynchronise it."""

from __future__ import annotations

import http.client
import threading
from typing import Iterator

import pytest

from josev_bridge.sim.control_api import STATUS_PATH, ControlServer, SimController
from josev_bridge.sim.mcu import SimulatedMcu

CHARGER = "josev-sim"


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
