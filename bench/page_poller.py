"""N status pages' worth of API polling, as josev_bridge/api/static/page.js polls (a bench helper).

    python bench/page_poller.py --url http://127.0.0.1:PORT --token TOKEN [--pages N]

Each page, once a second: GET /api/status, /api/timeline?since=<24 h ago>, /api/journal-tail?limit=50
(in parallel, as the script's Promise.all); every 5 s also /api/device-model and /api/alerts?limit=100.
Why a poller and not chromium here: on a board the browser runs on the technician's laptop, at the
other end of an SSH tunnel; what the board serves is exactly these requests. Prints READY after
every page's first round, and at SIGTERM one line: rounds, requests, non-200 answers, p99 ms.
"""

from __future__ import annotations

import argparse
import http.client
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--pages", type=int, default=1)
    args = p.parse_args()
    host, port = urlsplit(args.url).hostname, urlsplit(args.url).port
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stats = {"rounds": 0, "requests": 0, "errors": 0}
    times: list[float] = []
    lock = threading.Lock()
    first_round = threading.Barrier(args.pages + 1)

    def page() -> None:
        local = threading.local()
        pool = ThreadPoolExecutor(3)  # a browser keeps up to 6 connections per origin; the page needs 3

        def get(path: str) -> None:
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(host, port, timeout=10)
            t0 = time.perf_counter()
            try:
                conn.request("GET", path, headers={"Authorization": f"Bearer {args.token}"})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                local.conn, ok = None, False
            with lock:
                stats["requests"] += 1
                stats["errors"] += not ok
                times.append((time.perf_counter() - t0) * 1000)

        n = 0
        while not stop.is_set():
            started = time.monotonic()
            since = (datetime.now(UTC) - timedelta(days=1)).isoformat(timespec="milliseconds")
            paths = ["/api/status", "/api/timeline?since=" + quote(since.replace("+00:00", "Z")),
                     "/api/journal-tail?limit=50"]
            if n % 5 == 0:
                paths += ["/api/device-model", "/api/alerts?limit=100&includeMuted=true"]
            list(pool.map(get, paths))
            with lock:
                stats["rounds"] += 1
            if n == 0:
                first_round.wait()
            n += 1
            stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))  # page.js: the next round 1 s after this one
        pool.shutdown()

    threads = [threading.Thread(target=page, daemon=True) for _ in range(args.pages)]
    for t in threads:
        t.start()
    first_round.wait()
    print("READY", flush=True)
    stop.wait()
    for t in threads:
        t.join(5)
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))] if times else 0.0
    print(f"rounds {stats['rounds']} requests {stats['requests']} errors {stats['errors']} p99_ms {p99:.1f}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
