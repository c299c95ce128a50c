"""get_event_timestamp while the board is busy (issue 12 item 6): is the answer path isolated from
the technician's load?

    .venv/bin/python bench/mixed_load.py [--quick] [--api-off] [--gap-ms G] [--api-rate R] [--json PATH]

bench/roundtrip.py's pieces on loopback at QoS 1 (one mosquitto with the shipped settings, the sim,
the bridge with its journal, the bare echo responder, one client asking both the same), export ON
to a second mosquitto. Two phases of sequential requests in blocks interleaved A B B A:

  idle   nothing else runs
  busy   the mixed load, each generator its own process (none shares this process's GIL):
           mcu      65 MCU records/s: the sim's parking-bay-occupied / -vacated on EVSE 2 (one SIGNAL
                    record each; not EV_CONNECTED, so the expected answer does not move)
           api      6 GET /api/ocpp-messages?limit=500 per second (--api-rate), with the bearer token
           follow   one `josev-bridge messages --follow` (reads SQLite itself, as the CLI does)
           ignored  200 messages/s on ocpp/cs with a name no handler takes (journaled)

Bars: the bridge's busy/idle p99 ratio <= 1.5x the bare responder's (same load, same run); the
bridge's busy p50 <= 1.3x its idle p50; nothing lost (every request answered once and right, every
API query 200 with 500 rows, every MCU command acknowledged with its record, no journal row dropped,
`--follow` running, the export backlog drained: the wait scales with it, export sends at most 200
rows/s); the API process (its own since api/supervisor.py) not the bridge's pid, never restarted.
Its CPU and peak RSS are reported. Exit 0 when every bar passes.

--api-off: [api] enabled = false, no queries: the API's share by difference. --gap-ms G: each
request a random (exponential, mean G ms) time after the last answer: back to back a long stall is
one slow sample; spaced out, the requests sample the clock evenly, as Josev's occasional ones would.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import common  # bench/common.py; first: it puts this checkout on sys.path
import roundtrip  # bench/roundtrip.py: the client, the targets, sequential(), abba(), split(), the table
from common import REPO, load_average, mosquitto_version, percentile
from josev_bridge.harness.bridge_process import BridgeProcess
from josev_bridge.harness.broker import Mosquitto
from josev_bridge.harness.waiting import wait_until
from josev_bridge.sim.launcher import start_sim
from roundtrip import BenchClient, Row, Target, abba, fmt_ms, prime_bridge, sequential, split, table

MCU_RATE, API_RATE, IGNORED_RATE, API_LIMIT = 65.0, 6.0, 200.0, 500
LOAD_EVSE = 2  # the load's records go to EVSE 2; the bench's question is answered from EVSE 1's EV_CONNECTED
P99_RATIO_BAR, P50_BAR = 1.5, 1.3


# -- the load generators: this same file run as `--worker KIND`, one process each -------------------
def paced(rate: float, action, stop_after: float | None = None) -> None:
    """Call action() `rate` times a second on a fixed schedule (catching up if late) until SIGTERM."""
    start, done = time.monotonic(), 0
    while stop_after is None or time.monotonic() - start < stop_after:
        due = int((time.monotonic() - start) * rate)
        while done < due:
            action()
            done += 1
        time.sleep(max(0.0, start + (done + 1) / rate - time.monotonic()))


def worker_mcu(args: argparse.Namespace) -> None:
    """MCU records through the sim's control API: occupied / vacated on EVSE 2, one record each."""
    url, token = args.url, Path(args.token_file).read_text().strip()
    counts = {"commands": 0, "records": 0, "errors": 0}
    names = ["parking-bay-occupied", "parking-bay-vacated"]

    def one() -> None:
        name = names[counts["commands"] % 2]
        body = json.dumps({"target": {"charger_id": args.charger_id}, "event": {"evse_id": LOAD_EVSE}}).encode()
        req = urllib.request.Request(f"{url}/ocpp/commands/{name}", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                counts["records"] += len(json.loads(resp.read()).get("records", []))
        except (OSError, ValueError):
            counts["errors"] += 1
        counts["commands"] += 1  # counted once answered: the one SIGTERM cuts short is not a loss

    run_worker(args.rate, one, counts)


def worker_api(args: argparse.Namespace) -> None:
    """GET /api/ocpp-messages?limit=500 with the bearer token; counts answers and rows."""
    counts = {"queries": 0, "ok": 0, "full_pages": 0, "errors": 0, "ms_total": 0.0, "ms_max": 0.0}
    token = Path(args.token_file).read_text().strip()

    def one() -> None:
        req = urllib.request.Request(f"{args.url}/api/ocpp-messages?chargerId={args.charger_id}&limit={API_LIMIT}",
                                     headers={"Authorization": f"Bearer {token}"})
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                rows = json.loads(resp.read())["data"]
            counts["ok"] += 1
            counts["full_pages"] += len(rows) == API_LIMIT
        except (OSError, ValueError, KeyError):
            counts["errors"] += 1
        ms = (time.perf_counter() - t0) * 1000
        counts["queries"] += 1  # counted once answered: the one SIGTERM cuts short is not a loss
        counts["ms_total"] += ms
        counts["ms_max"] = max(counts["ms_max"], ms)

    run_worker(args.rate, one, counts)


def worker_ignored(args: argparse.Namespace) -> None:
    """Messages on ocpp/cs the bridge has no handler for: validated, journaled, never answered."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-ignored-{os.getpid()}", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.connect("127.0.0.1", args.port)
    c.loop_start()
    counts = {"published": 0}

    def one() -> None:
        c.publish("ocpp/cs", json.dumps({"id": f"ignored-{counts['published']}", "name": "heartbeat",
                                         "type": "request", "data": {}}), qos=1)
        counts["published"] += 1

    try:
        run_worker(args.rate, one, counts)
    finally:
        c.disconnect()
        c.loop_stop()


def run_worker(rate: float, action, counts: dict) -> None:
    common.exit_on_sigterm()
    print("READY", flush=True)
    start = time.monotonic()
    try:
        paced(rate, action)
    finally:
        counts["seconds"] = time.monotonic() - start
        print(json.dumps(counts), flush=True)


WORKERS = {"mcu": worker_mcu, "api": worker_api, "ignored": worker_ignored}


class Load:
    """The busy phase's generators, started together, stopped together, their counts kept."""

    def __init__(self, bridge: BridgeProcess, sim, broker_port: int, api_on: bool, work: Path,
                 api_rate: float = API_RATE) -> None:
        self.bridge, self.sim, self.port, self.api_on, self.work = bridge, sim, broker_port, api_on, work
        self.api_rate = api_rate
        self.procs: dict[str, subprocess.Popen] = {}
        self.follow: subprocess.Popen | None = None
        self.follow_out = work / "follow.out"
        self.counts: dict[str, dict] = {}
        self.seconds = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        self.bridge_cpu = common.cpu_seconds(self.bridge.proc.pid)
        if self.api_on:  # the API's own process: its CPU over the busy phase (its RSS is read at the end)
            self.api_pid = self.bridge.api_pid()
            self.api_cpu = common.cpu_seconds(self.api_pid)
        self.procs["mcu"] = common.start_helper("mixed_load.py", "--worker", "mcu", "--rate", str(MCU_RATE),
                                                "--url", self.sim.control_url, "--token-file", str(self.sim.token_file),
                                                "--charger-id", self.sim.charger_id)
        self.procs["ignored"] = common.start_helper("mixed_load.py", "--worker", "ignored", "--rate",
                                                    str(IGNORED_RATE), "--port", str(self.port))
        if self.api_on:
            self.procs["api"] = common.start_helper("mixed_load.py", "--worker", "api", "--rate", str(self.api_rate),
                                                    "--url", self.bridge.api_url(),
                                                    "--token-file", str(self.bridge.workdir / "state" / "api-token"),
                                                    "--charger-id", self.bridge.sections["charger"]["identity"])
        with self.follow_out.open("wb") as out:
            self.follow = subprocess.Popen([sys.executable, "-m", "josev_bridge", "messages", "--follow", "--since",
                                            "1h", "--config", str(self.bridge.config)],
                                           stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})

    def stop(self) -> None:
        self.seconds = time.monotonic() - self.started
        self.counts["bridge"] = {"cpu_s": common.cpu_seconds(self.bridge.proc.pid) - self.bridge_cpu}
        if self.api_on:
            api = self.bridge.status()["api"]
            self.counts["api_process"] = {
                "pid": self.api_pid, "cpu_s": common.cpu_seconds(self.api_pid) - self.api_cpu,
                "peak_rss_kib": common.rss_kib(self.api_pid, "VmHWM"), "restarts": api["restarts"],
                "same_pid": api["pid"] == self.api_pid}
        follow_alive = self.follow is not None and self.follow.poll() is None
        if self.follow is not None:
            self.follow.terminate()
            try:
                self.follow.wait(5)
            except subprocess.TimeoutExpired:
                self.follow.kill()
                self.follow.wait()
        lines = len(self.follow_out.read_text(errors="replace").splitlines()) if self.follow_out.exists() else 0
        self.counts["follow"] = {"alive_at_end": follow_alive, "lines": lines}
        for name, proc in self.procs.items():
            out = common.stop_helper(proc).strip().splitlines()
            try:
                self.counts[name] = json.loads(out[-1])
            except (IndexError, ValueError):
                self.counts[name] = {"error": "no counts", "output": out[-3:]}
        self.procs.clear()

    def __enter__(self) -> Load:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# -- the measurement -----------------------------------------------------------------------------------
