"""MCU record ingest: how many records per second the bridge takes from a pty without loss, and its CPU.

    .venv/bin/python bench/ingest.py [--quick] [--records N] [--trials T] [--cpu-seconds S]

The bench plays the MCU itself, over a real pty (the slave end stays open in this process and a
symlink in the work directory names it; the bridge's `[serial] url` is that symlink), following
docs/serial-protocol.md: on HOST_HELLO it sends 0x00 + HELLO(v1, boot_id, firmware, oldest_seq,
next_seq) and replays every unacknowledged record in seq order; every CLOCK_PROBE is answered ahead
of queued records with CLOCK_REPLY carrying the MCU clock at receipt (the MCU clock is
time.time_ns() // 1000, so records map 1:1 to UTC); ACK(boot, seq) frees the ring; KEEPALIVE every
second. Unacknowledged records stay in a ring of 1,000,000, so nothing can be lost on the MCU side.

Every record is a SIGNAL toggling BAY_OCCUPIED (signal 3) on EVSE 1 / connector 1 with strictly
increasing time_us, so every record is an edge: the bridge's worst case (each edge is also an INFO
log line; the bridge runs at log level WARNING unless --log-level says otherwise).

Phases (one mosquitto, one bridge, one bare reader, all on loopback / ptys):
  warm-up     a few hundred records to each host, acknowledged, before anything is timed (the bridge
              only applies records once its clock mapping has a sample)
  throughput  N pre-encoded records written as fast as the pty accepts (512 frames per write), timed
              from the first byte written to the ACK covering the last seq: records/s = N / elapsed.
              Trials alternate between the bare reader (bench/bare_reader.py: the same pyserial open
              and read loop, FrameDecoder + records.decode + ACK per read batch; no persistence, no
              clock mapping, no MQTT) and the bridge. After the bridge's trials its status
              (`josev-bridge status --json`) must count every record applied and none lost.
  idle        the bridge's CPU with no records (keep-alives and clock probes only)
  rate        R records/s (default 100) for S seconds (default 30) after a 1 s lead-in; the bridge's
              utime+stime from /proc/<pid>/stat over the window = % of one core. Then the same for the
              bare reader: the floor of waking a Python pyserial reader once per record.
Every phase also reports how many CPUs the whole machine kept busy (/proc/stat), to flag other load.
Bars (the issue's): >= 20,000 records/s (median of the trials) with zero loss; < 5 % of one core at
100 records/s. Exit status 0 when every bar passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tty
from collections import deque
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import common  # bench/common.py; first: it puts this checkout on sys.path
from common import cpu_seconds, cpu_split, filesystem_of, load_average, mosquitto_version
from josev_bridge.adapters.log_output import level_of
from josev_bridge.core.conditions import Signal, SignalRecord
from josev_bridge.harness.bridge_process import BridgeProcess
from josev_bridge.harness.broker import Mosquitto
from josev_bridge.protocol import records
from josev_bridge.protocol.framing import DELIMITER, PROTOCOL_VERSION, FrameDecoder
from josev_bridge.protocol.records import Ack, ClockProbe, ClockReply, Hello, HostHello, KeepAlive, RecordError

RING_SIZE = 1_000_000
BATCH_FRAMES = 512  # frames per os.write
KEEPALIVE_S = 1.0
FIRMWARE = "bench-mcu 1"
EVSE, CONNECTOR, SIGNAL = 1, 1, Signal.BAY_OCCUPIED
STATUS_DEADLINE_S = 10.0  # the daemon refreshes status.json every 0.5-2 s
LEAD_IN_S = 1.0

BAR_RECORDS_PER_S = 20_000
BAR_CPU_PERCENT = 5.0
BAR_CPU_RATE = 100


# -- the MCU side -------------------------------------------------------------------------------------
@dataclass
class McuCounters:
    host_hellos: int = 0
    clock_probes: int = 0
    acks: int = 0
    foreign_acks: int = 0
    keepalives_in: int = 0
    bad_frames_in: int = 0
    records_made: int = 0
    replayed: int = 0
    ring_overflow: int = 0  # unacked records pushed out of the ring: lost for replay (must stay 0)
    write_errors: int = 0
    bytes_out: int = 0


class BenchMcu:
    """One simulated MCU on one pty: a ring of unacked records, a writer, a reader and a keep-alive thread."""

    def __init__(self, link: Path, ring_size: int = RING_SIZE, batch_frames: int = BATCH_FRAMES) -> None:
        self.link = link
        self.ring_size = ring_size
        self.batch_frames = batch_frames
        self.boot_id = secrets.randbelow(0xFFFFFFFF) + 1
        self.next_seq = 1
        self.last_time_us = 0
        self.counters = McuCounters()
        self._lock = threading.Lock()  # ring, outbox, urgent
        self._ring: deque[tuple[int, bytes]] = deque()
        self._outbox: deque[bytes] = deque()  # record frames to write, in seq order
        self._urgent: deque[bytes] = deque()  # HELLO, CLOCK_REPLY, KEEPALIVE: ahead of queued records
        self._work = threading.Event()
        self._stop = threading.Event()
        self._acked = threading.Condition()
        self.acked_seq = 0
        self._arm = False
        self.first_write_at: float | None = None  # perf_counter at the first write of a marked submit
        self._target: int | None = None
        self.target_acked_at: float | None = None  # perf_counter when the read bringing that ACK returned
        self._wake_r, self._wake_w = os.pipe()
        self.master_fd, self.slave_fd = os.openpty()
        tty.setraw(self.slave_fd)
        os.set_blocking(self.master_fd, False)
        self.pty_path = os.ttyname(self.slave_fd)
        link.unlink(missing_ok=True)
        os.symlink(self.pty_path, link)
        self._threads = [threading.Thread(target=t, name=f"mcu-{t.__name__}", daemon=True)
                         for t in (self._write_loop, self._read_loop, self._keepalive_loop)]
        for thread in self._threads:
            thread.start()

    # -- records ------------------------------------------------------------------------------------
    def make_frames(self, n: int) -> list[tuple[int, bytes]]:
        """n new SIGNAL frames (seq, bytes): each toggles BAY_OCCUPIED, stamped now, 1 µs apart at least."""
        start = max(time.time_ns() // 1000, self.last_time_us + 1)
        out = []
        for i in range(n):
            seq = self.next_seq + i
            record = SignalRecord(EVSE, CONNECTOR, SIGNAL, bool(seq & 1), start + i)  # seq 1 rises
            out.append((seq, records.encode(record, seq)))
        self.next_seq += n
        self.last_time_us = start + n - 1
        self.counters.records_made += n
        return out

    def submit(self, frames: list[tuple[int, bytes]], mark: bool = False) -> None:
        """Into the ring and onto the line. `mark`: time the first write of these frames."""
        with self._lock:
            self._ring.extend(frames)
            while len(self._ring) > self.ring_size:
                self._ring.popleft()
                self.counters.ring_overflow += 1
            if mark:
                self._arm, self.first_write_at = True, None
            self._outbox.extend(frame for _, frame in frames)
        self._work.set()

    def unacked(self) -> int:
        with self._lock:
            return len(self._ring)

    def expect_ack(self, seq: int) -> None:
        with self._acked:
            self._target, self.target_acked_at = seq, None

    def wait_ack(self, seq: int, timeout: float) -> bool:
        with self._acked:
            return self._acked.wait_for(lambda: self.acked_seq >= seq, timeout)

    def wait_host_hello(self, timeout: float) -> bool:
        with self._acked:
            return self._acked.wait_for(lambda: self.counters.host_hellos > 0, timeout)

    def _send_urgent(self, frame: bytes) -> None:
        with self._lock:
            self._urgent.append(frame)
        self._work.set()

    # -- threads ------------------------------------------------------------------------------------
    def _next_chunk(self) -> tuple[bytes | None, bool]:
        with self._lock:
            if self._urgent:
                chunk = b"".join(self._urgent)
                self._urgent.clear()
                return chunk, False
            if self._outbox:
                pop = self._outbox.popleft
                chunk = b"".join([pop() for _ in range(min(self.batch_frames, len(self._outbox)))])
                marked, self._arm = self._arm, False
                return chunk, marked
        return None, False

    def _write_loop(self) -> None:
        while not self._stop.is_set():
            self._work.clear()
            chunk, marked = self._next_chunk()
            if chunk is None:
                self._work.wait(0.5)
                continue
            if marked:
                self.first_write_at = time.perf_counter()
            view = memoryview(chunk)
            while view and not self._stop.is_set():
                try:
                    view = view[os.write(self.master_fd, view):]
                except BlockingIOError:  # the pty is full: wait until the host reads
                    select.select([self._wake_r], [self.master_fd], [], 0.5)
                except OSError:
                    self.counters.write_errors += 1
                    self._stop.wait(0.1)
            self.counters.bytes_out += len(chunk)

    def _read_loop(self) -> None:
        decoder = FrameDecoder()
        while not self._stop.is_set():
            readable, _, _ = select.select([self.master_fd, self._wake_r], [], [], 0.5)
            if self.master_fd not in readable:
                continue
            try:
                data = os.read(self.master_fd, 65536)
            except BlockingIOError:
                continue
            except OSError:  # EIO cannot happen while we hold the slave; never spin on it
                self._stop.wait(0.1)
                continue
            mcu_now_us = time.time_ns() // 1000  # the MCU clock when the bytes arrived
            arrived = time.perf_counter()
            for frame in decoder.feed(data):
                try:
                    record = records.decode(frame)
                except RecordError:
                    self.counters.bad_frames_in += 1
                    continue
                if isinstance(record, ClockProbe):
                    self.counters.clock_probes += 1
                    self._send_urgent(records.encode(ClockReply(record.probe_id, mcu_now_us), 0))
                elif isinstance(record, Ack):
                    self._on_ack(record, arrived)
                elif isinstance(record, HostHello):
                    self._on_host_hello()
                elif isinstance(record, KeepAlive):
                    self.counters.keepalives_in += 1

    def _on_host_hello(self) -> None:
        with self._lock:
            oldest = self._ring[0][0] if self._ring else self.next_seq
            hello = Hello(PROTOCOL_VERSION, self.boot_id, FIRMWARE, oldest_seq=oldest, next_seq=self.next_seq)
            self._urgent.append(DELIMITER + records.encode(hello, 0))
            self._outbox.clear()  # everything in it is in the ring: replay the ring, in order
            self._outbox.extend(frame for _, frame in self._ring)
            self.counters.replayed += len(self._ring)
        with self._acked:
            self.counters.host_hellos += 1
            self._acked.notify_all()
        self._work.set()

    def _on_ack(self, ack: Ack, arrived: float) -> None:
        if ack.boot_id != self.boot_id:
            self.counters.foreign_acks += 1
            return
        with self._lock:
            ring = self._ring
            while ring and ring[0][0] <= ack.seq:
                ring.popleft()
        with self._acked:
            self.counters.acks += 1
            if ack.seq > self.acked_seq:
                self.acked_seq = ack.seq
            if self._target is not None and self.target_acked_at is None and self.acked_seq >= self._target:
                self.target_acked_at = arrived
            self._acked.notify_all()

    def _keepalive_loop(self) -> None:
        while not self._stop.wait(KEEPALIVE_S):
            self._send_urgent(records.encode(KeepAlive(time.time_ns() // 1000), 0))

    def close(self) -> None:
        self._stop.set()
        self._work.set()
        os.write(self._wake_w, b"x")
        for thread in self._threads:
            thread.join(2.0)
        try:
            if self.link.is_symlink() and os.readlink(self.link) == self.pty_path:
                self.link.unlink()
        except OSError:
            pass
        for fd in (self.master_fd, self.slave_fd, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


# -- measuring ----------------------------------------------------------------------------------------
def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat (idle and iowait are not busy)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(values) - values[3] - values[4], sum(values)


def busy_cores(before: tuple[int, int], after: tuple[int, int]) -> float:
    """How many CPUs the whole machine kept busy between two machine_ticks() readings."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total * os.cpu_count() if total else math.nan


