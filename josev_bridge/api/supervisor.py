"""The daemon's side of the API process: bind the port, start the process, watch it, restart it, stop it.

Why the HTTP API runs in a process of its own (issue 12 item 6; figures in docs/performance.md,
"Mixed load"): a 500-row page takes ~7 ms of GIL time on an idle machine, more on a busy board
(5.4 ms building the rows in Python, which lets go of the GIL only every switch interval, and 1.5 ms
in one `json.dumps`, which never does), and in the daemon's process the thread answering
get_event_timestamp waited for it. In a process of its own the API reads SQLite read-only, as
`josev-bridge messages` does, and no page ever holds the answering thread's GIL. What the two
processes still share is the CPU.

What stays in the daemon, so that start-up errors stay the same one-line refusals with the same exit
codes: loading or creating the token (`api/token_file.py`) and binding the listening socket (a port
in use). The daemon keeps that socket open all its life, so while the API process restarts, clients'
connections wait in the listen backlog instead of being refused.

The API process is a fresh interpreter, `python -m josev_bridge.api` (api/process.py), not a fork
of the threaded daemon (a fork copies the daemon's memory and its threads' locks in whatever state
they were). It gets:

- the listening socket, by `pass_fds`;
- its settings and the token as one JSON line on its stdin, a pipe: never on the command line or in
  the environment, both readable in /proc. Later lines carry a new log level (SIGHUP reload);
- the same pipe as its lifeline: when the daemon dies, even by SIGKILL, the kernel closes the
  daemon's end, the API process reads EOF and exits. (Not PR_SET_PDEATHSIG: it fires when the
  *thread* that started the child ends, not the process, and it needs ctypes.)

Supervision runs on the daemon's housekeeping tick, with no thread of its own: an unexpected exit
is logged in one line, counted, and the process started again after a backoff (0.5 s, doubling to
30 s; back to 0.5 s after a process that ran for a minute). The watchdog does not depend on it: the
answer path works without the API. Standard library only, so the daemon does not import the HTTP
server either.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import site
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("josev_bridge.api")

RESTART_MIN_S = 0.5  # first restart after an unexpected exit ...
RESTART_MAX_S = 30.0  # ... doubling up to this while the process keeps failing
STABLE_AFTER_S = 60.0  # a process that ran this long resets the backoff
STOP_WAIT_S = 3.0  # after SIGTERM, then SIGKILL (the unit's TimeoutStopSec is 15 s for everything)
LISTEN_BACKLOG = 16  # connections that wait while the API process (re)starts (http.server's default is 5)
MODULE = "josev_bridge.api"
# What systemd gives the main process only: the API process must never speak for the service
# (NotifyAccess=main would reject it anyway, with a warning in the journal) nor take socket activation.
NOT_FOR_THE_CHILD = ("NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


@dataclass(frozen=True)
class ApiSettings:
    """What the API process needs, as the daemon read it at its start (a SIGHUP does not change
    [api] or [charger]: those take effect at the next restart of the daemon, and a restarted API
    process must not pick up a half-edited file the daemon refused or has not read)."""

    token: str
    journal_path: str
    alerts_path: str | None  # None: [alerts] off, no /api/alerts route
    charger: dict[str, Any]  # config.ChargerConfig's fields
    rate_limit_per_s: float
    log_level: str
    listen_fd: int = -1
    state_dir: str | None = None  # edges.json, device_model.sqlite: the status page's timeline and flags
    runtime_dir: str | None = None  # status.json: the status page's verdict and MCU link

    def line(self) -> bytes:
        return (json.dumps(dataclasses.asdict(self)) + "\n").encode()

    @classmethod
    def from_line(cls, line: bytes) -> ApiSettings:
        return cls(**json.loads(line))


def bind_listener(host: str, port: int) -> socket.socket:
    """Bind and listen as http.server's TCPServer did in the daemon (AF_INET, SO_REUSEADDR); an
    OSError (port in use, an address not on this host) is the daemon's start-up error."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