def spaced(bc: BenchClient, target: Target, n: int, samples_ms: list[float] | None, gap_s: float) -> None:
    """sequential(), but each request is sent a random (exponential, mean gap_s) time after the last
    answer: the requests sample the clock evenly, so a stall of the responder weighs by its length
    (back to back, a 50 ms stall is one slow sample; here it is the share of the time it lasts)."""
    for _ in range(n):
        end = time.perf_counter() + random.expovariate(1 / gap_s)
        while (left := end - time.perf_counter()) > 0:
            bc.step(left)  # reads what arrives meanwhile; returns at `end` at the latest
        sequential(bc, target, 1, samples_ms)


def latency(bc: BenchClient, targets: list[Target], n: int, blocks: int, warmup: int,
            gap_ms: float = 0.0) -> dict[str, dict]:
    """roundtrip.py's latency phase: sequential requests, blocks interleaved A B B A."""
    run = sequential if gap_ms <= 0 else (lambda b, t, k, out: spaced(b, t, k, out, gap_ms / 1000))
    samples: dict[str, list[float]] = {t.label: [] for t in targets}
    medians: list[str] = []
    gc.collect()
    gc.disable()  # the instrument's own collector pauses would land in both targets' p99
    try:
        for t in targets:
            sequential(bc, t, warmup, None)
        for index, count in zip(abba(blocks), [c for c in split(n, blocks) for _ in (0, 1)]):
            block: list[float] = []
            run(bc, targets[index], count, block)
            samples[targets[index].label] += block
            medians.append(f"{'AB'[index]} {statistics.median(block):.3f}" if block else f"{'AB'[index]} -")
    finally:
        gc.enable()
    print("  block medians in run order: " + ", ".join(medians) + " ms (A bare, B bridge)", flush=True)
    out = {}
    for t in targets:
        s = sorted(samples[t.label])
        out[t.label] = {"n": len(s), "p50": statistics.median(s) if s else math.nan, "p90": percentile(s, 90),
                        "p99": percentile(s, 99), "max": s[-1] if s else math.nan}
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--quick", action="store_true", help="a smoke run (1500 requests per target and phase)")
    p.add_argument("--api-off", action="store_true",
                   help="the bridge with [api] enabled = false, no API queries: the API's share by difference")
    p.add_argument("--requests", type=int, help="sequential requests per target and phase (default 8000)")
    p.add_argument("--blocks", type=int, help="interleaved blocks per target and phase (default 16)")
    p.add_argument("--warmup", type=int, default=200, help="warm-up requests per target and phase (default 200)")
    p.add_argument("--settle", type=float, default=3.0, help="seconds of load before the busy phase measures")
    p.add_argument("--gap-ms", type=float, default=0.0,
                   help="mean random gap between an answer and the next request (default 0: back to back); "
                        "with a gap the requests sample time evenly, so long stalls count by their length")
    p.add_argument("--api-rate", type=float, default=API_RATE,
                   help=f"API queries per second in the busy phase (default {API_RATE:g}; more: a stress run)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    # the load generators (this file, run by itself)
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--token-file", help=argparse.SUPPRESS)
    p.add_argument("--charger-id", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.requests is None:
        args.requests = 1500 if args.quick else 8000
    if args.blocks is None:
        args.blocks = 6 if args.quick else 16
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        WORKERS[args.worker](args)
        return 0
    common.exit_on_sigterm()
    info = common.machine(mosquitto=mosquitto_version())
    common.print_start(info, 14)
    roundtrip.print_broker_conf()
    print(f"{'busy load:':<14}{MCU_RATE:g} MCU records/s, "
          + ("API off ([api] enabled = false), no queries" if args.api_off else f"{args.api_rate:g} API queries/s of "
             f"limit={API_LIMIT}") + f", messages --follow, {IGNORED_RATE:g} ignored messages/s, export on")
    echo, bridge_t = roundtrip.two_targets()
    targets = [echo, bridge_t]
    results: dict = {"command": common.command_line(), "machine": info, "args": vars(args)}
    started = time.monotonic()
    ok = False
    with tempfile.TemporaryDirectory(prefix="josev-bridge-mixed-") as tmp:
        work = Path(tmp)
        with Mosquitto(work / "broker") as broker, Mosquitto(work / "fleet") as fleet, \
                start_sim(work / "sim") as sim:
            extra: dict = {"export": {"enabled": True, "host": "127.0.0.1", "port": fleet.port, "tls": False}}
            if args.api_off:
                extra["api"] = {"enabled": False}
            bridge = BridgeProcess(work / "bridge", broker_port=broker.port, serial_url=str(sim.pty_link),
                                   identity="bench-charger", log_level="WARNING", extra=extra)
            echo_proc = bc = None
            try:
                bridge.start()
                assert bridge.proc is not None
                bridge_t.pid = bridge.proc.pid
                echo_proc = roundtrip.start_echo_responder(broker.port)
                echo.pid = echo_proc.pid
                bc = BenchClient(broker.port, targets)
                prime_bridge(sim, bc, bridge_t)
                log_offset = len(bridge.log_text())
                print(f"{'bridge:':<14}pid {bridge_t.pid}, answers with {bridge_t.expected_timestamp}; "
                      f"export to port {fleet.port}")
                print(f"\nidle: {args.warmup} warm-up + {args.requests} sequential requests per target "
                      f"in {args.blocks} interleaved blocks"
                      + (f", a random gap of {args.gap_ms:g} ms on average before each" if args.gap_ms > 0 else "")
                      + " ...", flush=True)
                idle = latency(bc, targets, args.requests, args.blocks, args.warmup, args.gap_ms)
                print(f"busy: the same, under the mixed load (after {args.settle:g} s of it) ...", flush=True)
                load = Load(bridge, sim, broker.port, not args.api_off, work, args.api_rate)
                with load:
                    bc.drain(args.settle)
                    busy = latency(bc, targets, args.requests, args.blocks, args.warmup, args.gap_ms)
                bc.drain(1.0)
                journal, export = journal_and_export(bridge)
                ok = report(args, targets, idle, busy, load, journal, export, results,
                            bridge.log_text()[log_offset:], bridge)
            finally:
                clean = common.stop_run(bc, echo_proc, bridge)
            ok = ok and clean
    elapsed = time.monotonic() - started
    results.update(elapsed_s=elapsed, load_average_end=os.getloadavg(), **{"pass": ok})
    print(f"load average at the end: {load_average()}")
    print(f"\n{'ALL BARS PASS' if ok else 'SOME BARS FAIL'} ({elapsed:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0 if ok else 1


def journal_and_export(bridge: BridgeProcess) -> tuple[dict, dict]:
    """The journal's counters, and the export's once its backlog drained: it sends at most
    [export] max_rows_per_s (200 by default), so the wait scales with the backlog (30 s + 2x its share)."""
    status = bridge.status()
    backlog = (status.get("export") or {}).get("backlog") or 0
    rate = bridge.sections.get("export", {}).get("max_rows_per_s", 200.0) or 1e9
    try:
        status = wait_until(lambda: (s := bridge.status(timeout=5)).get("export", {}).get("backlog") == 0 and s,
                            30 + 2 * backlog / rate, "the export to catch up")
    except TimeoutError:
        status = bridge.status()
    return status.get("journal") or {}, status.get("export") or {}


def report(args, targets, idle, busy, load: Load, journal: dict, export: dict, results: dict, bridge_log: str,
           bridge: BridgeProcess) -> bool:
    echo, bridge_t = targets
    for t in targets:
        t.lost = len(t.pending)
    rows: list[Row] = []
    for key in ("p50", "p90", "p99", "max"):
        rows.append(Row(f"idle {key}", fmt_ms(idle[echo.label][key]), fmt_ms(idle[bridge_t.label][key]),
                        "", "", None))
        rows.append(Row(f"busy {key}", fmt_ms(busy[echo.label][key]), fmt_ms(busy[bridge_t.label][key]),
                        "", "", None))
    ratio = {t.label: {k: busy[t.label][k] / idle[t.label][k] for k in ("p50", "p99")} for t in targets}
    rows.append(Row("busy/idle p50", f"{ratio[echo.label]['p50']:.2f}x", f"{ratio[bridge_t.label]['p50']:.2f}x",
                    "", f"bridge <= {P50_BAR}x", ratio[bridge_t.label]["p50"] <= P50_BAR))
    rel = ratio[bridge_t.label]["p99"] / ratio[echo.label]["p99"]
    rows.append(Row("busy/idle p99", f"{ratio[echo.label]['p99']:.2f}x", f"{ratio[bridge_t.label]['p99']:.2f}x",
                    f"{rel:.2f}x", f"<= {P99_RATIO_BAR}x", rel <= P99_RATIO_BAR))
    for name in ("sent", "lost", "duplicates", "unknown", "wrong"):
        a, b = getattr(echo, name), getattr(bridge_t, name)
        rows.append(Row("requests sent" if name == "sent" else f"answers {name}", f"{a:,}", f"{b:,}", "",
                        "" if name == "sent" else "= 0", None if name == "sent" else (a == 0 and b == 0)))
    c = load.counts
    rate = lambda d, key: d.get(key, 0) / d["seconds"] if d.get("seconds") else math.nan  # noqa: E731
    mcu = c.get("mcu", {})
    rows.append(Row("load: MCU records", "", f"{mcu.get('records', 0):,} ({rate(mcu, 'records'):.1f}/s)",
                    "", "1 per command, 0 errors",
                    mcu.get("records") == mcu.get("commands") and mcu.get("errors") == 0))
    if not args.api_off:
        api = c.get("api", {})
        n = api.get("queries", 0)
        rows.append(Row(f"load: API limit={API_LIMIT}", "",
                        f"{api.get('ok', 0):,}/{n:,} ({rate(api, 'queries'):.1f}/s), "
                        f"mean {api.get('ms_total', 0) / max(n, 1):.0f} ms, max {api.get('ms_max', 0):.0f} ms", "",
                        "all 200, full pages",
                        n > 0 and api.get("ok") == n and api.get("full_pages") == n))
    cpu = f"CPU {c.get('bridge', {}).get('cpu_s', math.nan) / load.seconds * 100:.0f} % of a core"
    if args.api_off:
        rows.append(Row("load: bridge process", "", cpu, "", "", None))
    else:
        proc = c.get("api_process", {})
        api_cpu = proc.get("cpu_s", math.nan) / load.seconds * 100
        rows.append(Row("load: bridge / API process", "", f"{cpu} / {api_cpu:.0f} %, API peak RSS "
                        f"{proc.get('peak_rss_kib', 0):,} KiB, {proc.get('restarts')} restarts", "",
                        "API its own pid, 0 restarts", proc.get("pid") not in (None, bridge.proc.pid)
                        and proc.get("same_pid") is True and proc.get("restarts") == 0))
    ign = c.get("ignored", {})
    rows.append(Row("load: ignored messages", "",
                    f"{ign.get('published', 0):,} ({rate(ign, 'published'):.0f}/s)", "", "", None))
    fol = c.get("follow", {})
    rows.append(Row("load: messages --follow", "", f"{fol.get('lines', 0):,} lines, "
                    f"{'running' if fol.get('alive_at_end') else 'EXITED'} at the end", "", "running",
                    bool(fol.get("alive_at_end"))))
    rows.append(Row("journal rows dropped", "", f"{journal.get('dropped')} ({journal.get('written')} written)", "",
                    "= 0", journal.get("dropped") == 0))
    rows.append(Row("export backlog after the run", "", f"{export.get('backlog')}", "", "= 0 (drains)",
                    export.get("backlog") == 0))
    log_lines = [line for line in bridge_log.splitlines() if line.strip()]
    rows.append(Row("bridge log lines during bench", "", f"{len(log_lines)}", "", "", None))
    alive = bridge.proc is not None and bridge.proc.poll() is None
    rows.append(Row("bridge alive at the end", "", "yes" if alive else "NO", "", "yes", alive))
    if log_lines:
        print("bridge log during the bench (first 5 lines):\n  " + "\n  ".join(log_lines[:5]))
    print(f"\nload ran {load.seconds:.1f} s: " + json.dumps(c))
    print()
    print(table(rows))
    results.update(idle_ms=idle, busy_ms=busy, ratios=ratio, p99_ratio_bridge_over_bare=rel, load=c,
                   load_seconds=load.seconds, journal=journal, export=export, rows=[vars(r) for r in rows])
    return all(r.ok is not False for r in rows)


if __name__ == "__main__":
    sys.exit(main())
