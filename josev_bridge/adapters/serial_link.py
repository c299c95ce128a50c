"""The serial port to the MCU: open and reopen with backoff, decode frames, keep-alives, acks.

One thread owns the port. It never gives up: a vanished device, a read or write error, or an open
failure closes the port and retries with exponential backoff (pyserial itself never reopens).
What the records mean is the `RecordSink`'s business; this module only moves bytes.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import serial

from ..config import SerialConfig
from ..core.clock_map import ClockSample
from ..core.link_state import LinkState
from ..protocol import records
from ..protocol.framing import PROTOCOL_VERSION, FrameDecoder
from ..protocol.records import Ack, ClockProbe, ClockReply, Hello, HostHello, KeepAlive, Record, RecordError, Skipped

log = logging.getLogger("josev_bridge.serial")

READ_TIMEOUT = 0.2  # the longest the loop sleeps in read(); bounds keep-alive and stop latency
REPLAY_INTERVAL = 0.5  # at most this often, ask the MCU to replay while a gap is open
HELLO_BURST = 4  # probes right after a HELLO, each sent when the previous one is answered (then 1 a second)
WANTED_PROBE_INTERVAL = 0.1  # while the sink waits for a clock sample (records from an outage), probe this often
PROBE_EXPIRY_US = 1_000_000  # a probe unanswered this long no longer holds back a wanted one
MAX_PROBES_IN_FLIGHT = 8  # unanswered clock probes remembered (an MCU that ignores them costs nothing)
ACK_COALESCE_S = 0.1  # records arriving within this window share one fsync'd save and one ACK


class RecordSink(Protocol):
    def on_record(self, seq: int, record: Record | Skipped) -> None: ...

    def flush(self) -> Ack | None:
        """Persist what was accepted; return the ack to send, if any. Called at most every
        ACK_COALESCE_S while records arrive, and once more when they stop."""

    def replay_wanted(self) -> bool:
        """True while records are missing that the MCU may still hold."""

    def clock_sample_wanted(self) -> bool:
        """True while records wait for a (new) clock sample: a boot not mapped yet, or records stamped
        during an outage, to be interpolated. Bounded by the sink (it stops wanting after a few)."""

    def on_link_state(self, state: LinkState, detail: str) -> None: ...

    def on_clock_sample(self, sample: ClockSample) -> None: ...


@dataclass
class LinkCounters:
    opens: int = 0
    open_failures: int = 0
    replay_requests: int = 0
    clock_probes: int = 0
    clock_replies: int = 0
    io_errors: int = 0
    record_errors: int = 0
    unknown_types: int = 0
    bytes_in: int = 0
    frames_out: int = 0


def _monotonic_us() -> int:
    return time.monotonic_ns() // 1000


class SerialLink:
    """Clock probes (docs/serial-protocol.md §5.1): one with every keep-alive (once a second); right
    after a HELLO a burst of HELLO_BURST, chained (each sent when the previous answer arrives: never
    a storm), because the first records of a boot wait for a sample and the best round trip of a few
    is a better one; and one every WANTED_PROBE_INTERVAL while the sink has records waiting for a
    sample (after an outage: they are interpolated once a low-latency sample after them arrives; the
    sink gives up waiting after a few samples)."""

    def __init__(self, cfg: SerialConfig, sink: RecordSink, monotonic_us: Callable[[], int] = _monotonic_us) -> None:
        """`monotonic_us`: the clock the probe samples are taken on (the host clock the fit lives on)."""
        self._cfg = cfg
        self._monotonic_us = monotonic_us
        self._sink = sink
        self._decoder = FrameDecoder()
        self.counters = LinkCounters()
        self.state = LinkState.CLOSED
        self.heartbeat = time.monotonic()  # advanced every loop turn; the watchdog checks it
        self._port: serial.Serial | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="serial", daemon=True)
        self._tx_seq = 0
        self._last_rx = 0.0
        self._last_keepalive = 0.0
        self._last_replay_request = 0.0
        self._probes: dict[int, int] = {}  # probe id -> host monotonic us when sent
        self._tx_probe = 0
        self._burst_left = 0  # chained probes still to send after a HELLO
        self._last_probe = 0.0  # time.monotonic() of the last probe sent
        self._rx_us = 0  # host monotonic us when the current read returned
        self._flush_at: float | None = None  # when the records delivered since the last flush are saved
        self.last_frame_at: float | None = None  # time.monotonic() when the last frame from the MCU arrived

    @property
    def decode_counters(self):
        return self._decoder.counters

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self._close("stopping")

    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- the loop ---------------------------------------------------------------------------------
    def _run(self) -> None:
        delay = self._cfg.reopen_min_delay
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            if self._port is None:
                if self._open():
                    delay = self._cfg.reopen_min_delay
                else:
                    self._stop.wait(delay)
                    delay = min(delay * 2, self._cfg.reopen_max_delay)
                continue
            try:
                self._turn()
            except (serial.SerialException, OSError) as exc:
                self.counters.io_errors += 1
                self._close(f"I/O error: {exc}")
            except Exception:  # a bug must not end the link: log it, reopen, go on
                log.exception("unexpected error in the serial loop; reopening the port")
                self._close("internal error")
        if self._flush_at is not None:  # stopping: save what was applied (the ack may not get out)
            try:
                self._flush()
            except (serial.SerialException, OSError):
                pass

    def _turn(self) -> None:
        port = self._port
        assert port is not None
        data = self._read(port)
        self._rx_us = self._monotonic_us()
        now = time.monotonic()
        if data:
            self.counters.bytes_in += len(data)
            frames = self._decoder.feed(data)
            if frames:
                self._last_rx = now
                self.last_frame_at = now
                self._set_state(LinkState.OPEN, "MCU heard")
                for frame in frames:
                    self._deliver(frame)
                if self._flush_at is None:
                    self._flush_at = now + (ACK_COALESCE_S if self._can_wait(port) else 0.0)
        if self._flush_at is not None and now >= self._flush_at:
            self._flush()
        if self._sink.replay_wanted() and now - self._last_replay_request >= REPLAY_INTERVAL:
            log.info("MCU records missing (after a gap, or sent as its KEEPALIVE says): asking the MCU to replay")
            self._send(HostHello(PROTOCOL_VERSION))  # the MCU answers HELLO and replays all it still holds
            self._last_replay_request = now
            self.counters.replay_requests += 1
        if now - self._last_probe >= WANTED_PROBE_INTERVAL and self._sink.clock_sample_wanted() \
                and self._recent_probes() < 2:  # (an MCU that does not answer gets one a second)
            self._probe_clock()
        if now - self._last_keepalive >= self._cfg.keepalive_interval:
            self._send(KeepAlive(time.time_ns() // 1000))
            self._probe_clock()
            self._last_keepalive = now
        if self.state is LinkState.OPEN and now - self._last_rx > self._cfg.mcu_silence_timeout:
            self._set_state(LinkState.SILENT, f"no frame from the MCU for {self._cfg.mcu_silence_timeout:g} s")

    def _read(self, port: serial.Serial) -> bytes:
        """What the port holds now; else wait for bytes, at most until the pending flush is due."""
        waiting = port.in_waiting
        if waiting:
            return port.read(waiting)
        if self._flush_at is None:
            return port.read(1)  # blocks up to READ_TIMEOUT
        remaining = self._flush_at - time.monotonic()
        if remaining <= 0:
            return b""
        readable, _, _ = select.select([port.fileno()], [], [], remaining)
        return port.read(max(1, port.in_waiting)) if readable else b""

    @staticmethod
    def _can_wait(port: serial.Serial) -> bool:
        """Coalescing needs a file descriptor to wait on; URL ports (loop://, socket://) flush at once."""
        try:
            port.fileno()
        except Exception:
            return False
        return True

    def _flush(self) -> None:
        self._flush_at = None
        ack = self._sink.flush()
        if ack is not None:
            self._send(ack)

    def _deliver(self, frame) -> None:
        try:
            record = records.decode(frame)
        except RecordError as exc:
            self.counters.record_errors += 1
            log.error("MCU frame seq=%d type=0x%02x has a valid checksum but a bad body: %s",
                      frame.seq, frame.type, exc)
            if frame.seq:  # a numbered record: it keeps its place, so the ones after it are not held
                self._sink.on_record(frame.seq, records.Skipped(frame.type, f"bad body: {exc}"))
            return
        if isinstance(record, records.Unknown):
            self.counters.unknown_types += 1
            if frame.seq:
                log.warning("MCU record seq=%d of unknown type 0x%02x skipped (newer firmware?)", frame.seq,
                            record.type)
                self._sink.on_record(frame.seq, records.Skipped(record.type, "unknown record type"))
            else:
                log.debug("skipping MCU frame of unknown type 0x%02x", record.type)
            return
        if isinstance(record, ClockReply):
            sent = self._probes.pop(record.probe_id, None)
            if sent is not None:
                self.counters.clock_replies += 1
                self._sink.on_clock_sample(ClockSample(record.mcu_time_us, (sent + self._rx_us) // 2,
                                                       self._rx_us - sent))
                if self._burst_left > 0:
                    self._burst_left -= 1
                    self._probe_clock()
            return
        self._sink.on_record(frame.seq, record)
        if isinstance(record, Hello):
            self._probe_clock()  # a (new) boot's clock: map it before its records are applied
            self._burst_left = HELLO_BURST - 1

    def _recent_probes(self) -> int:
        """Probes unanswered for under PROBE_EXPIRY_US; older ones are forgotten (a reply that late
        would say nothing: its round trip is the error)."""
        oldest = self._monotonic_us() - PROBE_EXPIRY_US
        self._probes = {probe: sent for probe, sent in self._probes.items() if sent >= oldest}
        return len(self._probes)

    def _probe_clock(self) -> None:
        self._tx_probe = (self._tx_probe + 1) & 0xFFFFFFFF
        while len(self._probes) >= MAX_PROBES_IN_FLIGHT:
            self._probes.pop(next(iter(self._probes)))
        self._probes[self._tx_probe] = self._monotonic_us()
        self._last_probe = time.monotonic()
        self._send(ClockProbe(self._tx_probe))
        self.counters.clock_probes += 1

    # -- port handling ----------------------------------------------------------------------------
    def _open(self) -> bool:
        url = self._cfg.url
        try:
            if "://" in url:
                port = serial.serial_for_url(url, baudrate=self._cfg.baudrate, timeout=READ_TIMEOUT)
            else:
                port = serial.Serial(url, baudrate=self._cfg.baudrate, timeout=READ_TIMEOUT,
                                     write_timeout=1.0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            self.counters.open_failures += 1
            if self.counters.open_failures == 1 or self.state is not LinkState.CLOSED:
                log.error("cannot open serial port %s: %s (retrying with backoff)", url, exc)
            self._set_state(LinkState.CLOSED, f"cannot open {url}")
            return False
        self._port = port
        self.counters.opens += 1
        self._decoder.reset()
        self._last_rx = time.monotonic()
        log.info("serial port %s open at %d baud", url, self._cfg.baudrate)
        try:
            port.write(b"\x00")  # ends any partial frame the MCU is decoding
            self._send(HostHello(PROTOCOL_VERSION))  # the MCU answers HELLO and replays unacked records
        except (serial.SerialException, OSError) as exc:
            self._close(f"write failed right after open: {exc}")
            return False
        self._set_state(LinkState.OPEN, "port open")
        return True

    def _send(self, record: Record) -> None:
        if self._port is None:
            return
        self._tx_seq = (self._tx_seq + 1) & 0xFFFFFFFF
        self._port.write(records.encode(record, self._tx_seq))
        self.counters.frames_out += 1

    def _close(self, why: str) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except Exception:  # closing a vanished device may fail; it is gone either way
                pass
            log.warning("serial port %s closed: %s", self._cfg.url, why)
        self._set_state(LinkState.CLOSED, why)

    def _set_state(self, state: LinkState, detail: str) -> None:
        if state is self.state:
            return
        self.state = state
        if state is LinkState.SILENT:
            log.warning("MCU link %s: %s", state.value, detail)
        self._sink.on_link_state(state, detail)
