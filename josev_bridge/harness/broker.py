"""Start a private mosquitto on a free loopback port with the broker settings we ship."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SHIPPED_CONF = Path(__file__).resolve().parents[2] / "systemd" / "mosquitto-josev-bridge.conf"
# Directives the harness sets itself (port, storage, logging, privileges).
_OWN = ("listener", "persistence_location", "log_dest", "log_type", "user", "password_file",
        "include_dir", "pid_file", "allow_anonymous", "port", "bind_address")
_FALLBACK = "set_tcp_nodelay true\nmax_inflight_messages 1000\nmax_queued_messages 10000\npersistence true\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None)
    if not found:
        raise FileNotFoundError("mosquitto is not installed (make test installs it with apt-get)")
    return found


def shipped_directives() -> list[tuple[str, str]]:
    """(directive, value) for every setting line of the shipped snippet, in order."""
    lines = SHIPPED_CONF.read_text().splitlines() if SHIPPED_CONF.exists() else _FALLBACK.splitlines()
    return [(line.split(None, 1)[0], line.split(None, 1)[1].strip() if len(line.split(None, 1)) > 1 else "")
            for line in lines if line.strip() and not line.lstrip().startswith("#")]


def shipped_settings(overrides: dict[str, str | None] | None = None) -> str:
    """The shipped broker snippet minus what the harness must own; `overrides` replaces a directive's
    value (None drops it), for tests that show what the shipped value buys."""
    overrides = overrides or {}
    keep = [f"{key} {overrides.get(key, value)}" for key, value in shipped_directives()
            if key not in _OWN and not (key in overrides and overrides[key] is None)]
    keep += [f"{key} {value}" for key, value in overrides.items()
             if value is not None and key not in {k for k, _ in shipped_directives()}]
    return "\n".join(keep) + "\n"


def wait_for_port(port: int, deadline_s: float, proc: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)  # polling a port with a deadline: nothing to wait on but the port
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {deadline_s:g} s")


class Mosquitto:
    def __init__(self, workdir: Path, port: int | None = None,
                 overrides: dict[str, str | None] | None = None) -> None:
        self.workdir = Path(workdir)
        self.overrides = overrides
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.conf = self.workdir / "mosquitto.conf"
        self.log = self.workdir / "mosquitto.log"

    def start(self) -> Mosquitto:
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true",
                 f"persistence_location {self.workdir}/", f"log_dest file {self.log}"]
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise mosquitto drops to a user that cannot write workdir
        self.conf.write_text(shipped_settings(self.overrides) + "\n".join(lines) + "\n")
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, 10, self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def db_path(self) -> Path:
        """The persistence file (mosquitto's default name, in `persistence_location`)."""
        return self.workdir / "mosquitto.db"

    def kill(self) -> None:
        """SIGKILL: the broker saves nothing on the way out (a crash, the OOM killer)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
