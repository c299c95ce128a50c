"""Overload on a real broker: a burst of requests and a flood of large messages (issue: field hardening).

    .venv/bin/python bench/overload.py [--quick]

burst  5000 get_event_timestamp requests published back to back at QoS 1 by a requester with no
       in-flight window, once on MQTT 5 and once on 3.1.1: answers counted by id (none lost, none
       twice), time to the last answer, the bridge's peak RSS.
flood  800 messages/s of 60 KB for 25 s (a name another service handles: journaled, not answered),
       while a get_event_timestamp is asked every 0.5 s: the bridge's peak RSS against its RSS idle
       (the baseline, measured in the same run), payloads shed and rows dropped, answer round trips.

The broker's own writes during the burst are printed too (its persistence saves; the shipped
snippet saves every 10 s, so a burst costs at most a save or two).

Bars: every burst request answered exactly once; peak RSS under 3/4 of the unit's MemoryMax
(96 MiB) in both phases; every request during the flood answered. Exit 0 when all pass.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

import common  # bench/common.py; first: it puts this checkout on sys.path
from common import load_average, mosquitto_version, rss_kib
from josev_bridge.config import MqttConfig
from josev_bridge.harness.bridge_process import BridgeProcess
from josev_bridge.harness.broker import Mosquitto
from josev_bridge.harness.waiting import wait_until
from josev_bridge.request_client import RequestClient
from josev_bridge.sim.launcher import start_sim

QUESTION = {"event_type": "TxEventStart", "trigger_reason": "EVConnected"}
BAR_RSS_KIB = 96 * 1024


def written_kib(pid: int) -> int:
    """What a process has written to storage so far (the broker's persistence saves)."""
    with open(f"/proc/{pid}/io") as io:
        for line in io:
            if line.startswith("write_bytes:"):
                return int(line.split()[1]) >> 10
    return 0


def client(name: str, port: int, protocol=mqtt.MQTTv311) -> mqtt.Client:
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:6]}",
                    protocol=protocol)
    c.max_inflight_messages_set(0)
    c.max_queued_messages_set(0)
    return c


def burst(port: int, n: int) -> dict:
    answers: Counter[str] = Counter()
    subscribed = threading.Event()
    c = client("burst", port)
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe("cs/ocpp", qos=1)
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_message = lambda cl, u, m: answers.update([json.loads(m.payload)["id"]])
    c.connect("127.0.0.1", port)
    c.loop_start()
    subscribed.wait(10)
    ids = [str(uuid.uuid4()) for _ in range(n)]
    start = time.monotonic()
    for msg_id in ids:
        c.publish("ocpp/cs", json.dumps({"id": msg_id, "name": "get_event_timestamp", "type": "request",
                                         "data": QUESTION}), qos=1)
    try:
        wait_until(lambda: all(answers[i] for i in ids), 120, "every answer")
        took = time.monotonic() - start
        sentinel = [str(uuid.uuid4())]
        c.publish("ocpp/cs", json.dumps({"id": sentinel[0], "name": "get_event_timestamp", "type": "request",
                                         "data": QUESTION}), qos=1)
        wait_until(lambda: answers[sentinel[0]], 30, "the last answer")  # answers come in order: no late twin
    except TimeoutError:
        took = float("nan")
    finally:
        c.disconnect()
        c.loop_stop()
    return {"answered": sum(1 for i in ids if answers[i]), "twice": sum(1 for i in ids if answers[i] > 1),
            "seconds": took}


