"""`josev-bridge sim`: run a simulated MCU on a pty with its control API until SIGTERM/SIGINT.

Prints one JSON `ready` line on stdout once the pty link and the API are up, so a test or demo can
start the sim and learn the pty, the API address and the token file without guessing or sleeping.
Its log lines go to stderr as the daemon's do (adapters/log_output: a timestamp on a terminal,
priorities under systemd, as in josev-bridge-sim.service).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import TextIO

from ..adapters.log_output import configure_logging
from .control_api import ControlServer, SimController, parse_hostport
from .mcu import Clock, SimulatedMcu, system_clock_us
from .pty_link import PtyLink
from .pty_node import StaleLinkError

log = logging.getLogger("josev_bridge.sim.app")

SHUTDOWN_POLL_S = 0.05  # how long server.shutdown() may wait for serve_forever to notice


def main(args: argparse.Namespace) -> int:
    """The sim as a process (`josev-bridge sim`, `python -m josev_bridge.sim`): logging set up as
    the daemon's, then `run`. Embedded in a thread, call `run`: the process's logging is not its own."""
    configure_logging(args.log_level)
    return run(args)


def run(args: argparse.Namespace, out: TextIO | None = None, stop: threading.Event | None = None) -> int:
    """Run the sim until SIGTERM/SIGINT (or `stop` is set); 0 on a clean stop, 1 if it could not
    start, 2 on bad options."""
    try:
        host, port = parse_hostport(args.control)
        clock = system_clock_us if args.clock_shift_file is None else shifted_clock(args.clock_shift_file)
        mcu = SimulatedMcu(evse_count=args.evse_count, ring_size=args.ring_size, clock=clock,
                           clock_offset_s=args.clock_offset_s, clock_drift_ppm=args.clock_drift_ppm,
                           protocol_version=args.protocol_version)
        mcu.mcu_clock.now()  # true_at_start: offset and drift count from here
        token, token_file, generated = _load_token(args.token_file, args.pty_link)  # last: it writes a file
    except (ValueError, OSError) as exc:
        log.error("sim: %s", exc)
        return 2
    lock = threading.RLock()
    stop = stop or threading.Event()
    link: PtyLink | None = None
    server: ControlServer | None = None
    serving = False
    try:
        link = PtyLink(mcu, lock, args.pty_link)
        server = ControlServer((host, port), SimController(mcu, lock, link, args.charger_id, token))
        link.start()
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_S},
                         name="sim-api", daemon=True).start()
        serving = True
        _install_signal_handlers(stop)
        _print_ready(out or sys.stdout, link, server, token_file, args.charger_id, mcu.boot_id)
        log.info("sim up: %s -> %s, control %s, boot %d", args.pty_link, link.pty_path, server.url, mcu.boot_id)
        stop.wait()
        log.info("sim stopping")
        return 0
    except (OSError, StaleLinkError) as exc:
        log.error("sim could not start: %s", exc)
        return 1
    finally:
        _shutdown(server, serving, link, token_file if generated else None)


def shifted_clock(path: Path) -> Clock:
    """The system clock plus the seconds written in `path` (0 while it is missing or unreadable).

    Shifting the TRUE clock moves the MCU clock by the shift times (1 + its drift): exactly what the
    MCU's clock does over that much time. Re-read when the file's mtime changes (write it atomically).
    """
    return _ShiftedClock(path)


class _ShiftedClock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: int | None = None
        self._shift_us = 0

    def __call__(self) -> int:
        try:
            mtime = os.stat(self.path).st_mtime_ns
            if mtime != self._mtime:
                self._shift_us, self._mtime = round(float(self.path.read_text().strip() or 0) * 1e6), mtime
        except (OSError, ValueError):
            pass
        return system_clock_us() + self._shift_us


def _load_token(token_file: Path | None, pty_link: Path) -> tuple[str, Path, bool]:
    """(token, its file, whether we generated it): generated tokens get a 0600 file next to the link."""
    if token_file is not None:
        token = token_file.read_text(encoding="utf-8").strip()
        if not token:
            raise ValueError(f"token file {token_file} is empty")
        return token, token_file, False
    token = secrets.token_urlsafe(24)
    path = pty_link.with_name(pty_link.name + ".token")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    return token, path, True


def _install_signal_handlers(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # embedded in a thread (tests): the caller stops us some other way
    def handler(signum: int, frame: object) -> None:
        # Set from another thread: the signal may land while the main thread holds the Event's lock.
        threading.Thread(target=stop.set, name="sim-signal", daemon=True).start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


def _print_ready(out: TextIO, link: PtyLink, server: ControlServer, token_file: Path,
                 charger_id: str, boot_id: int) -> None:
    line = {"event": "ready", "pty": link.pty_path, "pty_link": str(link.link_path), "control": server.url,
            "token_file": str(token_file), "charger_id": charger_id, "boot_id": boot_id}
    out.write(json.dumps(line) + "\n")
    out.flush()


def _shutdown(server: ControlServer | None, serving: bool, link: PtyLink | None,
              token_file: Path | None) -> None:
    if server is not None:
        if serving:
            server.shutdown()  # waits for serve_forever: never call it on a server that is not serving
        server.server_close()
    if link is not None:
        link.close()
    if token_file is not None:
        try:
            token_file.unlink()
        except OSError:
            pass
