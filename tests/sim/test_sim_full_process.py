"""The full simulator as a process: clock and ring CLI options seen on the real pty, and the
OCPPLAB error shapes of the newer commands over HTTP."""

from __future__ import annotations

import json
import os
import time

import pytest

from josev_bridge.core.timestamps import format_us
from josev_bridge.harness.waiting import wait_until
from josev_bridge.protocol.records import ClockProbe, FrameType, HostHello, decode
from josev_bridge.sim.catalogue import SPECS
from josev_bridge.sim.launcher import start_sim

pytestmark = pytest.mark.e2e  # the simulator as a process

OFFSET_S = -3600.5
DRIFT_PPM = 250.0


def now_us() -> int:
    return time.time_ns() // 1000


@pytest.fixture(scope="module")
def skewed_sim(tmp_path_factory):
    options = ["--clock-offset-s", str(OFFSET_S), "--clock-drift-ppm", str(DRIFT_PPM), "--ring-size", "3"]
    with start_sim(tmp_path_factory.mktemp("skewed"), evse_count=1, extra_args=options) as sim:
        yield sim


def expected_mcu_range(before_us: int, after_us: int, started_us: int) -> tuple[int, int]:
    """Bounds of the MCU clock between two true readings, the sim having started after `started_us`:
    the offset exactly, plus a positive drift of at most DRIFT_PPM over the time since the start."""
    offset = round(OFFSET_S * 1e6)
    return before_us + offset, after_us + offset + int((after_us - started_us) * DRIFT_PPM / 1e6) + 1


def test_clock_probe_over_the_real_pty(skewed_sim, open_host):
    status = skewed_sim.status()
    started = status["clock"]["true_us"] - 60_000_000  # the sim started well within the last minute
    assert status["clock"]["drift_ppm"] == DRIFT_PPM and status["clock"]["offset_s"] == OFFSET_S
    host = open_host(skewed_sim.pty_link)
    for probe_id in (4242, 4243):
        before = now_us()
        host.send(ClockProbe(probe_id), seq=probe_id)
        frame = host.next_frame(lambda f: f.type == FrameType.CLOCK_REPLY)
        after = now_us()
        reply = decode(frame)
        assert reply.probe_id == probe_id
        low, high = expected_mcu_range(before, after, started)
        assert low <= reply.mcu_time_us <= high, (low, reply.mcu_time_us, high)


def test_records_use_the_mcu_clock_and_edges_the_true_clock(skewed_sim, open_host):
    host = open_host(skewed_sim.pty_link)
    host.hello()
    before = now_us()
    status, body = skewed_sim.command("start-session", {"id_tag": "CARD"})
    after = now_us()
    assert status == 200
    line = host.signals(4)
    for (seq, record), api in zip(line, body["records"]):
        assert seq == api["seq"] and record.time_us == api["time_us"]  # the wire carries the MCU clock
        assert before <= api["true_time_us"] <= after
        assert api["true_timestamp"] == format_us(api["true_time_us"])
        skew = api["time_us"] - api["true_time_us"]
        assert round(OFFSET_S * 1e6) <= skew <= round(OFFSET_S * 1e6) + 1_000  # + drift since start
    true_stamps = {format_us(r["true_time_us"]) for r in body["records"]}
    assert {e["timestamp"] for e in body["edges"]} <= true_stamps


def test_ring_size_option_bounds_the_replay(skewed_sim, open_host):
    host = open_host(skewed_sim.pty_link)
    skewed_sim.command("unplug-connector", {})  # whatever came before: 5 more records into a ring of 3
    skewed_sim.command("start-session", {})
    status = skewed_sim.status()
    assert status["ring_size"] == 3 and status["unacked"] == 3 and status["ring_overflowed"] >= 5
    next_seq = status["next_seq"]
    host.send(HostHello(1))
    hello = decode(host.next_frame(lambda f: f.type == FrameType.HELLO))
    assert (hello.oldest_seq, hello.next_seq) == (next_seq - 3, next_seq)
    assert [seq for seq, _ in host.signals(3)] == [next_seq - 3, next_seq - 2, next_seq - 1]


