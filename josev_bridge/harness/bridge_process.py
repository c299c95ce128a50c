"""Run `josev-bridge run` as a real subprocess, with a real sd_notify socket to know it is ready."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ..adapters import status_file
from .waiting import wait_until


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _is_table_list(value: object) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, dict) for v in value)


def write_config(path: Path, sections: dict[str, dict]) -> Path:
    """TOML for a config: scalar keys, lists of scalars, and lists of tables (`[[section.key]]`)."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items() if not _is_table_list(v)]
        lines.append("")
        for key, tables in ((k, v) for k, v in values.items() if _is_table_list(v)):
            for table in tables:
                lines.append(f"[[{section}.{key}]]")
                lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
                lines.append("")
    path.write_text("\n".join(lines))
    return path


class BridgeProcess:
    def __init__(self, workdir: Path, *, broker_port: int, serial_url: str, identity: str = "test-charger",
                 extra: dict[str, dict] | None = None, log_level: str = "DEBUG",
                 command: Sequence[str] | None = None, config: Path | None = None) -> None:
        """`command`: how to run `josev-bridge` (default: this interpreter's `-m josev_bridge`), e.g. an
        installed entry point. `config`: a ready file to use instead of writing one from the arguments
        (its [mqtt] port, [charger] identity and [paths] must match what the caller passes and expects)."""
        self.command = list(command or [sys.executable, "-m", "josev_bridge"])
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        sections: dict[str, dict] = {
            "mqtt": {"host": "127.0.0.1", "port": broker_port, "client_id": f"josev-bridge-{identity}",
                     "reconnect_min_delay": 0.1, "reconnect_max_delay": 1.0},
            "serial": {"url": serial_url, "reopen_min_delay": 0.05, "reopen_max_delay": 0.5},
            "paths": {"state_dir": str(self.workdir / "state"), "runtime_dir": str(self.workdir / "run")},
            "charger": {"identity": identity},
            # any free port (`api_url()` reads the one bound from status.json); tests poll the API freely
            "api": {"listen": "127.0.0.1:0", "rate_limit_per_s": 1000.0},
            "logging": {"level": log_level},
        }
        for section, values in (extra or {}).items():
            sections.setdefault(section, {}).update(values)
        if config is not None:
            self.config = Path(config)
            self.sections = tomllib.loads(self.config.read_text())
        else:
            self.sections = sections
            self.config = write_config(self.workdir / "config.toml", sections)
        self.log = self.workdir / "bridge.log"
        self.proc: subprocess.Popen | None = None
        self._notify: socket.socket | None = None
        self._notified = threading.Condition()
        self.notifications: list[str] = []

    @property
    def status_topic(self) -> str:
        return f"josev-bridge/{self.sections['charger']['identity']}/status"

    def start(self, timeout: float = 15.0, env: dict[str, str] | None = None, online: bool = True) -> BridgeProcess:
        """Start the daemon and wait for READY=1, and (`online`) for it to be connected to the broker."""
        notify_path = self.workdir / "notify.sock"
        notify_path.unlink(missing_ok=True)
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(notify_path))
        self._notify.settimeout(0.2)
        self.notifications = []
        threading.Thread(target=self._drain_notify, args=(self._notify,), daemon=True).start()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHDOG_")}
        full_env.update(NOTIFY_SOCKET=str(notify_path), PYTHONUNBUFFERED="1", **(env or {}))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([*self.command, "run", "--config", str(self.config)],
                                         stdout=log, stderr=log, env=full_env)
        self.wait_notification("READY=1", timeout)
        if online:
            self.wait_online(timeout)
        return self

    def _drain_notify(self, sock: socket.socket) -> None:
        """Read the notify socket continuously, as systemd does (an unread queue would fill up)."""
        while True:
            try:
                msg = sock.recv(4096).decode()
            except TimeoutError:
                continue
            except OSError:  # closed by stop()
                return
            with self._notified:
                self.notifications.append(msg)
                self._notified.notify_all()

    def wait_notification(self, text: str, timeout: float, since: int = 0) -> None:
        """Wait for a notification line `text` among those received from index `since` on."""
        end = time.monotonic() + timeout
        with self._notified:
            while not any(text in m.split("\n") for m in self.notifications[since:]):
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"bridge exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {text} from the bridge within {timeout:g} s:\n{self.log_text()[-3000:]}")
                self._notified.wait(min(left, 0.2))

    def wait_online(self, timeout: float) -> None:
        """Wait for the retained status 'online' on the broker: the bridge is connected and subscribed."""
        online = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"status-probe-{os.getpid()}-{time.monotonic_ns()}")
        client.on_connect = lambda c, *a: c.subscribe(self.status_topic, qos=1)
        client.on_message = lambda c, u, m: online.set() if m.payload == b"online" else None
        client.connect("127.0.0.1", self.sections["mqtt"]["port"])
        client.loop_start()
        try:
            if not online.wait(timeout):
                raise TimeoutError(f"bridge not online on {self.status_topic}:\n{self.log_text()[-3000:]}")
        finally:
            client.disconnect()
            client.loop_stop()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_log(self, needle: str, timeout: float = 5.0, start: int = 0) -> str:
        """Wait until `needle` appears in the bridge's log after offset `start`."""
        def seen() -> str:
            text = self.log_text()[start:]
            return text if needle in text else ""
        return wait_until(seen, timeout, f"{needle!r} in the bridge log {self.log}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        rc = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
        elif self.proc is not None:
            rc = self.proc.returncode
        self.proc = None
        if self._notify is not None:
            self._notify.close()
            self._notify = None
        return rc

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def status(self, timeout: float = 10.0) -> dict:
        """The daemon's status.json, once it has been written by this process."""
        def current() -> dict | None:
            doc, _ = status_file.read(self.workdir / "run")  # read as `josev-bridge status` reads it
            return doc if doc is not None and self._started(doc.get("pid")) else None
        return wait_until(current, timeout, f"status.json of pid {self.proc and self.proc.pid}")

    def _started(self, pid: object) -> bool:
        """Whether `pid` is the process started here, or its child when `command` wraps the daemon
        (strace, for one: the daemon is then strace's child)."""
        if self.proc is None or not isinstance(pid, int):
            return False
        if pid == self.proc.pid:
            return True
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return False
        return str(pid) in children

    def peak_rss_kib(self) -> int:
        """The daemon's peak resident memory so far (VmHWM), for memory bars under load."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise AssertionError(f"no VmHWM for pid {self.proc.pid}")

    def api_pid(self, timeout: float = 15.0, other_than: int | None = None) -> int:
        """The pid of the API process (a process of its own, started by the daemon) once the daemon
        reports it up; `other_than`: wait for one that replaced that pid."""
        def current() -> int | None:
            api = self.status()["api"]
            return api["pid"] if api and api.get("up") and api["pid"] != other_than else None
        return wait_until(current, timeout, "the API process to be up")

    def api_url(self, path: str = "") -> str:
        return f"http://{self.status()['api']['listen']}{path}"

    def api_token(self) -> str:
        return (self.workdir / "state" / "api-token").read_text().strip()

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """Run `josev-bridge ARGS --config <this bridge's config>`."""
        return subprocess.run([*self.command, *args, "--config", str(self.config)],
                              capture_output=True, text=True, timeout=30)

    def __enter__(self) -> BridgeProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