@dataclass
class Trial:
    host: str
    records: int
    elapsed_s: float
    records_per_s: float
    cpu_s: float
    acks: int
    machine_busy_cores: float = math.nan

    @property
    def cpu_us_per_record(self) -> float:
        return self.cpu_s / self.records * 1e6


def throughput_trial(host: str, mcu: BenchMcu, pid: int, n: int) -> Trial:
    frames = mcu.make_frames(n)  # encoded before the clock starts
    last = frames[-1][0]
    acks0 = mcu.counters.acks
    mcu.expect_ack(last)
    cpu0, m0 = cpu_seconds(pid), machine_ticks()
    mcu.submit(frames, mark=True)
    del frames
    timeout = max(60.0, n / 1000)
    if not mcu.wait_ack(last, timeout):
        print(f"  {host}: no ACK of seq {last} within {timeout:.0f} s (acked up to {mcu.acked_seq})")
        return Trial(host, n, math.nan, 0.0, cpu_seconds(pid) - cpu0, mcu.counters.acks - acks0)
    cpu1, m1 = cpu_seconds(pid), machine_ticks()
    assert mcu.first_write_at is not None and mcu.target_acked_at is not None
    elapsed = mcu.target_acked_at - mcu.first_write_at
    return Trial(host, n, elapsed, n / elapsed, cpu1 - cpu0, mcu.counters.acks - acks0, busy_cores(m0, m1))


