"""The API token file fails closed: a file left empty by a crash is replaced, never matched by `Bearer `.

Against the live server over a real socket; the token comes from load_or_create_token as the daemon's does.
"""

from __future__ import annotations

import http.client
import logging
import stat

import pytest

from josev_bridge.api.server import ApiServer, Response
from josev_bridge.api.token_file import load_or_create_token


def status_for(server: ApiServer, authorization: str | None) -> int:
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        conn.request("GET", "/x", headers={"Authorization": authorization} if authorization is not None else {})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.mark.parametrize("content", [b"", b"  \n\t\n", b"\xff\xfe\x00garbled"])
def test_an_empty_token_file_is_replaced_and_an_empty_bearer_never_accepted(tmp_path, caplog, content):
    path = tmp_path / "api-token"
    path.write_bytes(content)  # what a crash between creating and writing the file leaves
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="josev_bridge.api"):
        token = load_or_create_token(path)
    assert token and path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert any(str(path) in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert all(token not in r.getMessage() for r in caplog.records)  # a secret never reaches the log
    assert sorted(p.name for p in tmp_path.iterdir()) == ["api-token"]  # no temporary file left behind

    server = ApiServer("127.0.0.1", 0, token, {"/x": lambda request: Response({"ok": True})}, rate_per_s=1e6)
    server.start()
    try:
        assert [status_for(server, h) for h in ("Bearer ", "Bearer", "bearer  ", "", None)] == [401] * 5
        assert status_for(server, f"Bearer {token}") == 200
    finally:
        server.stop()


def test_a_server_given_an_empty_token_refuses_everything(tmp_path):
    """Defence in depth: the comparison itself never lets an empty expected token match."""
    server = ApiServer("127.0.0.1", 0, " \n", {"/x": lambda request: Response({"ok": True})}, rate_per_s=1e6)
    server.start()
    try:
        assert [status_for(server, h) for h in ("Bearer ", "Bearer", "Bearer  ", "Bearer x")] == [401] * 4
    finally:
        server.stop()


def test_a_token_file_with_a_token_is_kept(tmp_path):
    path = tmp_path / "api-token"
    path.write_text("kept-token\n")
    path.chmod(0o600)
    assert load_or_create_token(path) == "kept-token" and path.read_text() == "kept-token\n"
