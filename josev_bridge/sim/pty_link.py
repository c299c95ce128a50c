"""The sim's serial side: a pty whose slave end the bridge opens as if it were the MCU's UART.

The slave fd stays open in the sim for its whole life (except during `link-unplug`), so the master
never sees EIO when the bridge closes or reopens the port. Writes go through one writer thread with
a bounded outbox and a write timeout: when nobody reads the pty, frames are dropped (the records stay
in the MCU's ring buffer for replay after the next HOST_HELLO) instead of blocking the control API.

The outbox has a priority lane for CLOCK_REPLY, whose delay adds to the host's clock-mapping error:
a reply overtakes queued records and waits at most for the frame being written. Link faults for
tests: corrupted frames, noise, silence (the outbox is held), an MCU reboot (announced with HELLOs)
and an unplugged device (the pty is closed, the link removed, and later a new pty is linked).
"""

from __future__ import annotations

import errno
import logging
import os
import select
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..protocol import records
from ..protocol.framing import DELIMITER, Frame, FrameDecoder
from ..protocol.records import Ack, ClockProbe, ClockReply, Hello, HostHello, KeepAlive, RecordError
from .link_counters import LinkCounters
from .link_faults import LinkConflict, corrupt, random_bytes
from .mcu import SentRecord, SimulatedMcu
from .outbox import Outbox
from .pty_node import StaleLinkError, install_link, remove_link

log = logging.getLogger("josev_bridge.sim.pty")