def warm_up(mcu: BenchMcu, n: int, what: str) -> None:
    frames = mcu.make_frames(n)
    mcu.submit(frames)
    if not mcu.wait_ack(frames[-1][0], 30.0):
        raise RuntimeError(f"{what}: warm-up records not acknowledged within 30 s (acked {mcu.acked_seq})")


def read_status(bridge: BridgeProcess) -> dict:
    cp = bridge.cli("status", "--json")
    try:
        return json.loads(cp.stdout)
    except ValueError:
        return {"ok": False, "problem": f"status --json printed no JSON (rc {cp.returncode}): {cp.stderr[-500:]}",
                "status": None}


def wait_status(bridge: BridgeProcess, expect_seq: int) -> dict:
    """The bridge's status once it reports `expect_seq` applied (or whatever it says at the deadline)."""
    end = time.monotonic() + STATUS_DEADLINE_S
    while True:
        doc = read_status(bridge)
        link = (doc.get("status") or {}).get("mcu_link") or {}
        if link.get("last_seq") == expect_seq and link.get("counters", {}).get("records") == expect_seq:
            return doc
        if time.monotonic() >= end:
            return doc
        time.sleep(0.3)  # the status file is refreshed by the daemon's 0.5 s housekeeping tick


FAULT_COUNTERS = ("crc_errors", "cobs_errors", "oversize", "runt", "bad_version", "discarded_bytes", "io_errors",
                  "record_errors", "unknown_types", "duplicates", "held", "lost_records", "untimed_records",
                  "clock_outliers", "clock_restarts", "persist_failures", "replay_requests")