def test_unplug_and_reboot_over_http(tmp_path, open_host):
    with start_sim(tmp_path / "sim") as sim:
        status, answer = sim.command("link-unplug", {"seconds": 0.2})
        assert status == 200 and answer["unplugged_for_s"] == 0.2
        assert not os.path.lexists(sim.pty_link)
        assert sim.command("link-unplug", {"seconds": 0.2})[0] == 409
        wait_until(lambda: os.path.islink(sim.pty_link), 3, "the pty to come back")
        assert sim.status()["pty"] == os.readlink(sim.pty_link)

        host = open_host(sim.pty_link)
        sim.command("plug-connector", {})
        host.signals(1)
        status, answer = sim.command("link-reboot", {"keep_ring": True})
        assert status == 200 and answer["previous_boot_id"] == sim.boot_id and answer["kept"] == 1
        got = [decode(host.next_frame(lambda f: f.type in (FrameType.HELLO, FrameType.SIGNAL))) for _ in range(3)]
        assert [(r.boot_id, r.oldest_seq, r.next_seq) for r in (got[0], got[2])] == \
            [(sim.boot_id, 1, 2), (answer["boot_id"], 1, 13)]  # the new boot's 12 level reports
        assert got[1].evse_id == 1 and got[1].state is True  # the plug, replayed under the old boot
        levels = [r for r in answer["records"] if r["type"] == "LEVEL"]
        assert len(levels) == 12 and [r["seq"] for r in levels] == list(range(1, 13))
        assert [(r["evse_id"], r["signal"]) for r in levels if r["state"]] == [(1, "EV_CONNECTED")]
        assert sim.status()["boot_id"] == answer["boot_id"]
        assert "MCU rebooted" in sim.log_text()


# -- errors of the newer commands ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SPECS))
def test_404_for_another_charger(shared_sim, name):
    status, answer = shared_sim.command(name, SPECS[name].example, charger_id="not-me")
    assert status == 404 and "not-me" in answer["error"]


ADDRESSED = sorted(name for name, spec in SPECS.items() if spec.addressed)
CHARGER_WIDE = sorted(name for name, spec in SPECS.items() if not spec.addressed)


@pytest.mark.parametrize("name", ADDRESSED)
def test_evse_range_is_the_sims_evse_count(shared_sim, name):
    event = {**SPECS[name].example, "evse_id": 3}  # shared_sim has 2 EVSEs
    status, answer = shared_sim.command(name, event)
    assert status == 422 and answer["detail"][0]["loc"] == ["body", "event", "evse_id"]
    assert answer["detail"][0]["type"] == "less_than_equal"


@pytest.mark.parametrize("name", CHARGER_WIDE)
def test_charger_wide_commands_take_no_address(shared_sim, name):
    status, answer = shared_sim.command(name, {**SPECS[name].example, "evse_id": 1})
    assert status == 422 and answer["detail"] == [
        {"loc": ["body", "event", "evse_id"], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"}]


@pytest.mark.parametrize(("name", "event", "loc", "kind"), [
    ("power-update", {}, "power_w", "missing"),
    ("power-update", {"power_w": -0.5}, "power_w", "greater_than_equal"),
    ("power-update", {"power_w": "7"}, "power_w", "float_type"),
    ("inject-fault", {"error_code": "NoError"}, "error_code", "enum"),
    ("inject-fault", {"error_code": "OtherError", "info": "x" * 501}, "info", "string_too_long"),
    ("clear-fault", {"error_code": 3}, "error_code", "enum"),
    ("send-local-authorization-list", {"id_tags": ["ok", ""]}, "id_tags", "string_too_short"),
    ("send-local-authorization-list", {"id_tags": "A"}, "id_tags", "list_type"),
    ("clock-set", {"drift_ppm": 1e6}, "drift_ppm", "less_than_equal"),
    ("link-noise", {"bytes": 0}, "bytes", "greater_than_equal"),
    ("link-silence", {"seconds": 0}, "seconds", "greater_than"),
    ("link-unplug", {}, "seconds", "missing"),
    ("link-reboot", {"keep_ring": "yes"}, "keep_ring", "bool_type"),
])
def test_422_on_bad_new_fields(shared_sim, name, event, loc, kind):
    status, answer = shared_sim.command(name, event)
    assert status == 422, answer
    detail = answer["detail"][0]
    assert detail["loc"][:3] == ["body", "event", loc] and detail["type"] == kind and detail["msg"]


def test_nan_is_refused(shared_sim):
    body = b'{"target": {"charger_id": "josev-sim"}, "event": {"power_w": NaN}}'
    status, answer = shared_sim.request("POST", "/ocpp/commands/power-update", body)
    assert status == 422 and answer["detail"][0]["type"] == "finite_number"
    assert json.dumps(answer)