KEEPALIVE_INTERVAL_S = 1.0
WRITE_TIMEOUT_S = 0.5  # per frame: longer means nobody is reading the pty
POLL_S = 0.5  # idle threads re-check the stop flag; close() also wakes them at once
OUT_OF_BAND_SEQ = 0  # HELLO, KEEPALIVE and CLOCK_REPLY are not numbered records; records start at 1


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
        self.last_host_clock_us: int | None = None  # the host's clock in its last keepalive
        self._last_host_keepalive: float | None = None  # time.monotonic() when it came
        self._outbox = Outbox(size)
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()  # written by close(): ends every select at once
        self._kick_r, self._kick_w = os.pipe()  # written by unplug/replug: the reader re-reads the fds
        os.set_blocking(self._kick_w, False)
        self._threads: list[threading.Thread] = []
        self._replug_thread: threading.Thread | None = None
        self._decoder = FrameDecoder()
        self._rx_true_us = 0  # TRUE clock when the chunk being decoded was read
        self._corrupt_next = 0
        # The pty: replaced on unplug/replug. `_gen` counts replacements; reads and writes happen
        # under `_io_lock` and only if the generation they started with is still current, so a
        # closed (and possibly reused) fd number is never read or written.
        self._io_lock = threading.Lock()
        self._gen = 0
        self._dirty = False  # a frame was cut short on this pty: delimit before the next one
        self._writer_gen = 0
        self.master_fd = self.slave_fd = -1
        self.pty_path: str | None = None
        self._plugged = threading.Event()
        self._unplugged_until: float | None = None
        self.replug_error: str | None = None
        try:
            self._open_pty()
        except BaseException:
            for fd in (self._wake_r, self._wake_w, self._kick_r, self._kick_w):
                os.close(fd)
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
        self._outbox.close()
        for thread in [*self._threads, *([self._replug_thread] if self._replug_thread else [])]:
            thread.join(timeout=2.0)
        with self._io_lock:
            path = self.pty_path
            self._close_pty_locked()
        if path is not None:
            remove_link(self.link_path, path)
        for fd in (self._wake_r, self._wake_w, self._kick_r, self._kick_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        try:
            tty.setraw(slave)
            os.set_blocking(master, False)
            path = os.ttyname(slave)
            install_link(self.link_path, path)
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        with self._io_lock:
            self.master_fd, self.slave_fd, self.pty_path = master, slave, path
            self._gen += 1
        self._unplugged_until = None
        self._plugged.set()
        self._kick()

    def _close_pty_locked(self) -> None:
        for fd in (self.master_fd, self.slave_fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master_fd = self.slave_fd = -1
        self.pty_path = None
        self._gen += 1

    def _kick(self) -> None:
        try:
            os.write(self._kick_w, b"k")
        except (BlockingIOError, OSError):
            pass  # a kick is already pending (or we are closing)

    # -- sending ----------------------------------------------------------------------------------
    def send_hello(self) -> None:
        """HELLO, led by a lone 0x00 that ends any half-received frame (docs/serial-protocol.md §2)."""
        self._send_hello_for(self.mcu.boot_id, self.mcu.oldest_seq, self.mcu.next_seq)

    def _send_hello_for(self, boot_id: int, oldest_seq: int, next_seq: int) -> None:
        hello = Hello(self.mcu.protocol_version, boot_id, self.mcu.firmware, oldest_seq=oldest_seq, next_seq=next_seq)
        self._enqueue(DELIMITER + records.encode(hello, OUT_OF_BAND_SEQ))

    def send_records(self, sent: list[SentRecord]) -> None:
        """Queue record frames (any type); call with `lock` held so frames leave in seq order."""
        for item in sent:
            frame = records.encode(item.record, item.seq)
            if self._corrupt_next > 0:  # a link fault for tests: the record stays in the ring for replay
                self._corrupt_next -= 1
                frame = corrupt(frame)
            self._enqueue(frame)

    def announce(self) -> int:
        """HELLO and replay: for every earlier boot still holding unacknowledged records (kept over
        a reboot) its HELLO and records, then this boot's HELLO and records. Call with `lock` held."""
        count = 0
        for ring in self.mcu.previous_boots():
            self._send_hello_for(ring.boot_id, ring.oldest_seq, ring.next_seq)
            self.send_records(list(ring.records))
            count += len(ring.records)
        self.send_hello()
        unacked = self.mcu.unacked()
        self.send_records(unacked)
        return count + len(unacked)

    def _enqueue(self, frame: bytes, urgent: bool = False) -> bool:
        if not self._plugged.is_set():
            self.counters.frames_lost_unplugged += 1
            return False
        if not self._outbox.put(frame, urgent):
            self.counters.frames_dropped += 1
            return False
        return True

    # -- link faults ----------------------------------------------------------------------------------
    def corrupt_next(self, count: int) -> None:
        """Damage the next `count` record frames on the line (line noise, as a test fault)."""
        with self.lock:
            self._corrupt_next += count

    def inject_noise(self, count: int, seed: int | None = None) -> dict:
        """`count` random bytes between two frames, then a 0x00 that ends them."""
        self._require_plugged()
        noise, seed = random_bytes(count, seed)
        with self.lock:  # between two frames, after everything queued so far
            self._enqueue(noise + DELIMITER)
        self.counters.noise_bytes += count
        return {"noise_bytes": count, "seed": seed}

    def silence(self, seconds: float) -> dict:
        """Send nothing for `seconds`: queued and new frames wait, keepalives and clock replies are not made."""
        self._require_plugged()
        self.counters.clock_replies_suppressed += self._outbox.hold(seconds)
        self.counters.silences += 1
        return {"silent_for_s": seconds}

    def reboot(self, keep_ring: bool, warm: bool = False) -> dict:
        """The MCU reboots: frames not yet sent are lost; the new boot (and kept rings) announced,
        then the new boot's level reports (in its ring)."""
        with self.lock:
            info = self.mcu.reboot(keep_ring, warm=warm)
            self._outbox.clear()
            self.announce()
        self.counters.reboots += 1
        log.info("MCU rebooted: boot %d -> %d, %d records kept, %d lost", info["previous_boot_id"],
                 info["boot_id"], info["kept"], info["lost"])
        return info

    def unplug(self, seconds: float) -> dict:
        """The device vanishes: close the pty, remove the link; a new pty is linked after `seconds`."""
        with self._io_lock:
            if self._stop.is_set() or not self._plugged.is_set():
                raise LinkConflict("the serial device is already unplugged")
            self._plugged.clear()
            self._unplugged_until = time.monotonic() + seconds
            path = self.pty_path
            self._close_pty_locked()
        self._kick()
        self.counters.frames_lost_unplugged += self._outbox.clear()
        if path is not None:
            remove_link(self.link_path, path)
        self.counters.unplugs += 1
        log.info("serial device unplugged (%s) for %g s", path, seconds)
        self._replug_thread = threading.Thread(target=self._replug_after, args=(seconds,), name="sim-replug",
                                               daemon=True)
        self._replug_thread.start()
        return {"unplugged_for_s": seconds}

    def _replug_after(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            return
        try:
            self._open_pty()
        except (OSError, StaleLinkError) as exc:
            self.replug_error = str(exc)
            log.error("could not plug the serial device back in: %s", exc)
            return
        self.counters.replugs += 1
        log.info("serial device plugged back in: %s -> %s", self.link_path, self.pty_path)

    def _require_plugged(self) -> None:
        if not self._plugged.is_set():
            raise LinkConflict("the serial device is unplugged")

    # -- the writer -------------------------------------------------------------------------------------
    def _write_loop(self) -> None:
        while not self._stop.is_set():
            frame = self._outbox.get(POLL_S)
            if frame is None:
                continue
            if self._write_frame(frame):
                self.counters.frames_out += 1
            else:
                self.counters.frames_dropped += 1

    def _write_frame(self, frame: bytes) -> bool:
        """Write one frame within the timeout; False (and the line marked dirty) if it did not fit."""
        with self._io_lock:
            fd, gen = self.master_fd, self._gen
        if gen != self._writer_gen:  # a new pty: nothing half-written on it
            self._writer_gen, self._dirty = gen, False
        if fd < 0:
            self.counters.frames_lost_unplugged += 1
            return False
        if self._dirty:
            frame = DELIMITER + frame
        self._dirty = False
        view = memoryview(frame)
        deadline = time.monotonic() + self.write_timeout_s
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stop.is_set():
                self._dirty = len(view) < len(frame)
                if len(view) == len(frame):
                    log.debug("pty full (no reader?): dropped a %d-byte frame", len(frame))
                return False
            try:
                _, writable, _ = select.select([self._wake_r], [fd], [], remaining)
            except (OSError, ValueError):  # the fd was closed under us: unplugged
                return False
            if fd not in writable:
                continue
            with self._io_lock:
                if gen != self._gen:
                    return False  # unplugged mid-frame
                try:
                    written = os.write(fd, view)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    log.warning("pty write failed: %s", exc)
                    self._dirty = len(view) < len(frame)
                    return False
            view = view[written:]
        return True

    def _keepalive_loop(self) -> None:
        """Every record is queued under `lock` as it is made, so under it the ring's next seq is "one
        past the last record put on the line", which a version-2 KEEPALIVE tells the host (§4.6)."""
        while not self._stop.wait(self.keepalive_interval_s):
            if self._plugged.is_set() and not self._outbox.holding():
                with self.lock:
                    mcu = self.mcu
                    ring = (mcu.boot_id, mcu.next_seq) if mcu.protocol_version >= 2 else (None, None)
                    self._enqueue(records.encode(KeepAlive(mcu.mcu_clock.now(), *ring), OUT_OF_BAND_SEQ))

    # -- receiving --------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        reader_gen = -1
        while not self._stop.is_set():
            with self._io_lock:
                fd, gen = self.master_fd, self._gen
            if gen != reader_gen:  # a new pty (or none): forget any half-received frame
                self._decoder.reset()
                reader_gen = gen
            watch = [self._wake_r, self._kick_r] + ([fd] if fd >= 0 else [])
            try:
                readable, _, _ = select.select(watch, [], [], POLL_S)
            except (OSError, ValueError):  # the fd was closed under us: the next turn sees why
                self._stop.wait(0.01)
                continue
            if self._kick_r in readable:
                try:
                    os.read(self._kick_r, 64)
                except OSError:
                    pass
            if fd < 0 or fd not in readable:
                continue
            with self._io_lock:
                if gen != self._gen:
                    continue
                try:
                    data = os.read(fd, 4096)
                except BlockingIOError:
                    continue
                except OSError as exc:  # EIO cannot happen while we hold the slave, but never die on it
                    if exc.errno != errno.EIO:
                        log.warning("pty read failed: %s", exc)
                    data = None
            if data is None:
                self._stop.wait(POLL_S)
                continue
            self._rx_true_us = self.mcu.true_clock()  # the receipt time of every frame in this chunk
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

    def _on_clock_probe(self, record: ClockProbe) -> None:
        """Answer at once with the MCU clock at receipt, on the priority lane (unless silent)."""
        mcu_us = self.mcu.mcu_clock.at(self._rx_true_us)
        self.counters.clock_probes += 1
        if self._outbox.holding() or not self._plugged.is_set():
            self.counters.clock_replies_suppressed += 1
            return
        if self._enqueue(records.encode(ClockReply(record.probe_id, mcu_us), OUT_OF_BAND_SEQ), urgent=True):
            self.counters.clock_replies += 1

    def _on_host_hello(self, record: HostHello) -> None:
        """The host (re)opened the port: say who we are, then replay what it has not acknowledged."""
        self.counters.host_hellos += 1
        if record.protocol_version != self.mcu.protocol_version:  # answered as always (§4.1): it adapts
            log.warning("host speaks protocol version %d, this MCU %d", record.protocol_version,
                        self.mcu.protocol_version)
        with self.lock:
            replayed = self.announce()
        log.info("HOST_HELLO: replayed %d unacknowledged records", replayed)

    def _on_ack(self, record: Ack) -> None:
        self.counters.acks += 1
        with self.lock:
            accepted = self.mcu.ack(record.boot_id, record.seq)
        if not accepted:
            self.counters.foreign_acks += 1
            log.info("ignoring ACK for boot %d (this boot is %d)", record.boot_id, self.mcu.boot_id)

    def _on_keepalive(self, record: KeepAlive) -> None:
        self._last_host_keepalive = time.monotonic()
        self.last_host_clock_us = record.time_us

    def _keepalive_age_s(self) -> float | None:
        last = self._last_host_keepalive
        return None if last is None else round(time.monotonic() - last, 3)

    def status(self) -> dict:
        plugged = self._plugged.is_set()
        held = self._outbox.holding()
        until = self._unplugged_until
        return {
            "pty": self.pty_path,
            "pty_link": str(self.link_path),
            "state": "unplugged" if not plugged else "silent" if held else "up",
            "silent_for_s": round(held, 3),
            "unplugged_for_s": round(max(0.0, until - time.monotonic()), 3) if until and not plugged else 0.0,
            "replug_error": self.replug_error,
            "host_keepalive_age_s": self._keepalive_age_s(),
            "last_host_clock_us": self.last_host_clock_us,
            "queued_frames": len(self._outbox),
            "counters": vars(self.counters).copy(),
            "decoder": vars(self._decoder.counters).copy(),
        }


_HANDLERS: dict[type, Callable[[PtyLink, Any], None]] = {
    HostHello: PtyLink._on_host_hello,
    Ack: PtyLink._on_ack,
    KeepAlive: PtyLink._on_keepalive,
    ClockProbe: PtyLink._on_clock_probe,
}
