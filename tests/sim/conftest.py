"""Fixtures for the sim tests: a running sim subprocess and a minimal host on its pty."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

from josev_bridge.core.conditions import SignalRecord
from josev_bridge.protocol import records
from josev_bridge.protocol.framing import PROTOCOL_VERSION, Frame, FrameDecoder
from josev_bridge.protocol.records import FrameType, HostHello
from josev_bridge.sim.launcher import SimProcess, start_sim


class FakeHost:
    """The bridge's side of the line, reduced to what the tests need: send records, read frames."""

    def __init__(self, path: Path | str) -> None:
        self.port = serial.serial_for_url(str(path), baudrate=115200, timeout=0.1)
        self.decoder = FrameDecoder()
        self._pending: deque[Frame] = deque()

    def send(self, record: records.Record, seq: int = 0) -> None:
        self.port.write(records.encode(record, seq))

    def write_raw(self, data: bytes) -> None:
        self.port.write(data)

    def flush_input(self) -> None:
        """Forget whatever the sim wrote while nobody listened (stale keepalives, the boot HELLO)."""
        self.port.reset_input_buffer()
        self.decoder.reset()
        self._pending.clear()

    def hello(self, timeout: float = 3.0) -> records.Hello:
        """Send HOST_HELLO and return the sim's HELLO answer."""
        self.send(HostHello(PROTOCOL_VERSION))
        return records.decode(self.next_frame(lambda f: f.type == FrameType.HELLO, timeout))

    def next_frame(self, match: Callable[[Frame], bool] = lambda f: True, timeout: float = 3.0) -> Frame:
        """The next frame that matches; non-matching frames before it are skipped."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while self._pending:
                frame = self._pending.popleft()
                if match(frame):
                    return frame
            self._pending.extend(self.decoder.feed(self._read()))
        raise AssertionError(f"no matching frame within {timeout}s")

    def signals(self, count: int, timeout: float = 3.0) -> list[tuple[int, SignalRecord]]:
        """The next `count` SIGNAL frames as (seq, record), skipping HELLO and KEEPALIVE."""
        return [self._signal(self.next_frame(lambda f: f.type == FrameType.SIGNAL, timeout)) for _ in range(count)]

    def frames(self, count: int, timeout: float = 3.0, keepalives: bool = False) -> list[tuple[Frame, records.Record]]:
        """The next `count` frames, decoded (KEEPALIVEs skipped unless asked for)."""
        out = []
        for _ in range(count):
            frame = self.next_frame(lambda f: keepalives or f.type != FrameType.KEEPALIVE, timeout)
            out.append((frame, records.decode(frame)))
        return out

    def raw_until(self, needle: bytes, timeout: float = 3.0) -> bytes:
        """Raw bytes up to and including `needle` (also fed to the decoder, so frames after it decode)."""
        deadline = time.monotonic() + timeout
        seen = b""
        while needle not in seen:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(needle)} expected bytes not seen within {timeout}s")
            chunk = self._read()
            seen += chunk
            self._pending.extend(self.decoder.feed(chunk))
        return seen

    def no_signal_within(self, seconds: float) -> bool:
        try:
            self.next_frame(lambda f: f.type == FrameType.SIGNAL, seconds)
        except AssertionError:
            return True
        return False

    def _read(self) -> bytes:
        """Whatever arrived, waiting at most the port timeout for the first byte (not for 4 KiB)."""
        first = self.port.read(1)
        return first + self.port.read(self.port.in_waiting) if first else b""

    @staticmethod
    def _signal(frame: Frame) -> tuple[int, SignalRecord]:
        record = records.decode(frame)
        assert isinstance(record, SignalRecord)
        return frame.seq, record

    def close(self) -> None:
        self.port.close()


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimProcess]:
    with start_sim(tmp_path / "sim") as running:
        yield running


@pytest.fixture(scope="session")
def shared_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    """One sim for the tests that only look at answers (errors, validation), to keep the suite fast:
    only refused or idempotent-relative requests go to it (never link faults that succeed)."""
    with start_sim(tmp_path_factory.mktemp("shared-sim")) as running:
        yield running


@pytest.fixture
def open_host() -> Iterator[Callable[..., FakeHost]]:
    """Open (and at teardown close) host connections to a pty link, by default with input flushed."""
    opened: list[FakeHost] = []

    def open_(path: Path, flush: bool = True) -> FakeHost:
        connection = FakeHost(path)
        if flush:
            connection.flush_input()
        opened.append(connection)
        return connection

    yield open_
    for connection in opened:
        connection.close()


@pytest.fixture
def host(sim: SimProcess, open_host: Callable[..., FakeHost]) -> FakeHost:
    return open_host(sim.pty_link)