def child_env() -> dict[str, str]:
    """The daemon's environment minus systemd's variables for the main process. When the daemon runs
    from a checkout rather than an installed package, that checkout goes first on PYTHONPATH, so the
    API process runs the very code the daemon runs whatever its working directory."""
    env = {k: v for k, v in os.environ.items() if k not in NOT_FOR_THE_CHILD}
    root = str(Path(__file__).resolve().parents[2])
    if root not in site.getsitepackages() and root != site.getusersitepackages():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


class ApiProcess:
    """The API process, supervised: `start()` once, `poll()` on every housekeeping tick, `stop()`."""

    def __init__(self, host: str, port: int, settings: ApiSettings, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sock = bind_listener(host, port)  # first: a port in use stops the start before anything runs
        self.settings = dataclasses.replace(settings, listen_fd=self.sock.fileno())
        self._clock = clock
        self._proc: subprocess.Popen | None = None
        self._started_at = 0.0
        self._due: float | None = None  # when to start it again, after an exit
        self._backoff = RESTART_MIN_S
        self._stopped = False
        self.restarts = 0
        self.last_exit: str | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def up(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        self._spawn()

    def _spawn(self) -> None:
        self._due = None
        try:
            proc = subprocess.Popen([sys.executable, "-m", MODULE], stdin=subprocess.PIPE,
                                    pass_fds=[self.settings.listen_fd], env=child_env())
        except OSError as exc:  # no memory, no such interpreter: try again later, like a crash
            self.last_exit = f"could not be started: {exc}"
            self._schedule(f"API process {self.last_exit}")
            return
        self._proc, self._started_at = proc, self._clock()
        self._send(self.settings.line())

    def _send(self, line: bytes) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            return
        try:
            proc.stdin.write(line)
            proc.stdin.flush()
        except OSError:  # it has exited already (EPIPE): poll() notices and restarts it
            pass

    def poll(self) -> None:
        """Notice an exit (one WARNING line, counted) and start the process again once its backoff is over."""
        if self._stopped:
            return
        now = self._clock()
        proc = self._proc
        if proc is not None:
            returncode = proc.poll()
            if returncode is None:
                return
            self._close_pipe()
            self._proc = None
            ran = now - self._started_at
            if ran >= STABLE_AFTER_S:
                self._backoff = RESTART_MIN_S
            self.last_exit = describe_exit(returncode)
            self._schedule(f"API process (pid {proc.pid}) {self.last_exit} after {ran:.1f} s")
        if self._due is not None and now >= self._due:
            self.restarts += 1
            self._spawn()

    def _schedule(self, what: str) -> None:
        self._due = self._clock() + self._backoff
        log.warning("%s; starting it again in %.1f s (restart %d); get_event_timestamp is not affected",
                    what, self._backoff, self.restarts + 1)
        self._backoff = min(self._backoff * 2, RESTART_MAX_S)

    def set_log_level(self, level: str) -> None:
        """SIGHUP: the new level for the running API process, and for any it starts later."""
        self.settings = dataclasses.replace(self.settings, log_level=level)
        self._send((json.dumps({"log_level": level}) + "\n").encode())

    def stop(self, wait_s: float = STOP_WAIT_S) -> None:
        """SIGTERM, wait, then SIGKILL; then close the listening socket. No restart after this."""
        self._stopped = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                log.warning("API process (pid %d) did not stop within %g s of SIGTERM; killing it", proc.pid, wait_s)
                proc.kill()
                proc.wait()
        self._close_pipe()
        self.sock.close()

    def _close_pipe(self) -> None:
        if self._proc is not None and self._proc.stdin is not None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass

    def status(self) -> dict[str, Any]:
        """For status.json: where it listens, and whether the process serving it is up."""
        return {"listen": "{}:{}".format(*self.address), "pid": self.pid, "up": self.up(), "restarts": self.restarts,
                "last_exit": self.last_exit}
