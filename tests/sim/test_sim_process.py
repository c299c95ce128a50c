"""The sim as a process: its pty speaks the serial protocol and agrees with its control API."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from josev_bridge.adapters.log_output import level_of
from josev_bridge.core.conditions import START_ONLY, TRIGGER_REASONS
from josev_bridge.core.edge_store import EdgeStore
from josev_bridge.core.timestamps import format_us, truncate_to_ms
from josev_bridge.harness.waiting import wait_until
from josev_bridge.protocol.framing import encode_frame
from josev_bridge.protocol.records import Ack, FrameType, KeepAlive, decode
from josev_bridge.sim.launcher import SimStartError, launch_sim, start_sim

pytestmark = pytest.mark.e2e  # the simulator as a process
REPO = Path(__file__).resolve().parents[2]


def api_records(body: dict) -> list[tuple]:
    return [(r["seq"], r["evse_id"], r["connector_id"], r["signal"], r["state"], r["timestamp"])
            for r in body["records"]]


def line_records(received) -> list[tuple]:
    return [(seq, r.evse_id, r.connector_id, r.signal.name, r.state, format_us(r.time_us)) for seq, r in received]


def bridge_edges(store: EdgeStore, received) -> list[dict]:
    """Edges the bridge's own core derives from the line records, in the sim's edge-dict shape."""
    out = []
    for _, record in received:
        for edge in store.apply(record):
            if edge.condition not in TRIGGER_REASONS or (edge.condition in START_ONLY and not edge.rising):
                continue
            out.append({"evse_id": edge.evse_id, "trigger_reason": edge.condition.value,
                        "event_type": edge.event_type.value, "timestamp": format_us(edge.time_us)})
    return out


def test_ready_line_and_handshake(sim, host):
    assert sim.ready["event"] == "ready"
    assert os.path.realpath(sim.pty_link) == sim.pty
    assert stat.S_IMODE(sim.token_file.stat().st_mode) == 0o600
    hello = host.hello()
    assert hello.boot_id == sim.boot_id and hello.firmware.startswith("josev-sim ")


def test_line_records_match_the_api_and_core_edges(sim, host):
    host.hello()
    store = EdgeStore()
    script = [("start-session", {"evse_id": 1, "id_tag": "CARD-1"}), ("data-signed", {}),
              ("parking-bay-occupied", {"evse_id": 2}), ("ev-stops-energy", {}), ("ev-requests-energy", {}),
              ("stop-session", {}), ("authorize-id-tag", {"id_tag": "CARD-2"}), ("unplug-connector", {}),
              ("parking-bay-vacated", {"evse_id": 2}), ("plug-connector", {"evse_id": 2, "connector_id": 2})]
    for name, event in script:
        status, body = sim.command(name, event)
        assert status == 200, body
        assert body["event_type"] == name and body["target"] == {"charger_id": "josev-sim"}
        received = host.signals(len(body["records"]))
        assert line_records(received) == api_records(body)
        assert [r.time_us for _, r in received] == [r["time_us"] for r in body["records"]]
        assert bridge_edges(store, received) == body["edges"], name
    assert host.no_signal_within(0.2)


def test_timestamps_agree_after_ms_truncation(sim, host):
    _, body = sim.command("plug-connector", {})
    (_, record), = host.signals(1)
    edge, = body["edges"]
    assert edge["timestamp"] == format_us(truncate_to_ms(record.time_us))
    assert abs(record.time_us - time.time_ns() // 1000) < 5_000_000  # the sim's clock is UTC epoch time


def test_idempotent_and_refused_commands_send_nothing(sim, host):
    sim.command("plug-connector", {})
    host.signals(1)
    status, body = sim.command("plug-connector", {})
    assert status == 200 and body["records"] == [] and body["edges"] == []
    status, body = sim.command("ev-requests-energy", {})
    assert status == 200 and body["records"] == [] and "power path is not closed" in body["note"]
    assert host.no_signal_within(0.2)


def test_ack_drops_records_and_host_hello_replays_the_rest(sim, host):
    host.hello()
    _, body = sim.command("start-session", {})
    assert [r["seq"] for r in body["records"]] == [1, 2, 3, 4]
    host.signals(4)
    host.send(Ack(sim.boot_id + 1 & 0xFFFFFFFF, 4))  # another boot's ACK: ignored
    host.send(Ack(sim.boot_id, 2))
    wait_for(lambda: sim.status()["unacked"] == 2)
    assert sim.status()["link"]["counters"]["foreign_acks"] == 1

    host.hello()
    assert [seq for seq, _ in host.signals(2)] == [3, 4]
    assert host.no_signal_within(0.2)


def test_replay_after_the_host_reopens_the_port(sim, host, open_host):
    host.hello()
    host.close()  # the bridge restarts: the sim keeps the slave open and goes on
    _, body = sim.command("start-session", {"evse_id": 2})
    reopened = open_host(sim.pty_link)
    reopened.hello()
    assert line_records(reopened.signals(4)) == api_records(body)


def test_host_keepalive_is_recorded(sim, host):
    host.send(KeepAlive(123))
    wait_for(lambda: sim.status()["link"]["last_host_clock_us"] == 123)
    age = sim.status()["link"]["host_keepalive_age_s"]
    assert age is not None and age >= 0


def test_garbage_from_the_host_is_survived(sim, host):
    host.write_raw(b"\x00\xff\x13\x37" * 50 + b"\x00")  # COBS nonsense
    host.write_raw(encode_frame(FrameType.ACK, 0, b"\x01"))  # ACK with a short body
    host.write_raw(encode_frame(0x7E, 0, b"future"))  # unknown frame type
    host.write_raw(bytes(range(1, 256)) * 10 + b"\x00")  # oversize
    assert host.hello().boot_id == sim.boot_id
    link = sim.status()["link"]
    assert link["counters"]["bad_records"] == 1 and link["counters"]["unknown_frames"] == 1
    assert link["decoder"]["oversize"] >= 1 and link["decoder"]["cobs_errors"] + link["decoder"]["runt"] >= 1


def test_status(shared_sim):
    status = shared_sim.status()
    assert status["charger_id"] == "josev-sim" and status["boot_id"] == shared_sim.boot_id
    assert status["pty"] == shared_sim.pty and status["pty_link"] == str(shared_sim.pty_link)
    assert [e["evse_id"] for e in status["evses"]] == [1, 2]
    assert {"unacked", "next_seq", "last_acked_seq"} <= status.keys()


# -- errors, OCPPLAB style ---------------------------------------------------------------------------
def test_401_without_or_with_a_wrong_token(shared_sim):
    body = json.dumps({"target": {"charger_id": "josev-sim"}, "event": {}}).encode()
    status, answer = shared_sim.request("POST", "/ocpp/commands/plug-connector", body, {"Authorization": None})
    assert status == 401 and "error" in answer
    status, answer = shared_sim.command("plug-connector", {}, token="wrong")
    assert status == 401 and "error" in answer
    status, _ = shared_sim.request("GET", "/ocpp/status", headers={"Authorization": None})
    assert status == 401


def test_400_on_malformed_json(shared_sim):
    for raw in (b"{not json", b"", b"\xff\xfe"):
        status, answer = shared_sim.request("POST", "/ocpp/commands/plug-connector", raw)
        assert status == 400 and "error" in answer


def test_404_unknown_command_and_unknown_charger(shared_sim):
    status, answer = shared_sim.command("launch-rocket", {})
    assert status == 404 and "launch-rocket" in answer["error"]
    status, answer = shared_sim.command("plug-connector", {}, charger_id="someone-else")
    assert status == 404 and "someone-else" in answer["error"]
    status, _ = shared_sim.request("GET", "/ocpp/nothing")
    assert status == 404


@pytest.mark.parametrize(("name", "event", "loc", "kind"), [
    ("plug-connector", {"evse_id": 3}, ["body", "event", "evse_id"], "less_than_equal"),
    ("plug-connector", {"evse_id": 0}, ["body", "event", "evse_id"], "greater_than_equal"),
    ("plug-connector", {"evse_id": "1"}, ["body", "event", "evse_id"], "int_type"),
    ("plug-connector", {"evse_id": True}, ["body", "event", "evse_id"], "int_type"),
    ("plug-connector", {"connector_id": 256}, ["body", "event", "connector_id"], "less_than_equal"),
    ("plug-connector", {"colour": "red"}, ["body", "event", "colour"], "extra_forbidden"),
    ("plug-connector", {"id_tag": "X"}, ["body", "event", "id_tag"], "extra_forbidden"),
    ("authorize-id-tag", {}, ["body", "event", "id_tag"], "missing"),
    ("authorize-id-tag", {"id_tag": ""}, ["body", "event", "id_tag"], "string_too_short"),
    ("authorize-id-tag", {"id_tag": "x" * 37}, ["body", "event", "id_tag"], "string_too_long"),
    ("start-session", {"id_tag": 7}, ["body", "event", "id_tag"], "string_type"),
])
def test_422_on_bad_events(shared_sim, name, event, loc, kind):
    status, answer = shared_sim.command(name, event)
    assert status == 422
    assert {"loc": loc, "type": kind} == {k: answer["detail"][0][k] for k in ("loc", "type")}
    assert answer["detail"][0]["msg"]


@pytest.mark.parametrize(("body", "loc"), [
    ([], ["body"]),
    ({"event": {}}, ["body", "target"]),
    ({"target": {"charger_id": "josev-sim"}}, ["body", "event"]),
    ({"target": {"charger_id": 5}, "event": {}}, ["body", "target", "charger_id"]),
    ({"target": {"charger_id": "josev-sim"}, "event": [], "extra": 1}, ["body", "extra"]),
])
def test_422_on_bad_bodies(shared_sim, body, loc):
    status, answer = shared_sim.request("POST", "/ocpp/commands/plug-connector", json.dumps(body).encode())
    assert status == 422
    assert loc in [item["loc"] for item in answer["detail"]]


def test_refused_requests_change_nothing(shared_sim):
    before = shared_sim.status()["next_seq"]
    shared_sim.command("plug-connector", {"evse_id": 9})
    shared_sim.command("plug-connector", {}, charger_id="nope")
    shared_sim.command("plug-connector", {}, token="nope")
    assert shared_sim.status()["next_seq"] == before


# -- lifecycle ---------------------------------------------------------------------------------------
def test_sigterm_cleans_up(tmp_path):
    sim = launch_sim(tmp_path)
    assert sim.pty_link.is_symlink()
    sim.process.send_signal(signal.SIGTERM)
    assert sim.process.wait(5) == 0
    sim.stop()
    assert not sim.pty_link.is_symlink() and not sim.token_file.exists()
    assert sim.token not in sim.log_text()


@pytest.mark.parametrize("entry", [["josev_bridge", "sim"], ["josev_bridge.sim"]],
                         ids=["josev-bridge sim", "python -m josev_bridge.sim"])
@pytest.mark.parametrize("level, shown", [([], True), (["--log-level", "warning"], False)], ids=["default", "warning"])
def test_the_sim_writes_its_log_lines_to_stderr_as_the_daemon_does(tmp_path, entry, level, shown):
    """`josev-bridge sim` set up no logging: its INFO lines went nowhere, its warnings out bare."""
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}  # a terminal's format, not journald's
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    process = subprocess.Popen([sys.executable, "-m", *entry, "--pty-link", str(tmp_path / "mcu.pty"),
                                "--control", "127.0.0.1:0", *level],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
                               text=True)
    try:
        assert select.select([process.stdout], [], [], 10)[0], "no ready line in 10 s"
        assert json.loads(process.stdout.readline())["event"] == "ready"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    up = [line for line in stderr.splitlines() if "josev_bridge.sim.app: sim up: " in line]
    if shown:  # `2026-02-17T10:20:30.123Z INFO josev_bridge.sim.app: sim up: ...`, as the daemon writes it
        assert len(up) == 1 and level_of(up[0]) == "INFO" and re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z ", up[0]), stderr
    else:
        assert up == [], stderr


def test_given_token_file_and_stale_link(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    link = tmp_path / "mcu.pty"
    link.symlink_to("/dev/null-gone")  # left over from a killed sim
    with start_sim(tmp_path, token_file=token_file, charger_id="bay-7", evse_count=1) as sim:
        assert sim.token == "s3cret-token" and sim.token_file == token_file
        assert os.path.realpath(link) == sim.pty
        assert sim.command("plug-connector", {"evse_id": 1})[0] == 200
        assert sim.command("plug-connector", {"evse_id": 2})[0] == 422
    assert token_file.exists()  # not ours to delete
    assert not link.is_symlink()


def test_refuses_to_replace_a_regular_file(tmp_path):
    (tmp_path / "mcu.pty").write_text("precious")
    with pytest.raises(SimStartError):
        launch_sim(tmp_path)
    assert (tmp_path / "mcu.pty").read_text() == "precious"


def test_sim_sends_keepalives_with_its_clock(shared_sim, open_host):
    """Last in the file: by now the shared sim has queued keepalives on its pty, so no 1 s wait."""
    host = open_host(shared_sim.pty_link, flush=False)  # read what piled up
    frame = host.next_frame(lambda f: f.type == FrameType.KEEPALIVE, timeout=3.0)
    keepalive = decode(frame)
    assert frame.seq == 0 and abs(keepalive.time_us - time.time_ns() // 1000) < 5_000_000


def wait_for(predicate, timeout: float = 3.0) -> None:
    wait_until(predicate, timeout, "the condition")