def flood(port: int, rate: float, seconds: float, size: int, asker: RequestClient) -> dict:
    c = client("flood", port)
    c.connect("127.0.0.1", port)
    c.loop_start()
    filler = "x" * (size - 120)
    round_trips, unanswered = [], 0
    start, sent, next_ask = time.monotonic(), 0, 0.0
    while (now := time.monotonic() - start) < seconds:
        due = int(now * rate)
        while sent < due:
            c.publish("ocpp/cs", json.dumps({"id": str(sent), "name": "heartbeat", "type": "request",
                                             "data": {"blob": filler}}), qos=1)
            sent += 1
        if now >= next_ask:
            next_ask = now + 0.5
            reply = asker.send("get_event_timestamp", QUESTION, timeout=10)
            if reply.response is None:
                unanswered += 1
            else:
                round_trips.append(reply.round_trip_ms)
        time.sleep(0.005)
    c.disconnect()
    c.loop_stop()
    return {"sent": sent, "asked": len(round_trips) + unanswered, "unanswered": unanswered,
            "rtt_median_ms": statistics.median(round_trips) if round_trips else float("nan"),
            "rtt_max_ms": max(round_trips) if round_trips else float("nan")}


def run_bridge(work: Path, broker: Mosquitto, sim, protocol: str) -> BridgeProcess:
    bridge = BridgeProcess(work / f"bridge-{protocol}", broker_port=broker.port, serial_url=str(sim.pty_link),
                           identity=f"bench-{protocol.replace('.', '')}", log_level="WARNING",
                           extra={"mqtt": {"protocol": protocol}})
    return bridge.start()


def main() -> int:
    common.exit_on_sigterm()  # `kill`, `timeout`: still stop what it started
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1000-request burst, 5 s of flood")
    args = parser.parse_args()
    requests, flood_s = (1000, 5.0) if args.quick else (5000, 25.0)
    common.print_start(common.machine(mosquitto=mosquitto_version()), 14)
    ok = True
    with tempfile.TemporaryDirectory() as tmp, Mosquitto(Path(tmp) / "broker") as broker, \
            start_sim(Path(tmp) / "sim") as sim:
        for protocol in ("5", "3.1.1"):
            bridge = run_bridge(Path(tmp), broker, sim, protocol)
            try:
                sim.command("unplug-connector")
                sim.command("plug-connector")
                with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port)) as asker:
                    wait_until(lambda: asker.send("get_event_timestamp", QUESTION, timeout=1).response, 30,
                               "the bridge to answer")
                idle = rss_kib(bridge.proc.pid)
                saved_before = written_kib(broker.proc.pid)
                result = burst(broker.port, requests)
                saved = written_kib(broker.proc.pid) - saved_before
                peak = rss_kib(bridge.proc.pid, "VmHWM")
                passed = result["answered"] == requests and not result["twice"] and peak < BAR_RSS_KIB
                ok &= passed
                print(f"burst MQTT {protocol:5}: {result['answered']}/{requests} answered, {result['twice']} twice, "
                      f"last after {result['seconds']:.2f} s; RSS idle {idle} KiB, peak {peak} KiB "
                      f"({peak - idle:+} KiB); the broker wrote {saved} KiB (autosave) {'PASS' if passed else 'FAIL'}")
                if protocol == "5":
                    with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port)) as asker:
                        result = flood(broker.port, 800, flood_s, 60_000, asker)
                    journal = wait_until(lambda b=bridge: (j := b.status()["journal"]) and j["pending"] == 0 and j,
                                         120, "the journal to catch up")
                    peak = rss_kib(bridge.proc.pid, "VmHWM")
                    passed = peak < BAR_RSS_KIB and result["unanswered"] == 0
                    ok &= passed
                    print(f"flood 800/s x 60 KB x {flood_s:g} s: {result['sent']} sent; journal {journal['written']} "
                          f"rows written, {journal['payloads_shed']} payloads shed, {journal['dropped']} rows dropped; "
                          f"{result['asked'] - result['unanswered']}/{result['asked']} requests answered "
                          f"(median {result['rtt_median_ms']:.2f} ms, max {result['rtt_max_ms']:.1f} ms); "
                          f"RSS peak {peak} KiB (idle {idle} KiB, bar {BAR_RSS_KIB}) {'PASS' if passed else 'FAIL'}")
            finally:
                bridge.stop()
    print(f"load average at the end: {load_average()}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
