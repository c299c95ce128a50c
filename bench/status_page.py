"""get_event_timestamp with the status page open and refreshing once a second, vs without (issue 15 section 1).

    .venv/bin/python bench/status_page.py [--quick] [--pages N] [--json PATH]

bench/roundtrip.py's parts on loopback at QoS 1 (one mosquitto with the shipped settings, the sim,
the bridge with its journal and its API process, one client), sequential requests in blocks
interleaved A B B A so machine noise hits both alike:

  closed  nothing polls the API
  open    bench/page_poller.py polls as N pages would (the requests page.js makes, once a second;
          a process of its own, so it shares no GIL with this client)

Bar (issue 15): the bridge's p99 with the page open <= 1.2x its p99 closed. Every request answered
once with the right timestamp; every page request 200. Exit 0 when all hold.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import common  # bench/common.py; first: it puts this checkout on sys.path
from common import percentile
from josev_bridge.harness.bridge_process import BridgeProcess
from josev_bridge.harness.broker import Mosquitto
from josev_bridge.sim.launcher import start_sim
from roundtrip import BenchClient, Target, machine, prime_bridge, sequential

BAR = 1.2


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    p.add_argument("--pages", type=int, default=1, help="status pages open at once (default 1)")
    p.add_argument("--block-s", type=float, help="seconds of sequential requests per block (default 10; --quick 3)")
    p.add_argument("--blocks", type=int, default=8, help="blocks in all, interleaved ABBA (default 8)")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    block_s = args.block_s or (3.0 if args.quick else 10.0)  # long enough for the pages to refresh many times
    common.exit_on_sigterm()
    info = machine()
    common.print_start(info, 14)
    samples: dict[str, list[float]] = {"closed": [], "open": []}
    poller_lines: list[str] = []
    bridge_t = Target("bridge", "ocpp/cs", "cs/ocpp")
    with tempfile.TemporaryDirectory(prefix="josev-bridge-bench-page-") as tmp:
        work = Path(tmp)
        with Mosquitto(work / "broker") as broker, start_sim(work / "sim") as sim, \
                BridgeProcess(work / "bridge", broker_port=broker.port, serial_url=str(sim.pty_link),
                              identity="bench-charger", log_level="WARNING") as bridge:
            bridge.api_pid()
            bc = BenchClient(broker.port, [bridge_t])
            try:
                prime_bridge(sim, bc, bridge_t)
                sequential(bc, bridge_t, 300, None)  # warm-up
                order = [phase for _ in range(args.blocks // 2) for phase in ("closed", "open", "open", "closed")]
                for phase in order:
                    poller = None
                    if phase == "open":
                        poller = common.start_helper("page_poller.py", "--url", bridge.api_url(), "--token",
                                                     bridge.api_token(), "--pages", str(args.pages))
                    try:
                        end = time.monotonic() + block_s
                        while time.monotonic() < end:
                            sequential(bc, bridge_t, 50, samples[phase])
                    finally:
                        if poller is not None:
                            poller_lines.append(common.stop_helper(poller).strip())
            finally:
                bc.close()
    ok = bridge_t.lost == 0 and bridge_t.wrong == 0 and bridge_t.duplicates == 0
    print(f"\n{'phase':<8}{'n':>7}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    figures: dict = {}
    for phase, values in samples.items():
        values.sort()
        figures[phase] = {q: round(percentile(values, q), 3) for q in (50, 90, 99)} | {"n": len(values),
                                                                                     "max": round(values[-1], 3)}
        f = figures[phase]
        print(f"{phase:<8}{f['n']:>7}{f[50]:>9.2f}{f[90]:>9.2f}{f[99]:>9.2f}{f['max']:>9.2f}")
    ratio = figures["open"][99] / figures["closed"][99]
    errors = sum(int(line.split("errors ")[1].split()[0]) for line in poller_lines if "errors " in line)
    rounds = sum(int(line.split("rounds ")[1].split()[0]) for line in poller_lines if "rounds " in line)
    ok = ok and errors == 0 and rounds > 0 and ratio <= BAR
    print(f"p99 open / closed: {ratio:.2f} (bar <= {BAR}); {args.pages} page(s), {rounds} page refreshes, "
          f"{errors} non-200; lost {bridge_t.lost}, wrong {bridge_t.wrong}, duplicates {bridge_t.duplicates}")
    print("ALL BARS PASS" if ok else "SOME BARS FAIL")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "args": vars(args), "figures": figures,
                                               "ratio_p99": ratio, "pass": ok}, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
