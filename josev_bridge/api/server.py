"""The local HTTP API: the standard library's threading server, bearer-token auth, JSON in Flipturn's style.

Why the standard library: the API serves a technician's laptop over an SSH tunnel and a fleet
agent on loopback, a few requests a minute; http.server costs no dependency, no memory beyond a
thread per open connection, and nothing to update on the board. What a framework would add
(routing, auth, errors) is the 100 lines here.

Every answer is JSON; errors are `{"error": "..."}` with 400 (the message names the parameter),
401 (no or wrong token), 404 (unknown route or charger), 405, 429 (with Retry-After), 500; and,
with `Connection: close`, 400 (bad Content-Length), 411 (Transfer-Encoding) and 413 (body over 64 KiB).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ..config import API_TOKEN_FIX, DamagedSecret, EmptySecret, read_secret
from ..core.http_guard import BodyRefused, bearer_matches, body_length
from ..core.rate_limit import RateLimiter

log = logging.getLogger("josev_bridge.api")

MAX_QUERY = 8192  # bytes of query string; more is a 400
MAX_BODY = 65536  # bytes of request body read and thrown away (no route takes one); more is a 413
LINGER_BYTES = 1 << 20  # after refusing a body: at most this much of it read and discarded ...
LINGER_S = 2.0  # ... for at most this long, before the connection is closed


@dataclass(frozen=True, slots=True)
class Request:
    path: str
    params: dict[str, list[str]]
    client: str


@dataclass(frozen=True, slots=True)
class Response:
    body: dict
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


Route = Callable[[Request], Response]


TOKEN_KEY = "[api] token_file"


def load_or_create_token(path: Path) -> str:
    """The bearer token: read from a 0600 file, or created there (random, 0600) at first start.

    A file left empty by a crash between its creation and its write, or garbled, is replaced with a
    new token (one WARNING naming the file): the daemon made it, nobody can hold its token, and an empty token
    must never be the one compared against `Authorization: Bearer `.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            return read_secret(str(path), TOKEN_KEY, fix=API_TOKEN_FIX)
        except DamagedSecret as exc:
            why = "empty (cut short by a crash?)" if isinstance(exc, EmptySecret) else "garbled (corrupted?)"
            log.warning("API token file %s is %s; writing a new token into it", path, why)
            return _replace_token(path)
    except OSError as exc:  # a full or read-only disk, or no permission: the daemon says which, with the path
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    token = secrets.token_urlsafe(32)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:  # e.g. a full disk: the empty file left behind is replaced at the next start
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    log.warning("API token created in %s (mode 0600); send it as 'Authorization: Bearer <token>'", path)
    return token


def _replace_token(path: Path) -> str:
    """A new token written beside `path` (0600), synced, then renamed over it: a crash leaves the old
    file or the new one, never a half-written token."""
    token = secrets.token_urlsafe(32)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp: mode 0600
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(token + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:  # a full or read-only disk: exit 1, systemd tries again (not a config error)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    return token


class ApiServer:
    """Serves `routes` (path -> handler) on a background thread until `stop()`."""

    def __init__(self, host: str, port: int, token: str, routes: dict[str, Route],
                 rate_per_s: float = 20.0) -> None:
        self.routes = routes
        self._token = token
        self._limiter = RateLimiter(rate_per_s, max(1.0, 2 * rate_per_s))
        self._limiter_lock = threading.Lock()
        self.server = ThreadingHTTPServer((host, port), _handler_class(self))
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="api", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        return self.server.server_address[:2]  # type: ignore[return-value]

    def start(self) -> None:
        self._thread.start()
        log.info("API listening on http://%s:%d", *self.address)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- per request ------------------------------------------------------------------------------
    def answer(self, method: str, target: str, authorization: str | None, client: str) -> Response:
        try:
            self._admit(client)
            self._authenticate(authorization)
            if method != "GET":
                raise ApiError(405, f"method {method} not allowed; use GET", {"Allow": "GET"})
            url = urlsplit(target)
            route = self.routes.get(url.path.rstrip("/") or "/")
            if route is None:
                raise ApiError(404, f"no such route: {url.path}")
            if len(url.query) > MAX_QUERY:
                raise ApiError(400, f"query string longer than {MAX_QUERY} bytes")
            return route(Request(url.path, _params(url.query), client))
        except ApiError as exc:
            return Response({"error": str(exc)}, exc.status, exc.headers)
        except Exception:
            log.exception("API request %s %s failed", method, urlsplit(target).path)
            return Response({"error": "internal error; see the bridge's log"}, 500)

    def _admit(self, client: str) -> None:
        with self._limiter_lock:
            if self._limiter.allow(client, time.monotonic()):
                return
            wait = self._limiter.retry_after(client)
        raise ApiError(429, "too many requests; slow down", {"Retry-After": str(max(1, round(wait + 0.5)))})

    def _authenticate(self, authorization: str | None) -> None:
        if not bearer_matches(authorization, self._token):  # an empty expected token matches nothing
            raise ApiError(401, "missing or wrong bearer token (Authorization: Bearer <token from [api] token_file>)",
                           {"WWW-Authenticate": 'Bearer realm="josev-bridge"'})


def _params(query: str) -> dict[str, list[str]]:
    try:
        return parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=200,
                        errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"query string not understood: {exc}") from None


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


def _handler_class(api: ApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "josev-bridge"
        sys_version = ""
        timeout = 30  # an idle keep-alive connection is closed after this
        # TCP_NODELAY: the head and the body go out in two writes; with Nagle the body waits for the
        # client's delayed ACK of the head, ~40 ms on every answer (Linux clients, loopback included).
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            if not self._skip_body():
                return
            response = api.answer(self.command, self.path, self.headers.get("Authorization"), self.client_address[0])
            body = json.dumps(response.body, ensure_ascii=False, separators=(",", ":")).encode()
            self.send_response(response.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = _serve

        def _skip_body(self) -> bool:
            """Read and throw away the request body (no route uses one), so the next request on this
            keep-alive connection starts where the client put it. A body whose end is unknown or that
            is too large is refused and the connection closed: left in the stream, its bytes would be
            parsed as a request. False: nothing more to answer."""
            try:
                length = body_length(self.headers, MAX_BODY)
            except BodyRefused as exc:
                log.info("API: %s %s from %s refused with %d: %s; connection closed", self.command,
                         urlsplit(self.path).path, self.client_address[0], exc.status, exc)
                self.send_error(exc.status, str(exc))
                linger_close(self.connection)
                return False
            if length and len(self.rfile.read(length)) < length:
                log.debug("API: %s went away in the middle of a request body", self.client_address[0])
                self.close_connection = True  # nobody left to answer
                return False
            return True

        def __getattr__(self, name: str):
            # http.server looks up do_<METHOD> and answers a method it finds none for with an HTML 501;
            # every method (TRACE, PROPFIND, ...) goes through answer() instead: 401 or a JSON 405.
            if name.startswith("do_"):
                return self._serve
            raise AttributeError(name)

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """http.server's own errors (bad request line, header too long or too many): JSON, not HTML."""
            text = message or self.responses.get(code, ("error",))[0]
            self.log_error("code %d, message %s", code, text)
            body = json.dumps({"error": text}, ensure_ascii=False).encode()
            self.send_response(code, text)
            self.send_header("Connection", "close")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.close_connection = True
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
            log.debug("%s %s", self.client_address[0], format % args)

    return Handler
