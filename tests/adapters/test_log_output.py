"""Log lines under systemd carry their priority (`journalctl -p warning` works); elsewhere, the time.

systemd tells a service its stderr is a journald stream through JOURNAL_STREAM (`<dev>:<inode>` of
that stream). Here stderr is a file and JOURNAL_STREAM names that file: the process cannot tell the
difference, and journald's side (reading `<N>` prefixes, SyslogLevelPrefix=yes by default) is
systemd's own documented behaviour."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from josev_bridge.adapters.log_output import level_of, priority

SCRIPT = ("import logging; from josev_bridge.adapters.log_output import configure_logging; configure_logging('DEBUG');"
          "log = logging.getLogger('josev_bridge.serial'); log.debug('d'); log.info('i'); log.warning('w');"
          "log.error('first line\\nsecond line')")


def run_logging(tmp_path, journal: str | None) -> list[str]:
    err = tmp_path / "stderr"
    with err.open("wb") as fh:
        st = os.fstat(fh.fileno())
        env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        if journal == "this":
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        elif journal == "another":
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino + 1}"  # inherited, but stderr was redirected since
        subprocess.run([sys.executable, "-c", SCRIPT], stderr=fh, env=env, check=True, timeout=30)
    return err.read_text().splitlines()


def test_under_systemd_every_line_starts_with_its_syslog_priority(tmp_path):
    assert run_logging(tmp_path, "this") == [
        "<7>DEBUG josev_bridge.serial: d", "<6>INFO josev_bridge.serial: i", "<4>WARNING josev_bridge.serial: w",
        "<3>ERROR josev_bridge.serial: first line", "<3>second line"]


def test_elsewhere_every_record_starts_with_the_utc_time(tmp_path):
    for journal in (None, "another"):
        lines = run_logging(tmp_path, journal)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARNING josev_bridge\.serial: w", lines[2]), lines
        assert not lines[0].startswith("<")


@pytest.mark.slow
def test_the_daemons_own_start_up_error_carries_priority_3(tmp_path):
    err = tmp_path / "stderr"
    with err.open("wb") as fh:
        st = os.fstat(fh.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        r = subprocess.run([sys.executable, "-m", "josev_bridge", "run", "--config", str(tmp_path / "none.toml")],
                           stderr=fh, env=env, timeout=30)
    assert r.returncode == 2
    assert err.read_text().startswith(f"<3>ERROR josev_bridge.daemon: {tmp_path / 'none.toml'}: no such file")


def test_levels_and_priorities():
    assert [priority(n) for n in (10, 20, 25, 30, 40, 50)] == [7, 6, 4, 4, 3, 2]
    assert level_of("<4>WARNING josev_bridge.serial: w") == "WARNING"
    assert level_of("2026-02-17T10:20:30.123Z ERROR josev_bridge.daemon: x") == "ERROR"
    assert level_of("INFO josev_bridge.daemon: x") == "INFO" and level_of("  File \"x\", line 1") is None
