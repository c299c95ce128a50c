"""Round trip of get_event_timestamp through the bridge against a bare paho echo responder.

    make bench                          # or: .venv/bin/python bench/roundtrip.py [--quick]

One run on loopback at QoS 1 starts ONE private mosquitto with the broker settings we ship
(systemd/mosquitto-josev-bridge.conf), the simulated MCU, the bridge (`josev-bridge run`, log level
WARNING) and a bare paho echo responder (bench/echo_responder.py, its own process, its own topics
bench/echo/req -> bench/echo/resp). The bench client (this process; one paho client built with the
bridge's own `build_client`, TCP_NODELAY set) sends the very same request to both targets through the
very same code path; only the topics differ. Every request is answerable: the sim plugs a connector
on EVSE 1 first and every request asks TxEventStart/EVConnected, so the bridge never goes silent.

Phases (targets interleaved in ABBA blocks, so machine noise hits both alike):
  latency     sequential requests (send, wait for the answer with that id, next): median/p90/p99/max
  throughput  pipelined, a window of W outstanding requests: answered requests per second
  memory      N requests to the bridge (pipelined), its VmRSS sampled every N/10 answers
Every phase counts answers by id: none may be lost, duplicated, or carry the wrong timestamp.

Bars (the issue's): bridge median <= 1.3x and p99 <= 1.5x the bare responder's, throughput >= 0.8x,
no lost/duplicated/wrong answer, RSS flat over the memory phase (growth from the first sample to the
last <= max(5 % of the first sample, 2 MiB)). Exit status 0 when every bar passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import paho.mqtt
import paho.mqtt.client as paho_client

import common  # bench/common.py; first: it puts this checkout on sys.path
import echo_responder  # (bench/echo_responder.py)
from common import REPO, cpu_seconds, load_average, mosquitto_version, percentile, rss_kib
from josev_bridge.adapters.mqtt_link import build_client
from josev_bridge.config import MqttConfig
from josev_bridge.core.timestamps import parse_us
from josev_bridge.harness.bridge_process import BridgeProcess
from josev_bridge.harness.broker import SHIPPED_CONF, Mosquitto
from josev_bridge.harness.waiting import wait_until
from josev_bridge.sim.launcher import start_sim

EVENT_TYPE, TRIGGER_REASON = "TxEventStart", "EVConnected"
REQUEST_TEMPLATE = ('{"id":"%s","name":"get_event_timestamp","type":"request",'
                    f'"data":{{"event_type":"{EVENT_TYPE}","trigger_reason":"{TRIGGER_REASON}"}}}}')
ANSWER_TIMEOUT = 5.0  # s: a sequential request not answered by then is lost
STALL_TIMEOUT = 10.0  # s: a pipelined phase with no answer for this long gives up (the rest are lost)
MEMORY_FLOOR_KIB = 2048
MEMORY_FRACTION = 0.05


# -- the targets and what came back from them ------------------------------------------------------
@dataclass
class Target:
    label: str
    request_topic: str
    response_topic: str
    expected_timestamp: str | None = None  # every answer must carry it
    pid: int | None = None  # the responder's process, for CPU time and RSS
    pending: dict[str, float] = field(default_factory=dict)  # id -> perf_counter at send
    answered: set[str] = field(default_factory=set)
    sent: int = 0
    duplicates: int = 0
    unknown: int = 0  # answers to ids never sent
    wrong: int = 0  # answers with a bad envelope or another timestamp
    lost: int = 0

    def reset(self) -> None:
        self.pending.clear()
        self.answered.clear()
        self.sent = self.duplicates = self.unknown = self.wrong = self.lost = 0


class BenchClient:
    """One paho client, driven from this thread with `loop()`: no network thread, no hand-over."""

    def __init__(self, port: int, targets: list[Target]) -> None:
        cfg = MqttConfig(host="127.0.0.1", port=port)
        self.client, props = build_client(cfg, f"josev-bench-client-{os.getpid()}", persistent=False)
        self._by_topic = {t.response_topic: t for t in targets}
        self.on_answer: Callable[[Target, str, float], None] | None = None
        self._subscribed = False
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t.response_topic, 1) for t in targets])
        self.client.on_subscribe = lambda *a: setattr(self, "_subscribed", True)
        self.client.on_message = self._on_message
        self.client.connect(cfg.host, cfg.port, 60, properties=props)
        deadline = time.monotonic() + 10
        while not self._subscribed:
            if time.monotonic() > deadline:
                raise TimeoutError("bench client: no SUBACK within 10 s")
            self.client.loop(0.1)

    def _on_message(self, client, userdata, message) -> None:
        now = time.perf_counter()
        target = self._by_topic.get(message.topic)
        if target is None:
            return
        try:
            obj = json.loads(message.payload)
            msg_id = obj["id"]
        except (ValueError, KeyError, TypeError):
            target.wrong += 1
            return
        sent_at = target.pending.pop(msg_id, None)
        if sent_at is None:
            if msg_id in target.answered:
                target.duplicates += 1
            else:
                target.unknown += 1
            return
        target.answered.add(msg_id)
        data = obj.get("data")
        if (obj.get("type") != "response" or obj.get("name") != "get_event_timestamp" or not isinstance(data, dict)
                or data.get("timestamp") != target.expected_timestamp):
            target.wrong += 1
        if self.on_answer is not None:
            self.on_answer(target, msg_id, now - sent_at)

    def send(self, target: Target) -> str:
        msg_id = str(uuid.uuid4())
        target.sent += 1
        target.pending[msg_id] = time.perf_counter()
        self.client.publish(target.request_topic, REQUEST_TEMPLATE % msg_id, qos=1)
        return msg_id

    def step(self, timeout: float) -> None:
        """One turn of paho's loop in this thread: read what arrived, write what is queued."""
        rc = self.client.loop(timeout)
        if rc != paho_client.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"bench client lost the broker: {paho_client.error_string(rc)}")

    def drain(self, seconds: float) -> None:
        """Keep reading for a while: late (duplicate) answers are counted too."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.step(0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop(0.1)


# -- the three kinds of run -------------------------------------------------------------------------
def sequential(bc: BenchClient, target: Target, n: int, samples_ms: list[float] | None) -> None:
    """n requests one after the other; the round trip of each, in ms, appended to samples_ms."""
    box: dict[str, float] = {}
    bc.on_answer = lambda t, msg_id, rtt: box.__setitem__(msg_id, rtt)
    for _ in range(n):
        box.clear()
        msg_id = bc.send(target)
        deadline = time.perf_counter() + ANSWER_TIMEOUT
        while msg_id not in box and time.perf_counter() < deadline:
            bc.step(0.5)
        if msg_id in box and samples_ms is not None:
            samples_ms.append(box[msg_id] * 1000)
    bc.on_answer = None


def pipelined(bc: BenchClient, target: Target, n: int, window: int,
              on_progress: Callable[[int], None] | None = None) -> tuple[int, float]:
    """n requests with up to `window` outstanding; returns (answered, seconds first send -> last answer)."""
    state = {"sent": 0, "answered": 0, "last": 0.0}

    def on_answer(t: Target, msg_id: str, rtt: float) -> None:
        if t is not target:
            return
        state["answered"] += 1
        state["last"] = time.perf_counter()
        if state["sent"] < n:
            state["sent"] += 1
            bc.send(target)
        if on_progress is not None:
            on_progress(state["answered"])

    bc.on_answer = on_answer
    start = time.perf_counter()
    state["last"] = start
    while state["sent"] < min(window, n):
        state["sent"] += 1
        bc.send(target)
    while state["answered"] < n and time.perf_counter() - state["last"] < STALL_TIMEOUT:
        bc.step(0.5)
    bc.on_answer = None
    return state["answered"], state["last"] - start


# -- setting up ---------------------------------------------------------------------------------------
def machine() -> dict[str, str]:
    return common.machine(**{"paho-mqtt": paho.mqtt.__version__, "jsonschema": metadata.version("jsonschema"),
                             "mosquitto": mosquitto_version()})


def last_status(bridge: BridgeProcess) -> str:
    """The last STATUS= line the bridge sent over sd_notify (the harness reads the socket throughout, as
    systemd does: left unread, its 10-datagram queue fills and the bridge's next notify blocks)."""
    for message in reversed(bridge.notifications):
        for line in reversed(message.split("\n")):
            if line.startswith("STATUS="):
                return line.removeprefix("STATUS=")
    return ""


def two_targets() -> tuple[Target, Target]:
    """The bare responder and the bridge, the two targets every comparison runs against."""
    return (Target("bare responder", echo_responder.REQUEST_TOPIC, echo_responder.RESPONSE_TOPIC,
                   expected_timestamp=echo_responder.TIMESTAMP),
            Target("bridge", "ocpp/cs", "cs/ocpp"))


def print_broker_conf() -> None:
    print(f"{'broker conf:':<14}{SHIPPED_CONF.relative_to(REPO) if SHIPPED_CONF.exists() else '(fallback)'}"
          f" (one mosquitto for both targets, loopback, QoS 1)")


def start_echo_responder(port: int) -> subprocess.Popen:
    return common.start_helper("echo_responder.py", "--port", str(port))


def prime_bridge(sim, bc: BenchClient, bridge_target: Target) -> int:
    """Plug a connector on EVSE 1; wait until the bridge answers TxEventStart/EVConnected.

    Returns how many probes went unanswered (each is one WARNING in the bridge's log)."""
    status, body = sim.command("plug-connector", {"evse_id": 1})
    if status != 200:
        raise RuntimeError(f"sim refused plug-connector: {status} {body}")
    edge = next((e for e in body.get("edges", [])
                 if (e["event_type"], e["trigger_reason"]) == (EVENT_TYPE, TRIGGER_REASON)), None)
    if edge is None:
        raise RuntimeError(f"plug-connector produced no {EVENT_TYPE}/{TRIGGER_REASON} edge: {body}")
    misses = 0
    bridge_target.expected_timestamp = None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        msg_id = str(uuid.uuid4())
        box: list = []

        def on_message(client, userdata, message, _box=box, _msg_id=msg_id) -> None:
            obj = json.loads(message.payload)
            if message.topic == bridge_target.response_topic and obj.get("id") == _msg_id:
                _box.append(obj)

        saved = bc.client.on_message
        bc.client.on_message = on_message
        try:
            bc.client.publish(bridge_target.request_topic, REQUEST_TEMPLATE % msg_id, qos=1)
            end = time.monotonic() + 1.0
            while not box and time.monotonic() < end:
                bc.step(0.1)
        finally:
            bc.client.on_message = saved
        if box:
            timestamp = box[0]["data"]["timestamp"]
            if parse_us(timestamp) // 1000 != parse_us(edge["timestamp"]) // 1000:
                raise RuntimeError(f"bridge answered {timestamp}, the MCU recorded {edge['timestamp']}")
            bridge_target.expected_timestamp = timestamp
            return misses
        misses += 1
    raise TimeoutError("the bridge never answered TxEventStart/EVConnected after plug-connector")


# -- the report ---------------------------------------------------------------------------------------
@dataclass
class Row:
    metric: str
    bare: str
    bridge: str
    ratio: str
    bar: str
    ok: bool | None  # None: informative, no bar


def fmt_ms(x: float) -> str:
    return f"{x:.3f} ms"


def table(rows: list[Row]) -> str:
    header = ["metric", "bare responder", "bridge", "ratio", "bar", "result"]
    cells = [[r.metric, r.bare, r.bridge, r.ratio, r.bar, "" if r.ok is None else ("PASS" if r.ok else "FAIL")]
             for r in rows]
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]
    line = lambda c: "  ".join(x.ljust(w) for x, w in zip(c, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, cells)])


