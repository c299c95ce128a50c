"""PtyLink in-process: a pty nobody reads must not block commands, and replay still works after."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from josev_bridge.harness.waiting import wait_until
from josev_bridge.protocol.records import Ack
from josev_bridge.sim.control_api import SimController
from josev_bridge.sim.mcu import SimulatedMcu
from josev_bridge.sim.pty_link import PtyLink
from josev_bridge.sim.pty_node import StaleLinkError, install_link, remove_link


@pytest.fixture
def link(tmp_path: Path):
    mcu = SimulatedMcu(boot_id=99)
    pty = PtyLink(mcu, threading.RLock(), tmp_path / "mcu.pty", write_timeout_s=0.02)
    pty.start()
    yield pty
    pty.close()
    assert not (tmp_path / "mcu.pty").is_symlink()


def wait_for(predicate, timeout: float = 5.0) -> None:
    wait_until(predicate, timeout, "the condition")


def test_full_pty_never_blocks_commands_and_replay_recovers(link, open_host):
    controller = SimController(link.mcu, link.lock, link, "josev-sim", "t")
    body = {"target": {"charger_id": "josev-sim"}}
    started = time.monotonic()
    for i in range(1500):  # ~30 KB of frames: more than the pty holds (~20 KB) with nobody reading
        name = "parking-bay-occupied" if i % 2 == 0 else "parking-bay-vacated"
        controller.command(name, {**body, "event": {}})
    assert time.monotonic() - started < 2.0
    wait_for(lambda: link.counters.frames_dropped > 0)  # the writer gave up on a full pty

    host = open_host(link.link_path)  # flushes the backlog, as a restarting bridge might
    host.send(Ack(99, 1490))
    host.hello()
    assert [seq for seq, _ in host.signals(10)] == list(range(1491, 1501))
    assert host.no_signal_within(0.1)
    assert link.mcu.status()["unacked"] == 10


def test_link_status(link):
    status = link.status()
    assert status["pty"] == os.path.realpath(link.link_path)
    assert status["counters"]["frames_in"] == 0 and status["host_keepalive_age_s"] is None


def test_install_link_replaces_symlinks_only(tmp_path):
    path = tmp_path / "port"
    install_link(path, "/dev/pts/999")
    install_link(path, "/dev/pts/998")
    assert os.readlink(path) == "/dev/pts/998"
    remove_link(path, "/dev/pts/999")  # someone else's target now: left alone
    assert path.is_symlink()
    remove_link(path, "/dev/pts/998")
    assert not path.is_symlink()
    path.write_text("file")
    with pytest.raises(StaleLinkError):
        install_link(path, "/dev/pts/1")


