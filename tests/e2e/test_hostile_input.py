"""Bytes on the bus that JSON or SQLite cannot carry: journaled as InvalidMessage, readable ever after.

One lone surrogate used to make GET /api/ocpp-messages and `josev-bridge messages` fail until
retention removed the row, 30 days later. Each case below goes through the real broker and daemon.
"""

from __future__ import annotations

import json
import urllib.request
from urllib.parse import urlencode

from josev_bridge.config import MqttConfig
from josev_bridge.harness.waiting import wait_until
from josev_bridge.request_client import RequestClient

IDENTITY = "test-charger"
HOSTILE = [
    b'{"id": "\\ud800", "name": "get_event_timestamp", "type": "request", "data": {}}',
    b'{"id": "1", "name": "\\udc00x", "type": "request", "data": {"k": "\\ud83d"}}',
    b'{"id": "a\\u0000b", "name": "get_event_timestamp", "type": "request", "data": {}}',
    b'{"id": "1", "name": "n\\u0000", "type": "request", "data": {}}',
    b'{"id": NaN, "name": "get_event_timestamp", "type": "request", "data": {}}',
    b'{"id": "1", "name": "x", "type": "request", "data": {"v": 1e999999}}',
    b'{"id": "1", "name": "x", "type": "request", "data": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
    b'{"id": "1", "name": "heartbeat", "type": "request", "data": {"a": "\xff\x00raw"}}',
]
ESCAPE = b'{"id": "\\u001b[2J\\u001b[31m", "name": "heartbeat", "type": "request", "data": {}}'  # clear, recolour


def strict_json(text: str):
    """What any JSON reader accepts: no NaN or Infinity, and text that encodes as UTF-8."""
    text.encode("utf-8")
    return json.loads(text, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))


def api_rows(bridge, limit=100):
    request = urllib.request.Request(bridge.api_url("/api/ocpp-messages") + "?" + urlencode(
        [("chargerId", IDENTITY), ("limit", limit)]))
    request.add_header("Authorization", f"Bearer {bridge.api_token()}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return strict_json(response.read().decode("utf-8"))["data"]


def test_hostile_payloads_are_journaled_readably_and_the_next_request_is_answered(broker, sim, bridge):
    status, body = sim.command("plug-connector")
    bridge.wait_log("EVConnected TxEventStart")
    with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port)) as client:
        for payload in HOSTILE + [ESCAPE]:
            client.publish_raw(payload)
        reply = client.send("get_event_timestamp", {"event_type": "TxEventStart", "trigger_reason": "EVConnected"})
    assert reply.response["data"] == {"timestamp": body["edges"][0]["timestamp"]}

    rows = wait_until(lambda: (r := api_rows(bridge)) and sum(x["messageResponse"] in ("InvalidMessage", "Ignored")
                                                               for x in r) >= len(HOSTILE) and r, 10,
                      "a journal row for every hostile payload")
    invalid = [r for r in rows if r["messageResponse"] == "InvalidMessage"]
    assert len(invalid) >= len(HOSTILE) - 1  # the raw-bytes heartbeat is not JSON either, or ignored
    assert all(isinstance(r["note"], str) and r["note"] for r in invalid)
    answered = next(r for r in rows if r["correlationId"] == reply.request["id"])
    assert answered["messageResponse"] == reply.response["data"]

    cli = bridge.cli("messages", "--json", "--limit", "100")
    assert cli.returncode == 0, cli.stderr
    lines = [strict_json(line) for line in cli.stdout.splitlines()]
    assert {r["id"] for r in rows} <= {line["id"] for line in lines}  # rows may have been added since
    table = bridge.cli("messages", "--limit", "100")
    assert table.returncode == 0, table.stderr
    assert "\x1b" not in table.stdout  # an id from the bus cannot drive the technician's terminal
    assert "Traceback" not in bridge.log_text()
    assert bridge.proc.poll() is None


def test_a_flood_of_bad_messages_does_not_flood_the_log(broker, bridge):
    """One line per bad message up to a burst, then a summary with the count: journald would otherwise
    drop the unit's other lines. Every message is still counted and journaled."""
    import re
    n = 300
    mark = len(bridge.log_text())
    with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port)) as client:
        for i in range(n):
            client.publish_raw(b"{not json %d" % i)
    wait_until(lambda: bridge.status()["rejected_messages"].get("malformed_json", 0) >= n, 20, "all counted")

    def logged() -> tuple[int, int]:
        text = bridge.log_text()[mark:]
        return (text.count("dropping malformed json message"),
                sum(int(m) for m in re.findall(r"dropped (\d+) more malformed json", text)))

    each, summarized = wait_until(lambda: (c := logged()) and sum(c) == n and c, 10,
                                  "a line or a summary count for every message")
    assert summarized > 0 and each < n // 4
    rows = api_rows(bridge, limit=500)
    assert sum(1 for r in rows if r["messageResponse"] == "InvalidMessage") >= n