def abba(blocks: int) -> list[int]:
    """Target order per block: 0 1 1 0 0 1 1 0 ... (each target goes first as often as second)."""
    order: list[int] = []
    for i in range(blocks):
        order += [0, 1] if i % 2 == 0 else [1, 0]
    return order


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


# -- main ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Bridge vs bare echo responder: QoS 1 round trip, throughput, memory.")
    p.add_argument("--quick", action="store_true", help="a smoke run with small counts (seconds, not minutes)")
    p.add_argument("--latency-requests", type=int, help="sequential requests measured per target (default 6000)")
    p.add_argument("--latency-warmup", type=int, help="sequential warm-up requests per target (default 200)")
    p.add_argument("--latency-blocks", type=int, default=12, help="interleaved blocks per target (default 12)")
    p.add_argument("--throughput-requests", type=int, help="pipelined requests per target (default 40000)")
    p.add_argument("--throughput-blocks", type=int, default=8,
                   help="interleaved blocks per target (default 8: ~1 s each; more blocks, less noise)")
    p.add_argument("--window", type=int, default=200, help="outstanding requests when pipelining (default 200)")
    p.add_argument("--memory-requests", type=int, help="requests to the bridge in the memory phase (default 100000)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    p.add_argument("--no-journal", action="store_true",
                   help="turn the journal (and the API) off: what journaling costs, by difference")
    p.add_argument("--export", action="store_true",
                   help="also stream the journal to a second mosquitto (the fleet's broker) while measuring "
                        "(the journal itself is always on, as in production)")
    args = p.parse_args(argv)
    full = {"latency_requests": 6000, "latency_warmup": 200, "throughput_requests": 40000, "memory_requests": 100000}
    quick = {"latency_requests": 400, "latency_warmup": 50, "throughput_requests": 2000, "memory_requests": 10000}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args



