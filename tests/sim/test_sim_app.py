"""app.run embedded in a thread (as the CLI and tests may use it) and its option errors."""

from __future__ import annotations

import argparse
import io
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from josev_bridge.sim.app import run
from josev_bridge.sim.options import add_arguments


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


class LineSink(io.StringIO):
    """stdout stand-in that signals when the ready line has been flushed."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed = threading.Event()

    def flush(self) -> None:
        super().flush()
        self.flushed.set()


def test_run_in_a_thread_until_stopped(tmp_path: Path):
    args = parse("--pty-link", str(tmp_path / "port"), "--control", "127.0.0.1:0", "--evse-count", "1")
    out, stop, codes = LineSink(), threading.Event(), []
    thread = threading.Thread(target=lambda: codes.append(run(args, out=out, stop=stop)))
    thread.start()
    try:
        assert out.flushed.wait(5)
        ready = json.loads(out.getvalue())
        assert ready["event"] == "ready" and ready["control"].startswith("http://127.0.0.1:")
        assert ready["token_file"] == str(tmp_path / "port.token") and (tmp_path / "port").is_symlink()
    finally:
        stop.set()
        thread.join(5)
    assert codes == [0]
    assert not (tmp_path / "port").exists() and not (tmp_path / "port.token").exists()


@pytest.mark.parametrize("extra", [("--control", "nonsense"), ("--control", "127.0.0.1:99999"),
                                   ("--evse-count", "0"), ("--ring-size", "0"),
                                   ("--clock-drift-ppm", "nan"), ("--clock-drift-ppm", "1e6"),
                                   ("--clock-offset-s", "inf"), ("--clock-offset-s", "1e12")])
def test_bad_options_exit_2(tmp_path: Path, extra):
    assert run(parse("--pty-link", str(tmp_path / "port"), *extra)) == 2
    assert list(tmp_path.iterdir()) == []


def test_clock_and_ring_options_parse(tmp_path: Path):
    args = parse("--pty-link", str(tmp_path / "port"), "--control", "127.0.0.1:0", "--clock-offset-s", "-1.5",
                 "--clock-drift-ppm", "20", "--ring-size", "16")
    assert (args.clock_offset_s, args.clock_drift_ppm, args.ring_size) == (-1.5, 20.0, 16)
    defaults = parse("--pty-link", "p")
    assert (defaults.clock_offset_s, defaults.clock_drift_ppm, defaults.ring_size) == (0.0, 0.0, 4096)


def test_empty_token_file_exits_2(tmp_path: Path):
    (tmp_path / "token").write_text("\n")
    assert run(parse("--pty-link", str(tmp_path / "port"), "--token-file", str(tmp_path / "token"))) == 2


def test_busy_port_exits_1_and_cleans_up(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        code = run(parse("--pty-link", str(tmp_path / "port"), "--control", f"127.0.0.1:{port}"))
    assert code == 1 and time.monotonic() - started < 5
    assert not (tmp_path / "port").exists() and not (tmp_path / "port.token").exists()
