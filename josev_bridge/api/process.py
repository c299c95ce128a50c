"""The API process: `python -m josev_bridge.api`, started and supervised by the daemon (api/supervisor.py).

It serves the routes on the listening socket the daemon bound and handed down, reading the journal
and the alert store read-only, as the CLI does: its pages are built under its own GIL, never under
the one of the thread answering get_event_timestamp.

Lean on purpose (a second Python process costs RSS on a small board): it imports the HTTP server,
the routes and what they read (config types, core/, the two stores), never paho, jsonschema or
pyserial.

Its stdin is a pipe from the daemon: the first line is its settings and token (ApiSettings), later
lines a new log level; EOF means the daemon is gone (even by SIGKILL) and the process stops. SIGTERM
stops it too (the daemon's stop, or systemd's, which signals every process of the unit). SIGINT and
SIGHUP are ignored: a Ctrl-C in a terminal or `systemctl kill -s HUP` reaches the whole group, and
when the API stops is the daemon's decision. SIGUSR1 dumps its threads' stacks, as in the daemon.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from ..adapters.log_output import configure_logging
from ..config import ChargerConfig, Config
from .alerts_api import PATH as ALERTS_PATH, AlertsApi
from .journal_api import PATH as MESSAGES_PATH, JournalApi
from .page_api import (
    DEVICE_MODEL_PATH,
    STATUS_PATH,
    TAIL_PATH,
    TIMELINE_PATH,
    DeviceModelApi,
    JournalTailApi,
    StatusApi,
    TimelineApi,
)
from .server import ApiServer, Route
from .static_files import static_routes
from .supervisor import ApiSettings

log = logging.getLogger("josev_bridge.api")


def build_routes(settings: ApiSettings) -> dict[str, Route]:
    """The routes, each on its own read-only connection (opened here, in this process)."""
    charger = ChargerConfig(**settings.charger)
    routes: dict[str, Route] = {
        MESSAGES_PATH: JournalApi(Path(settings.journal_path), charger.identity, charger.fleet_id)}
    if settings.alerts_path is not None:
        routes[ALERTS_PATH] = AlertsApi(Path(settings.alerts_path), Config(charger=charger))
    routes[TAIL_PATH] = JournalTailApi(Path(settings.journal_path), charger.identity, charger.fleet_id)
    if settings.runtime_dir is not None:
        routes[STATUS_PATH] = StatusApi(Path(settings.runtime_dir), charger.identity)
    if settings.state_dir is not None:
        routes[TIMELINE_PATH] = TimelineApi(Path(settings.journal_path), Path(settings.state_dir))
        routes[DEVICE_MODEL_PATH] = DeviceModelApi(Path(settings.state_dir))
    return routes


def control_lines(fd: int) -> Iterator[bytes]:
    """The daemon's lines on `fd`, until EOF. Read with os.read, not through sys.stdin: a thread
    blocked in a BufferedReader holds its lock, and the interpreter's shutdown then aborts on it
    ("Fatal Python error: _enter_buffered_busy"), a crash at every stop."""
    pending = b""
    while chunk := os.read(fd, 4096):
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line


def follow_control(lines: Iterator[bytes], stop: threading.Event) -> None:
    """Apply what the daemon sends (a new log level) until its end of the pipe closes; then stop."""
    for line in lines:
        try:
            level = json.loads(line)["log_level"]
            logging.getLogger().setLevel(level)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("API process: ignoring a control line it does not understand (%s)", exc)
    if not stop.is_set():
        log.warning("API process: the daemon's end of its pipe closed (the daemon is gone); stopping")
        stop.set()


def main() -> int:
    if sys.stdin.isatty():
        print("This is the bridge's API process; `josev-bridge run` starts it, with its settings on a pipe.",
              file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lines = control_lines(sys.stdin.fileno())
    first = next(lines, None)
    if first is None:  # the daemon went away before it said anything
        return 0
    try:
        settings = ApiSettings.from_line(first)
    except (ValueError, TypeError) as exc:
        print(f"API process: its settings line is not understood ({exc}); is this the daemon's pipe?", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        sock = socket.socket(fileno=settings.listen_fd)
        routes = build_routes(settings)
        server = ApiServer("", 0, settings.token, routes, settings.rate_limit_per_s, sock=sock,
                           public=static_routes())
    except Exception as exc:  # one line, as the daemon's start-up errors; the daemon starts it again later
        log.error("API process cannot start: %s: %s", type(exc).__name__, exc)
        return 1
    server.start()
    threading.Thread(target=follow_control, args=(lines, stop), name="api-control", daemon=True).start()
    stop.wait()
    server.stop()
    for route in routes.values():
        close = getattr(route, "close", None)
        if close is not None:
            close()
    return 0