def loss_check(doc: dict, expect_seq: int, mcu: BenchMcu) -> tuple[bool, str]:
    link = (doc.get("status") or {}).get("mcu_link") or {}
    c = link.get("counters") or {}
    others = {k: c.get(k) for k in FAULT_COUNTERS if c.get(k) and k not in ("lost_records", "duplicates", "held")}
    ok = (c.get("records") == expect_seq and link.get("last_seq") == expect_seq and c.get("lost_records") == 0
          and c.get("untimed_records") == 0 and mcu.counters.ring_overflow == 0)
    text = (f"records {c.get('records')} of {expect_seq}, last_seq {link.get('last_seq')}, lost_records "
            f"{c.get('lost_records')}, duplicates {c.get('duplicates')}, held {c.get('held')}, edges "
            f"{c.get('edges')}, port opens {c.get('opens')}; other fault counters: "
            f"{', '.join(f'{k} {v}' for k, v in others.items()) or 'none'}"
            f"; MCU ring overflow {mcu.counters.ring_overflow}")
    if not doc.get("ok"):
        text += f"; status problem: {doc.get('problem')}"
    return ok, text


def cpu_window(pid: int, seconds: float) -> tuple[float, float, float, float]:
    """(cpu s, of which system, wall s, machine busy cores) of `pid` over `seconds` of doing nothing here."""
    (u0, s0), t0, m0 = cpu_split(pid), time.monotonic(), machine_ticks()
    time.sleep(seconds)
    (u1, s1), t1, m1 = cpu_split(pid), time.monotonic(), machine_ticks()
    return u1 - u0 + s1 - s0, s1 - s0, t1 - t0, busy_cores(m0, m1)


