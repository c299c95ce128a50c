"""The harness's waits: a wrong answer there makes a test pass or fail for the wrong reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from josev_bridge.harness.waiting import process_gone, wait_until


def fake_proc(root: Path, pid: int, tasks: dict[int, str | None]) -> Path:
    """A /proc with one process; a task whose state is None has a directory but no stat any more
    (the thread ended between the listing and the read)."""
    for tid, state in tasks.items():
        task = root / str(pid) / "task" / str(tid)
        task.mkdir(parents=True)
        if state is not None:
            (task / "stat").write_text(f"{tid} (python) {state} 1 2 3\n")
    return root


def test_a_process_whose_helper_thread_just_ended_is_not_gone(tmp_path):
    proc = fake_proc(tmp_path, 42, {42: "S", 43: None})
    assert not process_gone(42, proc)


def test_a_process_is_gone_when_its_tasks_are_zombies_or_absent(tmp_path):
    assert process_gone(7, tmp_path)
    assert process_gone(42, fake_proc(tmp_path, 42, {42: "Z", 43: "X"}))


def test_a_zombie_leader_with_a_running_thread_is_not_gone(tmp_path):
    assert not process_gone(42, fake_proc(tmp_path, 42, {42: "Z", 43: "R"}))


def test_this_process_is_not_gone():
    assert not process_gone(os.getpid())


def test_wait_until_names_what_it_waited_for():
    with pytest.raises(TimeoutError, match="the moon"):
        wait_until(lambda: None, 0.02, "the moon")
    assert wait_until(lambda: 5, 1, "five") == 5
