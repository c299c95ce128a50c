"""Answers on a keep-alive connection come at once, not after the client's delayed ACK.

The head and the body of an answer are two writes. With Nagle's algorithm on, the body waited for
the ACK of the head, which a Linux client delays by ~40 ms: every answer after the first on a
connection took 40+ ms instead of ~1 ms (bench/journal.py found it). Twenty answers in a row
cannot take 20 ms each with TCP_NODELAY set, and cannot take less with it unset.
"""

from __future__ import annotations

import http.client
import statistics
import time

from josev_bridge.api.server import ApiServer, Response


def test_keep_alive_answers_do_not_wait_for_delayed_acks():
    server = ApiServer("127.0.0.1", 0, "t", {"/x": lambda request: Response({"data": ["y" * 300] * 20})},
                       rate_per_s=1e6)
    server.start()
    try:
        conn = http.client.HTTPConnection(*server.address, timeout=10)
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            conn.request("GET", "/x", headers={"Authorization": "Bearer t"})
            response = conn.getresponse()
            assert response.status == 200 and response.read()
            times.append(time.perf_counter() - t0)
        conn.close()
    finally:
        server.stop()
    assert statistics.median(times) < 0.020, [f"{t * 1000:.1f} ms" for t in times]