def rate_phase(mcu: BenchMcu, pid: int, rate: float, seconds: float) -> dict:
    """Records at `rate`/s on an absolute schedule; CPU sampled after LEAD_IN_S, over `seconds`."""
    period = 1.0 / rate
    start = time.monotonic()
    k = 0
    first: tuple[tuple[float, float], float, int, tuple[int, int]] | None = None
    late = 0
    while True:
        due = start + k * period
        if first is None and due - start >= LEAD_IN_S:
            first = (cpu_split(pid), time.monotonic(), k, machine_ticks())
        if due - start >= LEAD_IN_S + seconds:
            break
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        elif now - due > period:
            late += 1
        mcu.submit(mcu.make_frames(1))
        k += 1
    assert first is not None
    (u1, s1), t1, m1 = cpu_split(pid), time.monotonic(), machine_ticks()
    (u0, s0), t0, k0, m0 = first
    cpu = u1 - u0 + s1 - s0
    wall = t1 - t0
    return {"records": k, "records_in_window": k - k0, "wall_s": wall, "cpu_s": cpu, "system_cpu_s": s1 - s0,
            "cpu_percent": cpu / wall * 100, "achieved_rate": (k - k0) / wall, "late_ticks": late,
            "machine_busy_cores": busy_cores(m0, m1)}


# -- machine facts -------------------------------------------------------------------------------------
def machine(workdir: Path) -> dict[str, str]:
    return common.machine(pyserial=metadata.version("pyserial"), mosquitto=mosquitto_version(),
                          **{"state dir fs": filesystem_of(workdir)})


# -- the run ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="MCU record ingest over a pty: records/s without loss, CPU at 100/s.")
    p.add_argument("--quick", action="store_true", help="a smoke run with small counts (seconds, not minutes)")
    p.add_argument("--records", type=int, help="records per throughput trial (default 100000)")
    p.add_argument("--trials", type=int, help="throughput trials per host, bare and bridge alternating (default 3)")
    p.add_argument("--warmup", type=int, help="records sent and acknowledged before timing (default 1000)")
    p.add_argument("--cpu-seconds", type=float, help="length of the CPU window at --rate (default 30)")
    p.add_argument("--idle-seconds", type=float, help="length of the idle CPU window (default 10)")
    p.add_argument("--rate", type=float, default=BAR_CPU_RATE, help="records/s in the CPU phase (default 100)")
    p.add_argument("--batch", type=int, default=BATCH_FRAMES, help="frames per write to the pty (default 512)")
    p.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="the bridge's log level (default WARNING; INFO logs one line per edge)")
    p.add_argument("--workdir", type=Path, help="where the bridge's state dir lives (default: a temp dir in $TMPDIR); "
                                                "put it on the storage the target uses: every read batch is fsynced")
    p.add_argument("--no-baseline", action="store_true", help="skip the bare reader")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    args = p.parse_args(argv)
    quick = args.quick
    for name, full, small in (("records", 100_000, 5_000), ("trials", 3, 1), ("warmup", 1000, 200),
                              ("cpu_seconds", 30.0, 5.0), ("idle_seconds", 10.0, 3.0)):
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    if args.records < 1 or args.trials < 1 or args.warmup < 1 or args.rate <= 0 or args.batch < 1:
        p.error("counts must be positive")
    return args


def start_bare_reader(link: Path) -> subprocess.Popen:
    return common.start_helper("bare_reader.py", str(link))


