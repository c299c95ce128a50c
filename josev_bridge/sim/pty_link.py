"""The sim's serial side: a pty whose slave end the bridge opens as if it were the MCU's UART.

The slave fd stays open in the sim for its whole life, so the master never sees EIO when the bridge
closes or reopens the port. Writes go through one writer thread with a bounded queue and a write
timeout: when nobody reads the pty, frames are dropped (the records stay in the MCU's ring buffer
for replay after the next HOST_HELLO) instead of blocking the control API.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import select
import threading
import time
import tty
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..protocol import records
from ..protocol.framing import DELIMITER, PROTOCOL_VERSION, Frame, FrameDecoder
from ..protocol.records import Ack, ClockProbe, ClockReply, Hello, HostHello, KeepAlive, RecordError
from .mcu import SentRecord, SimulatedMcu

log = logging.getLogger("josev_bridge.sim.pty")

KEEPALIVE_INTERVAL_S = 1.0
WRITE_TIMEOUT_S = 0.5  # per frame: longer means nobody is reading the pty
POLL_S = 0.5  # idle threads re-check the stop flag; close() also wakes them at once
OUT_OF_BAND_SEQ = 0  # HELLO and KEEPALIVE are not numbered records; SIGNALs start at 1


@dataclass
class LinkCounters:
    frames_in: int = 0
    bad_records: int = 0
    unknown_frames: int = 0
    host_hellos: int = 0
    acks: int = 0
    foreign_acks: int = 0  # ACKs naming another boot id
    frames_out: int = 0
    frames_dropped: int = 0  # queue full or write timed out; SIGNALs among them remain replayable


class StaleLinkError(RuntimeError):
    """The --pty-link path exists and is not a symlink: refuse to clobber a real file."""


def install_link(link: Path, target: str) -> None:
    """Point `link` at `target`, replacing an old symlink atomically, never a regular file."""
    if link.exists() and not link.is_symlink():
        raise StaleLinkError(f"{link} exists and is not a symlink; not replacing it")
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def remove_link(link: Path, target: str) -> None:
    """Remove `link` only if it still points at our pty (another sim may have taken the path over)."""
    try:
        if link.is_symlink() and os.readlink(link) == target:
            link.unlink()
    except OSError as exc:
        log.warning("could not remove %s: %s", link, exc)


class PtyLink:
    """Owns the pty pair and the reader, writer and keepalive threads of one simulated MCU."""

    def __init__(self, mcu: SimulatedMcu, lock: threading.RLock, link_path: Path,
                 queue_size: int | None = None, write_timeout_s: float = WRITE_TIMEOUT_S,
                 keepalive_interval_s: float = KEEPALIVE_INTERVAL_S) -> None:
        self.mcu = mcu
        self.lock = lock  # the MCU lock: enqueueing under it keeps the line in seq order
        self.link_path = link_path
        self.write_timeout_s = write_timeout_s
        self.keepalive_interval_s = keepalive_interval_s
        size = queue_size if queue_size is not None else mcu.ring_size + 64  # room for a full replay
        self.counters = LinkCounters()
        self.last_host_keepalive_us: int | None = None  # sim clock when the host's last keepalive came
        self.last_host_clock_us: int | None = None  # the host's clock in that keepalive
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()  # written by close(): ends the reader's select at once
        self._threads: list[threading.Thread] = []
        self._decoder = FrameDecoder()
        self._dirty = False  # a frame was cut short: delimit before the next one
        self.master_fd, self.slave_fd = os.openpty()
        tty.setraw(self.slave_fd)
        os.set_blocking(self.master_fd, False)
        self.pty_path = os.ttyname(self.slave_fd)
        try:
            install_link(link_path, self.pty_path)
        except BaseException:
            self._close_fds()
            raise

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the threads and announce the boot with a HELLO."""
        self.send_hello()
        for name, target in (("writer", self._write_loop), ("reader", self._read_loop),
                             ("keepalive", self._keepalive_loop)):
            thread = threading.Thread(target=target, name=f"sim-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        """Stop the threads, remove the link (if still ours) and close the pty. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        os.write(self._wake_w, b"x")
        try:
            self._queue.put_nowait(b"")  # wakes the writer; if the queue is full it polls instead
        except queue.Full:
            pass
        for thread in self._threads:
            thread.join(timeout=2.0)
        remove_link(self.link_path, self.pty_path)
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self.master_fd, self.slave_fd, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    # -- sending ----------------------------------------------------------------------------------
    def send_hello(self) -> None:
        """HELLO, led by a lone 0x00 that ends any half-received frame (docs/serial-protocol.md §2)."""
        unacked = self.mcu.unacked()
        next_seq = self.mcu.next_seq
        hello = Hello(PROTOCOL_VERSION, self.mcu.boot_id, self.mcu.firmware,
                      oldest_seq=unacked[0].seq if unacked else next_seq, next_seq=next_seq)
        self._enqueue(DELIMITER + records.encode(hello, OUT_OF_BAND_SEQ))

    def send_records(self, sent: list[SentRecord]) -> None:
        """Queue SIGNAL frames; call with `lock` held so frames leave in seq order."""
        for item in sent:
            frame = records.encode(item.record, item.seq)
            if self._corrupt_next > 0:  # a link fault for tests: the record stays in the ring for replay
                self._corrupt_next -= 1
                frame = corrupt(frame)
            self._enqueue(frame)

    def corrupt_next(self, count: int) -> None:
        """Damage the next `count` SIGNAL frames on the line (line noise, as a test fault)."""
        with self.lock:
            self._corrupt_next += count

    _corrupt_next = 0

    def _enqueue(self, frame: bytes) -> None:
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            self.counters.frames_dropped += 1

    def _write_loop(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if not frame:
                continue  # the wake-up from close()
            if self._dirty:
                frame = DELIMITER + frame
            self._dirty = False
            if self._write_frame(frame):
                self.counters.frames_out += 1
            else:
                self.counters.frames_dropped += 1

    def _write_frame(self, frame: bytes) -> bool:
        """Write one frame within the timeout; False (and the line marked dirty) if it did not fit."""
        view = memoryview(frame)
        deadline = time.monotonic() + self.write_timeout_s
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stop.is_set():
                self._dirty = len(view) < len(frame)
                if len(view) == len(frame):
                    log.debug("pty full (no reader?): dropped a %d-byte frame", len(frame))
                return False
            _, writable, _ = select.select([self._wake_r], [self.master_fd], [], remaining)
            if self.master_fd not in writable:
                continue
            try:
                view = view[os.write(self.master_fd, view):]
            except BlockingIOError:
                continue
            except OSError as exc:
                log.warning("pty write failed: %s", exc)
                self._dirty = len(view) < len(frame)
                return False
        return True

    def _keepalive_loop(self) -> None:
        while not self._stop.wait(self.keepalive_interval_s):
            self._enqueue(records.encode(KeepAlive(self.mcu.clock()), OUT_OF_BAND_SEQ))

    # -- receiving --------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self.master_fd, self._wake_r], [], [], POLL_S)
            if self.master_fd not in readable:
                continue
            try:
                data = os.read(self.master_fd, 4096)
            except BlockingIOError:
                continue
            except OSError as exc:  # EIO cannot happen while we hold the slave, but never die on it
                if exc.errno != errno.EIO:
                    log.warning("pty read failed: %s", exc)
                self._stop.wait(POLL_S)
                continue
            for frame in self._decoder.feed(data):
                try:
                    self._handle_frame(frame)
                except Exception:  # a sim bug must not silence the line for the rest of the run
                    log.exception("failed to handle a frame from the host")

    def _handle_frame(self, frame: Frame) -> None:
        self.counters.frames_in += 1
        try:
            record = records.decode(frame)
        except RecordError as exc:
            self.counters.bad_records += 1
            log.info("ignoring a malformed frame from the host: %s", exc)
            return
        handler: Callable | None = _HANDLERS.get(type(record))
        if handler is None:
            self.counters.unknown_frames += 1
            log.debug("ignoring a %s frame from the host", type(record).__name__)
            return
        handler(self, record)

    def _on_host_hello(self, record: HostHello) -> None:
        """The host (re)opened the port: say who we are, then replay what it has not acknowledged."""
        self.counters.host_hellos += 1
        if record.protocol_version != PROTOCOL_VERSION:
            log.warning("host speaks protocol version %d", record.protocol_version)
        with self.lock:
            self.send_hello()
            unacked = self.mcu.unacked()
            self.send_records(unacked)
        log.info("HOST_HELLO: replayed %d unacknowledged records", len(unacked))

    def _on_ack(self, record: Ack) -> None:
        self.counters.acks += 1
        with self.lock:
            accepted = self.mcu.ack(record.boot_id, record.seq)
        if not accepted:
            self.counters.foreign_acks += 1
            log.info("ignoring ACK for boot %d (this boot is %d)", record.boot_id, self.mcu.boot_id)

    def _on_keepalive(self, record: KeepAlive) -> None:
        self.last_host_keepalive_us = self.mcu.clock()
        self.last_host_clock_us = record.time_us

    def _keepalive_age_s(self) -> float | None:
        last = self.last_host_keepalive_us
        return None if last is None else round((self.mcu.clock() - last) / 1e6, 3)

    def status(self) -> dict:
        return {
            "pty": self.pty_path,
            "pty_link": str(self.link_path),
            "host_keepalive_age_s": self._keepalive_age_s(),
            "last_host_clock_us": self.last_host_clock_us,
            "queued_frames": self._queue.qsize(),
            "counters": vars(self.counters).copy(),
            "decoder": vars(self._decoder.counters).copy(),
        }


def _on_clock_probe(link: PtyLink, record: ClockProbe) -> None:
    """Answer at once with the MCU clock at receipt (docs/serial-protocol.md §5)."""
    mcu_time = link.mcu.clock()
    link._enqueue(records.encode(ClockReply(record.probe_id, mcu_time), OUT_OF_BAND_SEQ))


_HANDLERS: dict[type, Callable[[PtyLink, Any], None]] = {
    HostHello: PtyLink._on_host_hello,
    Ack: PtyLink._on_ack,
    KeepAlive: PtyLink._on_keepalive,
    ClockProbe: _on_clock_probe,
}


def corrupt(frame: bytes) -> bytes:
    """Flip bits in the middle of an encoded frame, never producing 0x00: the CRC check must fail."""
    data = bytearray(frame)
    i = len(data) // 2
    data[i] = data[i] ^ 0x5A or 0x01
    return bytes(data)
