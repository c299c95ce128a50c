"""HTTP plumbing shared by the two local servers: the bridge's API (`api/server.py`) and the
simulator's control API (`sim/control_api.py`).

Why one module: both must refuse the same things the same way, and two copies had already drifted
apart (the sim's bearer check was once a case-sensitive prefix). Shared here: the JSON answer (one
encoding, Content-Length, `Connection: close` when the rest of the stream cannot be trusted), the
bearer check's 401 with its WWW-Authenticate challenge, reading a request body whose end is known
(`core/http_guard.body_length`) and the staged close after refusing one. Each server keeps its
routes, its error texts and its log lines.

Why not in `core/http_guard`: that module stays pure (header values in, a decision out), testable
without a socket; this one writes to sockets, so it is an adapter. Standard library and `core/` only.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any

from ..core.http_guard import BodyRefused, bearer_matches, body_length

LINGER_BYTES = 1 << 20  # after refusing a body: at most this much of it read and discarded ...
LINGER_S = 2.0  # ... for at most this long, before the connection is closed


class HttpError(Exception):
    """An answer other than 200: `status`, its JSON `body` and any extra `headers` (Retry-After, Allow...)."""

    def __init__(self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def require_bearer(header: str | None, token: str, *, message: str, challenge: str) -> None:
    """Raise a 401 HttpError carrying `WWW-Authenticate: <challenge>` unless `header` is `Bearer <token>`.

    `core/http_guard.bearer_matches` decides (constant time; an empty expected token matches
    nothing), so a server cannot get the check right and the answer wrong, or the other way round.
    """
    if not bearer_matches(header, token):
        raise HttpError(401, {"error": message}, {"WWW-Authenticate": challenge})


def encode_json(body: object) -> bytes:
    """Compact UTF-8 JSON (RFC 8259 says JSON on the wire is UTF-8; escaping every non-ASCII
    character would only make the page longer)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def linger_close(sock: socket.socket, max_bytes: int = LINGER_BYTES, max_s: float = LINGER_S) -> None:
    """After an answer that refuses a body: send FIN, then read and discard what the client is still
    sending (bounded in bytes and time) until it closes. Closing with unread bytes makes the kernel
    send a RST, which can destroy the answer before the client has read it: RFC 9112 9.6's staged
    close (nginx's lingering_close). On Linux loopback the answer survives either way."""
    deadline = time.monotonic() + max_s
    try:
        sock.shutdown(socket.SHUT_WR)
        while max_bytes > 0 and (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            chunk = sock.recv(min(65536, max_bytes))
            if not chunk:
                return
            max_bytes -= len(chunk)
    except OSError:  # reset, timed out, already closed: the connection is going anyway
        return


class JsonHandler(BaseHTTPRequestHandler):
    """A request handler that answers in JSON and reads request bodies safely.

    Subclasses set `log` (their logger: the names are part of the log people grep), `label` (how
    their log lines name the server) and `max_body`.
    """

    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that stops mid-request (or idles on keep-alive) releases its thread after this
    # TCP_NODELAY: the head and the body go out in two writes; with Nagle the body waits for the
    # client's delayed ACK of the head, ~40 ms on every answer (Linux clients, loopback included).
    disable_nagle_algorithm = True
    log = logging.getLogger("josev_bridge.http")
    label = "HTTP"
    max_body = 65536

    def send_json(self, status: int, body: object, headers: Mapping[str, str] | None = None, *,
                  close: bool = False, reason: str | None = None) -> None:
        """One JSON answer. `close`: the rest of the stream is not a request (an unread body), so the
        answer says `Connection: close` and the connection ends after it."""
        data = encode_json(body)
        self.send_response(status, reason)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")  # (send_header also sets close_connection)
        self.end_headers()
        if self.command != "HEAD" and status >= 200 and status not in (204, 304):
            self.wfile.write(data)

    def read_body(self) -> bytes | None:
        """The request body (b"" without one), or None when there is nothing more to answer.

        A body whose end is unknown or that is over `max_body` is refused with a JSON 400/411/413
        and `Connection: close`, then the connection is closed in stages (`linger_close`): left in
        the stream, its bytes would be parsed as the next request on a keep-alive connection. A
        client that goes away in the middle of its body gets no answer (nobody is left to read it).
        """
        try:
            length = body_length(self.headers, self.max_body)
        except BodyRefused as exc:
            self.log.info("%s: %s %s from %s refused with %d: %s; connection closed", self.label, self.command,
                          self.path.split("?", 1)[0], self.client_address[0], exc.status, exc)
            self.send_json(exc.status, {"error": str(exc)}, close=True)
            linger_close(self.connection)
            return None
        raw = self.rfile.read(length) if length else b""
        if len(raw) < length:
            self.log.debug("%s: %s went away in the middle of a request body", self.label, self.client_address[0])
            self.close_connection = True
            return None
        return raw

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        self.log.debug("%s %s", self.client_address[0], format % args)