def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common.exit_on_sigterm()  # `kill`, `timeout`: still stop what it started
    info = machine()
    common.print_start(info, 14)
    print_broker_conf()
    echo, bridge_t = two_targets()
    targets = [echo, bridge_t]
    results: dict = {"command": common.command_line(), "machine": info, "args": vars(args)}

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="josev-bridge-bench-") as tmp:
        work = Path(tmp)
        with Mosquitto(work / "broker") as broker, start_sim(work / "sim") as sim, \
                contextlib.ExitStack() as stack:
            extra: dict = {}
            if args.no_journal:
                extra.update(journal={"enabled": False}, api={"enabled": False})
            if args.export:
                fleet = stack.enter_context(Mosquitto(work / "fleet"))
                extra["export"] = {"enabled": True, "host": "127.0.0.1", "port": fleet.port, "tls": False}
                print(f"{'export:':<14}journal rows streamed to a second mosquitto on port {fleet.port}")
            bridge = BridgeProcess(work / "bridge", broker_port=broker.port, serial_url=str(sim.pty_link),
                                   identity="bench-charger", log_level="WARNING", extra=extra)
            echo_proc = None
            bc = None
            try:
                bridge.start()
                assert bridge.proc is not None
                bridge_t.pid = bridge.proc.pid
                echo_proc = start_echo_responder(broker.port)
                echo.pid = echo_proc.pid
                bc = BenchClient(broker.port, targets)
                misses = prime_bridge(sim, bc, bridge_t)
                log_offset = len(bridge.log_text())
                print(f"{'bridge:':<14}pid {bridge_t.pid}, answers {EVENT_TYPE}/{TRIGGER_REASON} with "
                      f"{bridge_t.expected_timestamp} (the MCU's time; {misses} unanswered probe(s) before the edge "
                      f"was read)")
                print(f"{'bare:':<14}pid {echo.pid}, {echo.request_topic} -> {echo.response_topic}, "
                      f"fixed {echo.expected_timestamp}")
                assert broker.proc is not None
                run_phases(args, bc, targets, results, broker.proc.pid)
                bc.drain(1.0)
                print(f"bridge status (sd_notify): {last_status(bridge)}")
                print_journal_and_export(bridge)
                ok = report(args, targets, results, bridge.log_text()[log_offset:], bridge) == 0
            finally:
                clean = common.stop_run(bc, echo_proc, bridge)
            ok = ok and clean
    elapsed = time.monotonic() - started
    results["elapsed_s"] = elapsed
    results["load_average_end"] = os.getloadavg()
    print(f"load average at the end: {load_average()}")
    results["pass"] = ok
    print(f"\n{'ALL BARS PASS' if ok else 'SOME BARS FAIL'} ({elapsed:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0 if ok else 1


def print_journal_and_export(bridge: BridgeProcess) -> None:
    """What the journal (and the export) made of the run: every request is a row; the export catches up."""
    status = bridge.status()
    journal, export = status.get("journal") or {}, status.get("export")
    print(f"journal: {journal.get('written')} rows written, {journal.get('pending')} pending, "
          f"{journal.get('dropped')} dropped, last error {journal.get('last_error')}")
    if export:
        try:
            status = wait_until(lambda: (s := bridge.status(timeout=5)).get("export", {}).get("backlog") == 0 and s,
                                60, "the export to catch up")
        except TimeoutError:
            pass
        print(f"export: backlog {status['export']['backlog']} rows after the run (watermark "
              f"{status['export']['watermark']}), connected {status['export']['connected']}")


def run_phases(args: argparse.Namespace, bc: BenchClient, targets: list[Target], results: dict,
               broker_pid: int) -> None:
    echo, bridge_t = targets
    # -- latency: sequential, ABBA blocks -----------------------------------------------------------
    print(f"\nlatency: {args.latency_warmup} warm-up + {args.latency_requests} sequential requests per target "
          f"in {args.latency_blocks} interleaved blocks ...", flush=True)
    samples: dict[str, list[float]] = {t.label: [] for t in targets}
    blocks: list[tuple[str, float]] = []  # (target, median of the block) in run order: noise shows here
    gc.collect()
    gc.disable()  # the instrument's own collector pauses would land in both targets' p99
    try:
        for t in targets:
            sequential(bc, t, args.latency_warmup, None)
        for index, count in zip(abba(args.latency_blocks), [c for c in split(args.latency_requests, args.latency_blocks)
                                                             for _ in (0, 1)]):
            block: list[float] = []
            sequential(bc, targets[index], count, block)
            samples[targets[index].label] += block
            blocks.append((targets[index].label, statistics.median(block) if block else math.nan))
    finally:
        gc.enable()
    print("  block medians in run order: " + ", ".join(f"{'A' if label == echo.label else 'B'} {m:.3f}"
                                                      for label, m in blocks) + " ms (A bare, B bridge)")
    results["latency_block_medians_ms"] = blocks
    lat = {}
    for t in targets:
        s = sorted(samples[t.label])
        lat[t.label] = {"n": len(s), "median": statistics.median(s) if s else math.nan, "p90": percentile(s, 90),
                        "p99": percentile(s, 99), "max": s[-1] if s else math.nan, "min": s[0] if s else math.nan}
    results["latency_ms"] = lat

    # -- throughput: pipelined, ABBA blocks ---------------------------------------------------------
    print(f"throughput: {args.throughput_requests} pipelined requests per target, window {args.window}, "
          f"in {args.throughput_blocks} interleaved blocks ...", flush=True)
    for t in targets:
        pipelined(bc, t, min(1000, args.throughput_requests), args.window)  # warm-up
    done = {t.label: [0, 0.0] for t in targets}
    cpu = {t.label: {"responder": 0.0, "broker": 0.0, "client": 0.0} for t in targets}

    def cpu_now(t: Target) -> dict[str, float]:
        own = os.times()
        return {"responder": cpu_seconds(t.pid) if t.pid else 0.0, "broker": cpu_seconds(broker_pid),
                "client": own.user + own.system}

    for index, count in zip(abba(args.throughput_blocks),
                            [c for c in split(args.throughput_requests, args.throughput_blocks) for _ in (0, 1)]):
        t = targets[index]
        before = cpu_now(t)
        answered, seconds = pipelined(bc, t, count, args.window)
        after = cpu_now(t)
        for who in before:
            cpu[t.label][who] += after[who] - before[who]
        done[t.label][0] += answered
        done[t.label][1] += seconds
    results["throughput"] = {label: {"answered": a, "seconds": s, "rps": a / s if s else 0.0,
                                     **{f"{who}_cpu_us_per_request": c / a * 1e6 if a else math.nan
                                        for who, c in cpu[label].items()}}
                             for label, (a, s) in done.items()}

    # -- memory: the bridge only ----------------------------------------------------------------------
    every = max(1, args.memory_requests // 10)
    print(f"memory: {args.memory_requests} pipelined requests to the bridge, VmRSS every {every} answers ...",
          flush=True)
    assert bridge_t.pid is not None
    rss_before = rss_kib(bridge_t.pid)
    series: list[tuple[int, int]] = []

    def sample(answered: int) -> None:
        if answered % every == 0:
            series.append((answered, rss_kib(bridge_t.pid)))

    answered, seconds = pipelined(bc, bridge_t, args.memory_requests, args.window, on_progress=sample)
    results["memory"] = {"before_kib": rss_before, "samples": series, "answered": answered, "seconds": seconds}


def report(args: argparse.Namespace, targets: list[Target], results: dict, bridge_log: str,
           bridge: BridgeProcess) -> int:
    echo, bridge_t = targets
    lat, thr, mem = results["latency_ms"], results["throughput"], results["memory"]
    for t in targets:
        t.lost = len(t.pending)
    rows: list[Row] = []
    for key, bar in (("median", 1.3), ("p90", None), ("p99", 1.5), ("max", None)):
        a, b = lat[echo.label][key], lat[bridge_t.label][key]
        ratio = b / a if a else math.inf
        rows.append(Row(f"round trip {key}", fmt_ms(a), fmt_ms(b), f"{ratio:.2f}x", f"<= {bar}x" if bar else "",
                        None if bar is None else ratio <= bar))
    a, b = thr[echo.label]["rps"], thr[bridge_t.label]["rps"]
    ratio = b / a if a else 0.0
    rows.append(Row(f"throughput (window {args.window})", f"{a:,.0f} req/s", f"{b:,.0f} req/s", f"{ratio:.2f}x",
                    ">= 0.8x", ratio >= 0.8))
    for who in ("responder", "broker", "client"):
        a, b = thr[echo.label][f"{who}_cpu_us_per_request"], thr[bridge_t.label][f"{who}_cpu_us_per_request"]
        rows.append(Row(f"CPU per request: {who}" + (" (bench)" if who == "client" else ""), f"{a:.0f} us",
                        f"{b:.0f} us", f"{b / a:.2f}x" if a else "-", "", None))
    for name in ("sent", "lost", "duplicates", "unknown", "wrong"):
        a, b = getattr(echo, name), getattr(bridge_t, name)
        rows.append(Row(f"answers {name}" if name != "sent" else "requests sent", f"{a:,}", f"{b:,}", "",
                        "" if name == "sent" else "= 0", None if name == "sent" else (a == 0 and b == 0)))
    samples = mem["samples"]
    if samples:
        first, last = samples[0][1], samples[-1][1]
        growth = last - first
        allowed = max(MEMORY_FRACTION * first, MEMORY_FLOOR_KIB)
        rows.append(Row(f"bridge RSS {samples[0][0]:,} -> {samples[-1][0]:,} req", "", f"{first:,} -> {last:,} KiB",
                        f"{growth:+,} KiB", f"<= {allowed:,.0f} KiB",
                        growth <= allowed and mem["answered"] == args.memory_requests))
    else:
        rows.append(Row("bridge RSS", "", "no samples", "", "", False))
    warnings = [line for line in bridge_log.splitlines() if line.strip()]
    rows.append(Row("bridge log lines during bench", "", f"{len(warnings)}", "", "", None))
    alive = bridge.proc is not None and bridge.proc.poll() is None
    rows.append(Row("bridge alive at the end", "", "yes" if alive else "NO", "", "yes", alive))

    print("\nlatency samples: " + ", ".join(f"{label} n={v['n']} min {v['min']:.3f} ms" for label, v in lat.items()))
    print("throughput: " + ", ".join(f"{label} {v['answered']:,} answers in {v['seconds']:.2f} s"
                                     for label, v in thr.items()))
    rate = mem["answered"] / mem["seconds"] if mem["seconds"] else 0.0
    print(f"memory: bridge VmRSS {mem['before_kib']:,} KiB before; after "
          + ", ".join(f"{n:,}: {kib:,}" for n, kib in samples)
          + f" KiB; {mem['answered']:,} answers in {mem['seconds']:.1f} s ({rate:,.0f}/s)")
    if warnings:
        print("bridge log during the bench (first 5 lines):\n  " + "\n  ".join(warnings[:5]))
    print()
    print(table(rows))
    results["rows"] = [vars(r) for r in rows]
    results["counts"] = {t.label: {k: getattr(t, k) for k in ("sent", "lost", "duplicates", "unknown", "wrong")}
                         for t in targets}
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
