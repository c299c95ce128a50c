"""Start the sim as a subprocess and drive its control API: shared by tests, the demo and benchmarks.

    with start_sim(tmp_path) as sim:
        status, body = sim.command("start-session", {"evse_id": 1})
        ...open sim.pty_link with pyserial...

The ready line on stdout is the only synchronisation: no sleeps, no port guessing.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # so a checkout works without `pip install`


class SimStartError(RuntimeError):
    """The sim exited or stayed silent instead of printing its ready line."""


@dataclass
class SimProcess:
    """A running sim: where its pty and API are, and how to talk to it."""

    process: subprocess.Popen
    pty: str
    pty_link: Path
    control_url: str
    token: str
    token_file: Path
    charger_id: str
    boot_id: int
    log_file: Path
    ready: dict = field(default_factory=dict)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, Any]:
        """One raw HTTP request; returns (status, decoded JSON or None), errors included."""
        all_headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        all_headers.update(headers or {})
        req = urllib.request.Request(self.control_url + path, data=body, method=method,
                                     headers={k: v for k, v in all_headers.items() if v is not None})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, _json_or_none(resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, _json_or_none(exc.read())

    def command(self, name: str, event: dict | None = None, *, charger_id: str | None = None,
                token: str | None = None) -> tuple[int, Any]:
        """POST /ocpp/commands/<name>; `charger_id`/`token` override the sim's own (for error tests)."""
        body = {"target": {"charger_id": self.charger_id if charger_id is None else charger_id},
                "event": {} if event is None else event}
        headers = {"Authorization": f"Bearer {token}"} if token is not None else None
        return self.request("POST", f"/ocpp/commands/{name}", json.dumps(body).encode(), headers)

    def status(self) -> dict:
        code, body = self.request("GET", "/ocpp/status")
        if code != 200:
            raise RuntimeError(f"GET /ocpp/status answered {code}: {body}")
        return body

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, wait, SIGKILL if it hangs; returns the exit code. Idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


def launch_sim(workdir: Path, *, charger_id: str = "josev-sim", evse_count: int = 2,
               control: str = "127.0.0.1:0", pty_link: Path | None = None, token_file: Path | None = None,
               extra_args: Sequence[str] = (), log_level: str = "INFO", ready_timeout: float = 10.0,
               python: str = sys.executable, wrapper: Sequence[str] = ()) -> SimProcess:
    """Start `python -m josev_bridge.sim` and wait for its ready line; the caller must `.stop()` it.
    `wrapper`: a command the sim runs under (strace, in a test); `process` is then the wrapper's."""
    workdir.mkdir(parents=True, exist_ok=True)
    link = pty_link or workdir / "mcu.pty"
    log_file = workdir / "sim.log"
    argv = [*wrapper, python, "-m", "josev_bridge.sim", "--pty-link", str(link), "--control", control,
            "--charger-id", charger_id, "--evse-count", str(evse_count), "--log-level", log_level,
            *(["--token-file", str(token_file)] if token_file else []), *extra_args]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
    with open(log_file, "ab") as log:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env)
    try:
        ready = _read_ready(process, ready_timeout, log_file)
    except BaseException:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
        raise
    token_path = Path(ready["token_file"])
    return SimProcess(process=process, pty=ready["pty"], pty_link=Path(ready["pty_link"]),
                      control_url=ready["control"], token=token_path.read_text().strip(), token_file=token_path,
                      charger_id=ready["charger_id"], boot_id=ready["boot_id"], log_file=log_file, ready=ready)


@contextmanager
def start_sim(workdir: Path, **options: Any) -> Iterator[SimProcess]:
    """`launch_sim` as a context manager: the sim is stopped (and its link removed) on exit."""
    sim = launch_sim(workdir, **options)
    try:
        yield sim
    finally:
        sim.stop()


def _read_ready(process: subprocess.Popen, timeout: float, log_file: Path) -> dict:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SimStartError(f"no ready line within {timeout}s; log: {log_file}")
        readable, _, _ = select.select([process.stdout], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(process.stdout.fileno(), 4096)
        if not chunk:
            process.wait()
            raise SimStartError(f"sim exited with {process.returncode} before ready: "
                                f"{log_file.read_text(errors='replace')[-2000:]}")
        buffer += chunk
    line = json.loads(buffer.split(b"\n", 1)[0])
    if line.get("event") != "ready":
        raise SimStartError(f"unexpected first line from the sim: {line}")
    return line


def _json_or_none(data: bytes) -> Any:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None
