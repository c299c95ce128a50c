"""api/supervisor.ApiProcess with real API processes over a real journal file; only the clock is the test's
(so the backoff is checked without waiting for it). The daemon's side of it is in tests/e2e/test_api_process.py."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from josev_bridge.adapters.journal_store import JournalStore
from josev_bridge.api.supervisor import (
    RESTART_MAX_S,
    RESTART_MIN_S,
    STABLE_AFTER_S,
    ApiProcess,
    ApiSettings,
    bind_listener,
)
from josev_bridge.harness.waiting import process_gone, wait_until

TOKEN = "supervised-token-5f2c"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def supervised(tmp_path):
    JournalStore(tmp_path / "journal.sqlite").close()  # what the daemon's journal creates before the API starts
    settings = ApiSettings(token=TOKEN, journal_path=str(tmp_path / "journal.sqlite"), alerts_path=None,
                           charger={"identity": "cp-1", "fleet_id": 7}, rate_limit_per_s=1000.0, log_level="INFO")
    clock = Clock()
    api = ApiProcess("127.0.0.1", 0, settings, clock=clock)
    api.clock = clock
    yield api
    api.stop()


def answers(api: ApiProcess) -> int | None:
    """The status of GET /api/ocpp-messages, or None while nothing answers."""
    request = urllib.request.Request("http://{}:{}/api/ocpp-messages?chargerId=cp-1".format(*api.address),
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None




def test_it_serves_from_its_own_process_and_the_token_stays_off_argv_and_environ(supervised, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")  # what systemd gives the daemon only
    supervised.start()
    assert wait_until(lambda: answers(supervised) == 200, 20, "the API process to answer")
    pid = supervised.pid
    assert pid is not None and pid != os.getpid() and supervised.status()["up"] is True
    assert b"josev_bridge.api" in Path(f"/proc/{pid}/cmdline").read_bytes()
    for leak in ("cmdline", "environ"):
        assert TOKEN.encode() not in Path(f"/proc/{pid}/{leak}").read_bytes(), leak
    assert b"NOTIFY_SOCKET=" not in Path(f"/proc/{pid}/environ").read_bytes()


@pytest.mark.slow
def test_an_exit_is_logged_once_and_restarted_with_a_doubling_backoff(supervised, caplog):
    clock = supervised.clock
    supervised.start()
    assert wait_until(lambda: answers(supervised) == 200, 20, "the API process to answer")
    first = supervised.pid
    with caplog.at_level(logging.WARNING, logger="josev_bridge.api"):
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: supervised._proc.poll() is not None, 10, "the kill to land")
        supervised.poll()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"API process (pid {first}) killed by SIGKILL after 0.0 s; starting it again in "
                     f"{RESTART_MIN_S:.1f} s (restart 1); get_event_timestamp is not affected"]
    assert supervised.status() == {"listen": f"127.0.0.1:{supervised.address[1]}", "pid": None, "up": False,
                                   "restarts": 0, "last_exit": "killed by SIGKILL"}
    clock.now += RESTART_MIN_S - 0.01
    supervised.poll()
    assert supervised.pid is None  # not before its time
    clock.now += 0.01
    supervised.poll()
    second = supervised.pid
    assert second not in (None, first) and supervised.restarts == 1
    assert wait_until(lambda: answers(supervised) == 200, 20, "the restarted API process to answer")

    delays = []
    for _ in range(7):  # failing again at once: the backoff doubles up to its ceiling
        pid = supervised.pid
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: supervised._proc.poll() is not None, 10, "the kill to land")
        supervised.poll()
        delays.append(supervised._due - clock.now)
        clock.now = supervised._due
        supervised.poll()
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, RESTART_MAX_S, RESTART_MAX_S]
    clock.now += STABLE_AFTER_S  # a process that ran a minute resets it
    os.kill(supervised.pid, signal.SIGKILL)
    wait_until(lambda: supervised._proc.poll() is not None, 10, "the kill to land")
    supervised.poll()
    assert supervised._due - clock.now == RESTART_MIN_S and supervised.restarts == 8


def test_stop_ends_the_process_and_frees_the_port(supervised):
    supervised.start()
    assert wait_until(lambda: answers(supervised) == 200, 20, "the API process to answer")
    pid, port = supervised.pid, supervised.address[1]
    supervised.stop()
    assert supervised._proc.returncode == 0  # a clean exit, not an abort at interpreter shutdown
    assert wait_until(lambda: process_gone(pid), 10, "the API process to exit")
    supervised.poll()
    assert supervised.pid == pid and not supervised.up()  # stopped: never started again
    bind_listener("127.0.0.1", port).close()  # nobody listens on it any more


@pytest.mark.slow
def test_a_process_that_does_not_stop_on_sigterm_is_killed(supervised, caplog):
    supervised.start()
    assert wait_until(lambda: answers(supervised) == 200, 20, "the API process to answer")
    pid = supervised.pid
    os.kill(pid, signal.SIGSTOP)  # wedged: SIGTERM stays pending, SIGKILL still works
    with caplog.at_level(logging.WARNING, logger="josev_bridge.api"):
        supervised.stop(wait_s=0.3)
    assert process_gone(pid)
    assert [r.getMessage() for r in caplog.records] == [
        f"API process (pid {pid}) did not stop within 0.3 s of SIGTERM; killing it"]


def test_the_port_in_use_is_the_daemons_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = ApiSettings(token=TOKEN, journal_path=str(tmp_path / "j"), alerts_path=None, charger={},
                               rate_limit_per_s=1.0, log_level="INFO")
        with pytest.raises(OSError, match="in use"):
            ApiProcess("127.0.0.1", taken.getsockname()[1], settings)


def test_the_api_process_imports_no_mqtt_schema_or_serial_library():
    code = ("import sys, josev_bridge.api.process; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'paho', 'jsonschema', 'serial', 'referencing'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert json.loads(out.stdout.replace("'", '"')) == []
