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

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from ..adapters.http_base import HttpError, JsonHandler, require_bearer
from ..core.rate_limit import RateLimiter

log = logging.getLogger("josev_bridge.api")

MAX_QUERY = 8192  # bytes of query string; more is a 400
MAX_BODY = 65536  # bytes of request body read and thrown away (no route takes one); more is a 413
# On every answer: no MIME sniffing (a JSON answer holding journal text must never be run as HTML),
# no framing, no referrer leaving the page.
SAFE_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


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
    raw: bytes | None = None  # a static file's bytes (the status page), sent as is instead of `body`
    content_type: str = "application/json"


class ApiError(HttpError):
    """What a route raises for a JSON error: `{"error": message}` with `status` (and `headers`)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, {"error": message}, headers)
        self.message = message

    def __str__(self) -> str:
        return self.message


Route = Callable[[Request], Response]


class ApiServer:
    """Serves `routes` (path -> handler) on a background thread until `stop()`.

    It binds `host:port` itself (the unit tests, bench/journal.py), or serves on `sock`, a listening
    socket bound by someone else: the API process serves on the one the daemon bound and handed down
    (api/supervisor.py), so a port in use is still the daemon's start-up error.
    """

    def __init__(self, host: str, port: int, token: str, routes: dict[str, Route],
                 rate_per_s: float = 20.0, *, sock: socket.socket | None = None,
                 public: dict[str, Route] | None = None) -> None:
        self.routes = routes
        # Served without the token (GET/HEAD only): the status page's HTML, CSS and script, which
        # hold no data. A browser's navigation to `/` cannot carry a Bearer header; every data
        # route still needs one, which the page's script sends.
        self.public = public or {}
        self._token = token
        self._limiter = RateLimiter(rate_per_s, max(1.0, 2 * rate_per_s))
        self._limiter_lock = threading.Lock()
        if sock is None:
            self.server = ThreadingHTTPServer((host, port), _handler_class(self))
        else:
            self.server = ThreadingHTTPServer(sock.getsockname()[:2], _handler_class(self), bind_and_activate=False)
            self.server.socket.close()  # the unbound socket TCPServer made; serve on the one given
            self.server.socket = sock
            self.server.server_address = sock.getsockname()
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
            url = urlsplit(target)
            path = url.path.rstrip("/") or "/"
            if method in ("GET", "HEAD") and path in self.public:
                return self.public[path](Request(url.path, {}, client))
            self._authenticate(authorization)
            if method != "GET":
                raise ApiError(405, f"method {method} not allowed; use GET", {"Allow": "GET"})
            route = self.routes.get(path)
            if route is None:
                raise ApiError(404, f"no such route: {url.path}")
            if len(url.query) > MAX_QUERY:
                raise ApiError(400, f"query string longer than {MAX_QUERY} bytes")
            return route(Request(url.path, _params(url.query), client))
        except HttpError as exc:
            return Response(exc.body, exc.status, exc.headers)
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
        require_bearer(authorization, self._token,  # an empty expected token matches nothing
                       message="missing or wrong bearer token (Authorization: Bearer <token from [api] token_file>)",
                       challenge='Bearer realm="josev-bridge"')


def _params(query: str) -> dict[str, list[str]]:
    try:
        return parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=200,
                        errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"query string not understood: {exc}") from None


def _handler_class(api: ApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        server_version = "josev-bridge"
        sys_version = ""
        log = logging.getLogger("josev_bridge.api")
        label = "API"
        max_body = MAX_BODY

        def _serve(self) -> None:
            # No route takes a body: it is read and thrown away, so the next request on this
            # keep-alive connection starts where the client put it (or refused, see read_body).
            if self.read_body() is None:
                return
            response = api.answer(self.command, self.path, self.headers.get("Authorization"), self.client_address[0])
            if response.raw is not None:
                self.send_raw(response)
                return
            self.send_json(response.status, response.body, {"Cache-Control": "no-store", **SAFE_HEADERS,
                                                            **response.headers})

        def send_raw(self, response: Response) -> None:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.raw or b"")))
            for name, value in {**SAFE_HEADERS, **response.headers}.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.raw or b"")

        do_GET = do_HEAD = _serve

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
            self.send_json(code, {"error": text}, close=True, reason=text)

    return Handler