def stop_bare_reader(proc: subprocess.Popen) -> dict:
    """Its counters: the JSON line it prints on SIGTERM."""
    try:
        return json.loads(common.stop_helper(proc).strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common.exit_on_sigterm()  # `kill`, `timeout`: still stop what it started
    started = time.monotonic()
    results: dict = {"command": common.command_line(), "args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory(prefix="josev-bridge-ingest-", dir=args.workdir) as tmp:
        work = Path(tmp)
        info = machine(work)
        results["machine"] = info
        common.print_start(info, 15)
        print(f"{'records:':<15}SIGNAL {SIGNAL.name} ({int(SIGNAL)}) toggling on EVSE {EVSE}: every record is an "
              f"edge; bridge log level {args.log_level}")
        ok = run(args, work, results)
    elapsed = time.monotonic() - started
    results["elapsed_s"] = elapsed
    results["pass"] = ok
    print(f"load average at the end: {load_average()}")
    print(f"\n{'ALL BARS PASS' if ok else 'SOME BARS FAIL'} ({elapsed:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0 if ok else 1


def run(args: argparse.Namespace, work: Path, results: dict) -> bool:
    bridge_mcu = BenchMcu(work / "mcu-bridge", batch_frames=args.batch)
    bare_mcu = None if args.no_baseline else BenchMcu(work / "mcu-bare", batch_frames=args.batch)
    bare_proc = None
    bridge = None
    bare_counts: dict = {}
    try:
        with Mosquitto(work / "broker") as broker:
            bridge = BridgeProcess(work / "bridge", broker_port=broker.port, serial_url=str(bridge_mcu.link),
                                   identity="bench-charger", log_level=args.log_level)
            bridge.start()
            assert bridge.proc is not None
            bridge_pid = bridge.proc.pid
            print(f"{'bridge:':<15}pid {bridge_pid}, serial url {bridge_mcu.link} -> {bridge_mcu.pty_path}")
            if not bridge_mcu.wait_host_hello(10):
                raise RuntimeError("the bridge did not send HOST_HELLO within 10 s")
            warm_up(bridge_mcu, args.warmup, "bridge")
            if bare_mcu is not None:
                bare_proc = start_bare_reader(bare_mcu.link)
                print(f"{'bare reader:':<15}pid {bare_proc.pid}, {bare_mcu.link} -> {bare_mcu.pty_path}")
                if not bare_mcu.wait_host_hello(10):
                    raise RuntimeError("the bare reader did not send HOST_HELLO within 10 s")
                warm_up(bare_mcu, args.warmup, "bare reader")
            log_offset = len(bridge.log_text())

            # -- throughput ------------------------------------------------------------------------
            print(f"\nthroughput: {args.trials} trial(s) of {args.records} records per host, "
                  f"{args.batch} frames per write, first byte -> ACK of the last seq ...", flush=True)
            trials: list[Trial] = []
            for i in range(args.trials):
                hosts = [("bare", bare_mcu, bare_proc.pid)] if bare_mcu is not None and bare_proc else []
                hosts.append(("bridge", bridge_mcu, bridge_pid))
                if i % 2:
                    hosts.reverse()
                for host, mcu, pid in hosts:
                    trial = throughput_trial(host, mcu, pid, args.records)
                    trials.append(trial)
                    print(f"  trial {i + 1} {host:<6} {trial.records_per_s:>9,.0f} records/s  "
                          f"({trial.elapsed_s:.3f} s, {trial.acks} ACKs = {trial.records / max(trial.acks, 1):.0f} "
                          f"records per read batch, CPU {trial.cpu_s:.2f} s = {trial.cpu_us_per_record:.1f} "
                          f"µs/record; "
                          f"machine busy {trial.machine_busy_cores:.2f} CPUs)",
                          flush=True)
            expect = bridge_mcu.next_seq - 1
            doc = wait_status(bridge, expect)
            tp_ok, tp_text = loss_check(doc, expect, bridge_mcu)
            print(f"  bridge status after throughput: {tp_text}")
            results["throughput_trials"] = [{**asdict(t), "cpu_us_per_record": t.cpu_us_per_record} for t in trials]
            results["status_after_throughput"] = doc

            # -- idle and rate CPU -----------------------------------------------------------------------
            time.sleep(2.0)  # let the status heartbeat and the last flush settle
            print(f"\nidle: {args.idle_seconds:g} s without records (keep-alives and clock probes only) ...",
                  flush=True)
            idle_cpu, idle_sys, idle_wall, idle_busy = cpu_window(bridge_pid, args.idle_seconds)
            idle_pct = idle_cpu / idle_wall * 100
            print(f"  bridge CPU {idle_cpu:.3f} s (system {idle_sys:.3f} s) over {idle_wall:.1f} s = {idle_pct:.2f} % "
                  f"of one core; the whole machine kept {idle_busy:.2f} of {os.cpu_count()} CPUs busy")
            print(f"\nrate: {args.rate:g} records/s for {LEAD_IN_S:g} s lead-in + {args.cpu_seconds:g} s measured ...",
                  flush=True)
            rate = rate_phase(bridge_mcu, bridge_pid, args.rate, args.cpu_seconds)
            acked = bridge_mcu.wait_ack(bridge_mcu.next_seq - 1, 10.0)
            print(f"  bridge CPU {rate['cpu_s']:.3f} s (system {rate['system_cpu_s']:.3f} s) over "
                  f"{rate['wall_s']:.1f} s = {rate['cpu_percent']:.2f} % of one core at {rate['achieved_rate']:.1f} "
                  f"records/s ({rate['records']} records sent, {'all' if acked else 'NOT all'} acknowledged, "
                  f"{rate['late_ticks']} late ticks); the whole machine kept {rate['machine_busy_cores']:.2f} of "
                  f"{os.cpu_count()} CPUs busy")
            expect = bridge_mcu.next_seq - 1
            doc = wait_status(bridge, expect)
            rate_ok, rate_text = loss_check(doc, expect, bridge_mcu)
            print(f"  bridge status after the rate phase: {rate_text}")
            results["idle"] = {"cpu_s": idle_cpu, "system_cpu_s": idle_sys, "wall_s": idle_wall,
                               "cpu_percent": idle_pct, "machine_busy_cores": idle_busy}
            results["rate"] = rate
            results["status_after_rate"] = doc
            bare_rate = None
            if bare_mcu is not None and bare_proc is not None:
                print(f"\nrate, bare reader: {args.rate:g} records/s for {LEAD_IN_S:g} s lead-in + "
                      f"{args.cpu_seconds:g} s measured (the floor: waking a Python pyserial reader per record, "
                      f"decode, ACK) ...", flush=True)
                bare_rate = rate_phase(bare_mcu, bare_proc.pid, args.rate, args.cpu_seconds)
                bare_mcu.wait_ack(bare_mcu.next_seq - 1, 10.0)
                print(f"  bare reader CPU {bare_rate['cpu_s']:.3f} s (system {bare_rate['system_cpu_s']:.3f} s) over "
                      f"{bare_rate['wall_s']:.1f} s = {bare_rate['cpu_percent']:.2f} % of one core at "
                      f"{bare_rate['achieved_rate']:.1f} records/s; the whole machine kept "
                      f"{bare_rate['machine_busy_cores']:.2f} of {os.cpu_count()} CPUs busy")
            results["bare_rate"] = bare_rate
            new_log = bridge.log_text()[log_offset:]
            problems = [line for line in new_log.splitlines() if level_of(line) in ("WARNING", "ERROR", "CRITICAL")]
            if problems:
                print(f"\nbridge log: {len(problems)} warning/error line(s) during the measurements, e.g.:")
                for line in problems[:10]:
                    print(f"  {line}")
            bridge_rc = bridge.stop()
            bridge = None
            if bare_proc is not None:
                bare_counts = stop_bare_reader(bare_proc)
                bare_proc = None
    finally:
        if bridge is not None:
            bridge.stop()
        if bare_proc is not None:
            bare_counts = stop_bare_reader(bare_proc)
        bridge_mcu.close()
        if bare_mcu is not None:
            bare_mcu.close()

    # -- the report -------------------------------------------------------------------------------------
    bridge_rates = [t.records_per_s for t in trials if t.host == "bridge"]
    bare_rates = [t.records_per_s for t in trials if t.host == "bare"]
    bridge_med = statistics.median(bridge_rates)
    bare_med = statistics.median(bare_rates) if bare_rates else math.nan
    bridge_cpu_rec = statistics.median(t.cpu_us_per_record for t in trials if t.host == "bridge")
    bare_cpu_rec = (statistics.median(t.cpu_us_per_record for t in trials if t.host == "bare")
                    if bare_rates else math.nan)
    bare_ok = True
    if bare_mcu is not None:
        bare_expect = bare_mcu.next_seq - 1
        bare_ok = bare_counts.get("records") == bare_expect and bare_mcu.counters.ring_overflow == 0
        print(f"\nbare reader: {bare_counts.get('records')} of {bare_expect} records in order, "
              f"out of order {bare_counts.get('out_of_order')}, decoder {bare_counts.get('decoder')}")
    results["bare_reader"] = bare_counts
    results["mcu_counters"] = {"bridge": asdict(bridge_mcu.counters),
                               "bare": asdict(bare_mcu.counters) if bare_mcu else None}

    def fmt_rates(rates: list[float]) -> str:
        return ", ".join(f"{r:,.0f}" for r in rates)

    rows = [
        ("bridge ingest, records/s (median)", f"{bridge_med:,.0f}", f">= {BAR_RECORDS_PER_S:,}",
         bridge_med >= BAR_RECORDS_PER_S),
        ("  trials", fmt_rates(bridge_rates), "", None),
        ("bridge loss after throughput", "none" if tp_ok else "SEE ABOVE", "zero loss", tp_ok),
        ("bare reader, records/s (median)", f"{bare_med:,.0f}" if bare_rates else "-", "(context)", None),
        ("  trials", fmt_rates(bare_rates) if bare_rates else "-", "", None),
        ("bridge / bare", f"{bridge_med / bare_med:.2f}" if bare_rates else "-", "(context)", None),
        ("bridge CPU per record at full speed", f"{bridge_cpu_rec:.1f} µs", "(context)", None),
        ("bare CPU per record at full speed", f"{bare_cpu_rec:.1f} µs" if bare_rates else "-", "(context)", None),
        ("bridge CPU idle, % of one core", f"{idle_pct:.2f} %", "(context)", None),
        (f"bridge CPU at {args.rate:g} records/s, % of one core", f"{rate['cpu_percent']:.2f} %",
         f"< {BAR_CPU_PERCENT:g} %" if args.rate == BAR_CPU_RATE else "(bar is at 100/s)",
         rate["cpu_percent"] < BAR_CPU_PERCENT if args.rate == BAR_CPU_RATE else None),
        (f"bare reader CPU at {args.rate:g} records/s", f"{bare_rate['cpu_percent']:.2f} %" if bare_rate else "-",
         "(context)", None),
        ("bridge loss after the rate phase", "none" if rate_ok and acked else "SEE ABOVE", "zero loss",
         rate_ok and acked),
    ]
    if bare_mcu is not None:
        rows.append(("bare reader got every record", "yes" if bare_ok else "NO", "(sanity)", bare_ok))
    if bridge_rc not in (0, None):
        rows.append(("bridge exit status", str(bridge_rc), "0", False))
    print()
    print(f"{'figure':<44}{'value':>22}  {'bar':<18}result")
    for name, value, bar, passed in rows:
        print(f"{name:<44}{value:>22}  {bar:<18}{'' if passed is None else 'PASS' if passed else 'FAIL'}")
    results["figures"] = {"bridge_records_per_s": bridge_med, "bare_records_per_s": bare_med,
                          "bridge_over_bare": bridge_med / bare_med if bare_rates else None,
                          "bridge_cpu_us_per_record": bridge_cpu_rec, "bare_cpu_us_per_record": bare_cpu_rec,
                          "idle_cpu_percent": idle_pct, "rate_cpu_percent": rate["cpu_percent"],
                          "bare_rate_cpu_percent": bare_rate["cpu_percent"] if bare_rate else None}
    others = rate["machine_busy_cores"] - rate["cpu_percent"] / 100
    if others > 0.5:
        print(f"note: besides the bridge, {others:.1f} CPUs were busy during the rate phase (the bench's MCU uses "
              f"well under 0.1): other load on the machine; the CPU figures may be inflated, rerun on a quiet machine")
    if args.quick:
        print("(--quick: small counts, a smoke run; the figures are not the bench's)")
    return all(passed for *_, passed in rows if passed is not None)


if __name__ == "__main__":
    sys.exit(main())
