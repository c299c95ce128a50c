"""`make demo`: a broker, the simulated MCU and the bridge; one charging session; every question.

Plays the OCPP service the way Josev does (get_event_timestamp on ocpp/cs, answer on cs/ocpp) and
prints, for each event type and trigger reason, the simulator's hardware time, the bridge's answer
and the round trip. Exits 0 only if every answer equals the hardware time.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from .config import MqttConfig
from .core.conditions import START_ONLY, TRIGGER_REASONS, EventType
from .core.timestamps import parse_us
from .harness.bridge_process import BridgeProcess
from .harness.broker import Mosquitto
from .harness.waiting import wait_until
from .request_client import RequestClient
from .sim.launcher import start_sim

SESSION = [
    ("parking-bay-occupied", {}), ("plug-connector", {}), ("authorize-id-tag", {"id_tag": "DEMO-TAG-1"}),
    ("ev-requests-energy", {}), ("data-signed", {}), ("ev-stops-energy", {}), ("stop-session", {}),
    ("unplug-connector", {}), ("parking-bay-vacated", {}),
]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="josev-bridge-demo-") as tmp:
        work = Path(tmp)
        with Mosquitto(work / "broker") as broker, start_sim(work / "sim") as sim:
            bridge = BridgeProcess(work / "bridge", broker_port=broker.port, serial_url=str(sim.pty_link),
                                   identity="demo-charger", log_level="INFO")
            try:
                bridge.start()
                assert bridge.proc is not None  # start() ran it
                print(f"broker 127.0.0.1:{broker.port} | simulated MCU on {sim.pty} | bridge pid {bridge.proc.pid}")
                hardware = play(sim, bridge)
                return ask_everything(broker.port, hardware)
            finally:
                bridge.stop()


def play(sim, bridge) -> dict[tuple[str, str], str]:
    print("\nCharging session on EVSE 1 (simulator control API, OCPPLAB style):")
    hardware: dict[tuple[str, str], str] = {}
    expected_edges = 0
    for command, event in SESSION:
        status, body = sim.command(command, {"evse_id": 1, **event})
        if status != 200:
            raise SystemExit(f"simulator refused {command}: {status} {body}")
        for edge in body["edges"]:
            hardware[(edge["event_type"], edge["trigger_reason"])] = edge["timestamp"]
            expected_edges += 1
        summary = ", ".join(f"{e['trigger_reason']} {e['event_type'].removeprefix('TxEvent')}" for e in body["edges"])
        print(f"  POST /ocpp/commands/{command:<22} -> {summary or '(no edge)'}")
    wait_until(lambda: bridge.log_text().count(" at 20") >= expected_edges, 10, "the bridge to read every record")
    return hardware


def ask_everything(port: int, hardware: dict[tuple[str, str], str]) -> int:
    rows, failures = [], 0
    with RequestClient(MqttConfig(host="127.0.0.1", port=port), client_id="demo-ocpp-service") as client:
        for event_type in EventType:
            for reason in TRIGGER_REASONS:
                expected = hardware.get((event_type.value, reason.value))
                silent = event_type is EventType.STOP and reason in START_ONLY
                question = {"event_type": event_type.value, "trigger_reason": reason.value}
                reply = client.send("get_event_timestamp", question, timeout=1.0 if silent else 5.0)
                got = reply.response["data"]["timestamp"] if reply.response else None
                # an answer the hardware has no time for is a mismatch (not a traceback)
                ok = (got is None) if silent else \
                    (got is not None and expected is not None and parse_us(got) == parse_us(expected))
                failures += not ok
                rtt = f"{reply.round_trip_ms:.2f} ms" if reply.round_trip_ms is not None else "-"
                rows.append([f"{event_type.value} / {reason.value}", expected or "(none: no stop point)",
                             got or "(no reply, as designed)", rtt, "ok" if ok else "MISMATCH"])
    print()
    _table(["question", "hardware time (MCU)", "bridge answer", "round trip", ""], rows)
    print(f"\n{len(rows) - failures}/{len(rows)} answers match the hardware" + ("" if not failures else " - FAILED"))
    return 1 if failures else 0


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    print(line(header))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))


if __name__ == "__main__":
    sys.exit(main())
