"""The status document's file, for its writer (the daemon) and every reader (CLI, status page, harness):
one module knows its name, reads it and tells whether its writer still runs."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from josev_bridge.adapters import status_file

PACKAGE = Path(status_file.__file__).resolve().parents[1]


def test_what_the_writer_saves_the_reader_reads_and_the_group_may_read_it(tmp_path):
    status_file.writer(tmp_path).save({"pid": os.getpid(), "mqtt": {"connected": True}})
    assert status_file.read(tmp_path) == ({"pid": os.getpid(), "mqtt": {"connected": True}}, None)
    assert (tmp_path / "status.json").stat().st_mode & 0o777 == 0o640


def test_no_file_means_the_bridge_is_not_running(tmp_path):
    status, problem = status_file.read(tmp_path)
    assert status is None and problem == f"the bridge is not running (no {tmp_path / 'status.json'})"


def test_a_damaged_file_is_named_in_words_not_raised(tmp_path):
    for damage in (b'{"pid": 12', b"\xff\xfe{}", b"[1, 2]"):
        (tmp_path / "status.json").write_bytes(damage)
        status, problem = status_file.read(tmp_path)
        assert status is None and problem is not None and problem.startswith(f"cannot read {tmp_path}/status.json: ")


def test_alive_knows_a_running_pid_from_an_ended_one_and_from_nonsense():
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # reaped: its pid names no process now
    assert status_file.alive(os.getpid()) and status_file.alive(1)  # pid 1: there (EPERM when another user's)
    assert not status_file.alive(ended.pid)
    assert not status_file.alive(None) and not status_file.alive(0) and not status_file.alive("12")


def _spelled(tree: ast.AST) -> list[int]:
    """The lines where the file's name is a string of the code (docstrings and help texts that
    mention it within a sentence do not count: only the bare name, as a path is built from it)."""
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value == "status.json"]


def test_the_file_is_named_and_read_in_this_module_alone():
    """The daemon, `josev-bridge status` and `request`, the status page and the test harness all go
    through adapters/status_file: a second spelling of the name is a second reader to drift apart."""
    elsewhere = {str(path.relative_to(PACKAGE.parent)): lines for path in sorted(PACKAGE.rglob("*.py"))
                 if path.name != "status_file.py" and (lines := _spelled(ast.parse(path.read_text())))}
    assert elsewhere == {}


def test_a_status_written_just_before_a_clock_step_is_still_fresh_after_it():
    """NTP's first sync on a board without RTC steps the clock by years: the age of a status
    written a moment before must stay a moment, or a live bridge reads as wedged (and, stepped the
    other way, a wedged one as fresh)."""
    doc = status_file.stamp()
    three_years = 3 * 365 * 86_400
    for step in (three_years, -three_years):
        stepped = {**doc, "written_at_epoch": doc["written_at_epoch"] - step}  # the clock moved since
        assert 0 <= status_file.age_s(stepped) < 5


def test_a_status_from_another_host_boot_is_aged_by_the_wall_clock():
    doc = {**status_file.stamp(), "host_boot": "another-boot", "written_at_monotonic": 1.0}
    doc["written_at_epoch"] -= 600
    assert 599 < status_file.age_s(doc) < 605
    legacy = {k: v for k, v in doc.items() if k not in ("host_boot", "written_at_monotonic")}  # an older daemon's
    assert 599 < status_file.age_s(legacy) < 605
