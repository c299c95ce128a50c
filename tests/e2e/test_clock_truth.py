"""Time truth end to end (issue 14 items 3 and 4): the real daemon, mosquitto, the simulator on a pty.

Item 3: a HELLO costs a short, bounded burst of clock probes, not a storm, and a 10-minute outage
at +-100 ppm is answered within the bound the journal row states. Ten minutes are not waited for:
the simulator (--clock-shift-file) and the daemon (JOSEV_BRIDGE_TEST_CLOCK_SHIFT_FILE, read by
adapters/host_clock) add the seconds in one file to their clocks, so while the link is silent the
test makes ten minutes pass for both at once: the MCU clock advances 600 s x (1 + drift), the host
monotonic and realtime clocks 600 s, exactly as over a real outage (no probe is answered meanwhile).

Item 4: the board's clock is wrong until NTP syncs. The daemon runs under libfaketime (Debian's
`faketime`) with a timestamp file the test rewrites: realtime 3 years behind, then stepped to the
true time; CLOCK_MONOTONIC is not faked (FAKETIME_DONT_FAKE_MONOTONIC=1, checked through the clock
fit), and the simulator is not under libfaketime at all, so its MCU clock and TRUE clock are real
time, the truth the answers are judged by. The machine's clock is never touched.
"""

from __future__ import annotations

import glob
import json
import os
import re
import time
import urllib.request
from pathlib import Path

import pytest

from josev_bridge.adapters.host_clock import SHIFT_ENV, read_sync_state
from josev_bridge.adapters.journal_store import JournalStore
from josev_bridge.adapters.serial_link import HELLO_BURST
from josev_bridge.config import MqttConfig
from josev_bridge.core.timestamps import format_us, parse_us
from josev_bridge.harness.bridge_process import BridgeProcess
from josev_bridge.harness.waiting import wait_until
from josev_bridge.request_client import RequestClient
from josev_bridge.sim.launcher import start_sim

TRUNCATION_US = 1000  # answers and the simulator's edge times are both truncated to the millisecond
# Interpolated, not extrapolated: a tenth of the 60 ms that ten minutes at an unknown +-100 ppm allow
# (what the bridge stated before: its fit forgot the slope at every HELLO). The bound itself follows
# the round trips (0.1-0.4 ms on an idle machine, up to ~3 ms with both cores busy); the 1 ms promise
# at round trips up to 0.5 ms is checked where they are controlled (tests/core/test_clock_map.py).
INTERPOLATED_US = 6000
THREE_YEARS_US = 3 * 365 * 86_400 * 1_000_000  # libfaketime's "y" is 365 days
NOTE_BOUND = re.compile(r"mapping error bound ([\d.]+) ms")


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def link(bridge) -> dict:
    return bridge.status()["mcu_link"]


def ask(broker, event_type: str, reason: str):
    with RequestClient(MqttConfig(host="127.0.0.1", port=broker.port)) as client:
        reply = client.send("get_event_timestamp", {"event_type": event_type, "trigger_reason": reason})
    assert reply.response is not None, (event_type, reason)
    return reply


def journal_row(bridge, request_id: str, window: str = "") -> dict | None:
    """The journal row of a request as GET /api/ocpp-messages returns it (the API's default 24 h up to
    its now, or `window`: `&startTimestamp=...&endTimestamp=...`); None when it returns none."""
    request = urllib.request.Request(bridge.api_url(f"/api/ocpp-messages?chargerId=test-charger&limit=500{window}"),
                                     headers={"Authorization": f"Bearer {bridge.api_token()}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        rows = json.loads(response.read())["data"]
    return next((r for r in rows if r["correlationId"] == request_id), None)


def journal_note(bridge, request_id: str) -> str:
    """The note of the answer's journal row (GET /api/ocpp-messages), once the journal has written it."""
    return wait_until(lambda: journal_row(bridge, request_id), 10, f"the journal row of request {request_id}")["note"]


def stated_bound_us(note: str) -> int:
    match = NOTE_BOUND.search(note)
    assert match, note
    return round(float(match[1]) * 1000)


def wait_applied(bridge, sim) -> None:
    mcu = sim.status()
    boot, target = f"{mcu['boot_id']:08x}", mcu["next_seq"] - 1
    wait_until(lambda: (lk := link(bridge))["boot_id"] == boot and (lk["last_seq"] or 0) >= target, 20,
               f"the bridge to apply MCU record {target}")


def command(sim, name: str, event: dict | None = None) -> list[dict]:
    code, body = sim.command(name, event or {})
    assert code == 200, body
    return body["edges"]


# -- item 3 ------------------------------------------------------------------------------------------

def host_keepalives(counters: dict) -> int:
    """KEEPALIVEs the sim received from the host: its frames less every other kind it counts."""
    return counters["frames_in"] - counters["clock_probes"] - counters["host_hellos"] - counters["acks"] \
        - counters["bad_records"] - counters["unknown_frames"]


def test_a_hello_costs_a_bounded_burst_of_probes_not_a_storm(sim, bridge):
    """Right after a HELLO at most HELLO_BURST probes, then one with each keep-alive, once a second
    (docs/serial-protocol.md §5.1). The code before sent one per loop turn for 2 s after every HELLO,
    each reply triggering the next. Counted over three keep-alives (2 s at least), whatever the load."""
    wait_until(lambda: link(bridge)["clock"], 10, "the MCU clock to be mapped")
    before = sim.status()["link"]["counters"]
    mark = len(bridge.log_text())
    assert sim.command("link-unplug", {"seconds": 0.2})[0] == 200  # the port vanishes; the bridge reopens: a HELLO
    bridge.wait_log(f"MCU boot {sim.boot_id:08x} (firmware", timeout=10, start=mark)  # "... resumed"
    after = wait_until(lambda: (c := sim.status()["link"]["counters"]) and
                       host_keepalives(c) >= host_keepalives(before) + 3 and c, 20, "three keep-alives from the host")
    hellos = after["host_hellos"] - before["host_hellos"]
    probes = after["clock_probes"] - before["clock_probes"]
    keepalives = host_keepalives(after) - host_keepalives(before)
    assert hellos >= 1
    assert probes <= HELLO_BURST * hellos + keepalives + 1, (probes, hellos, keepalives)  # +1: one in flight
    assert "resumed" in bridge.log_text()[mark:]  # the same boot: its clock fit is kept, not restarted
    assert link(bridge)["counters"]["clock_restarts"] == 0


@pytest.mark.parametrize("ppm", [100.0, -100.0])
def test_a_ten_minute_outage_after_a_hello_is_answered_within_the_stated_bound(broker, tmp_path, ppm):
    shift = tmp_path / "clock-shift"
    write_atomically(shift, "0")
    args = ["--clock-offset-s", str(-2 * 3600 if ppm > 0 else 5 * 3600), "--clock-drift-ppm", str(ppm),
            "--clock-shift-file", str(shift)]
    with start_sim(tmp_path / "sim", extra_args=args) as sim:
        bridge = BridgeProcess(tmp_path / "bridge", broker_port=broker.port, serial_url=str(sim.pty_link))
        bridge.start(env={SHIFT_ENV: str(shift)})
        try:
            wait_until(lambda: link(bridge)["clock"], 10, "the MCU clock to be mapped")
            mark = len(bridge.log_text())
            assert sim.command("link-unplug", {"seconds": 0.2})[0] == 200  # a HELLO that only reconnects
            bridge.wait_log("resumed", timeout=10, start=mark)
            # The outage: nothing from the MCU, no probe answered, while ten minutes pass for both clocks.
            assert sim.command("link-silence", {"seconds": 3.0})[0] == 200
            edges = command(sim, "plug-connector", {"evse_id": 1})  # at its start
            write_atomically(shift, "300")
            edges += command(sim, "authorize-id-tag", {"evse_id": 1, "id_tag": "T"})  # in its middle
            write_atomically(shift, "600")
            edges += command(sim, "ev-requests-energy", {"evse_id": 1})  # at its end
            assert sim.status()["link"]["silent_for_s"] > 0, "the silence ended before the ten minutes passed"
            wait_applied(bridge, sim)
            for edge in edges:
                reply = ask(broker, edge["event_type"], edge["trigger_reason"])
                answer, truth = parse_us(reply.response["data"]["timestamp"]), parse_us(edge["timestamp"])
                bound = stated_bound_us(journal_note(bridge, reply.request["id"]))
                assert abs(answer - truth) <= bound + TRUNCATION_US, (edge, answer - truth, bound)
                assert bound <= INTERPOLATED_US, (edge, bound)
            clock = link(bridge)["clock"]
            # the fit spans the outage, and knows the drift (status: + = MCU fast, as the sim counts it)
            assert clock["span_s"] >= 600 and abs(clock["mcu_fast_ppm"] - ppm) <= clock["drift_error_ppm"] + 1, clock
            assert link(bridge)["counters"]["clock_restarts"] == 0
        finally:
            bridge.stop()


# -- item 4 ------------------------------------------------------------------------------------------

def libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        pytest.fail("libfaketime is not installed: `make system-deps` (Debian package faketime)")
    return found[0]


def three_years_behind(faked: Path) -> dict[str, str]:
    """The daemon's environment for a board clock 3 years behind until the test writes "+0" to `faked`
    (NTP arrives). Caveat: libfaketime 0.9.10 with FAKETIME_DONT_FAKE_MONOTONIC breaks Python's
    time.sleep (EINVAL; libfaketime issue 426), which paho calls only between reconnects: the broker
    stays up in these tests. CLOCK_BOOTTIME is not faked either (what journal retention ages rows by)."""
    write_atomically(faked, "-3y")
    return {"LD_PRELOAD": libfaketime(), "FAKETIME_TIMESTAMP_FILE": str(faked), "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def test_an_ev_connected_before_a_three_year_clock_step_is_answered_with_the_true_time(broker, sim, tmp_path):
    """The answer follows the step (the edge is kept on the monotonic clock)."""
    faked = tmp_path / "faketime"
    bridge = BridgeProcess(tmp_path / "bridge", broker_port=broker.port, serial_url=str(sim.pty_link))
    bridge.start(env=three_years_behind(faked))
    try:
        clock = wait_until(lambda: link(bridge)["clock"], 10, "the MCU clock to be mapped")
        real_offset_us = time.time_ns() // 1000 - time.monotonic_ns() // 1000
        # the sim's MCU clock reads true UTC; the fit's offset is MCU minus the daemon's monotonic clock:
        # equal to the real realtime-minus-monotonic offset only if that monotonic clock is not faked
        assert abs(clock["offset_us"] - real_offset_us) < 5_000_000, clock

        truth = parse_us(command(sim, "plug-connector", {"evse_id": 1})[0]["timestamp"])
        bridge.wait_log("EVSE 1 EVConnected TxEventStart")
        first = ask(broker, "TxEventStart", "EVConnected")
        before = parse_us(first.response["data"]["timestamp"])
        note_before = journal_note(bridge, first.request["id"])
        # what the board believed then, within the bound the bridge states for it (a loaded machine widens it)
        assert abs(before - (truth - THREE_YEARS_US)) <= stated_bound_us(note_before) + TRUNCATION_US, \
            (before - (truth - THREE_YEARS_US), note_before)

        write_atomically(faked, "+0")  # NTP arrives: the board's clock steps forward by three years
        reply = ask(broker, "TxEventStart", "EVConnected")  # libfaketime re-reads the file at every call
        answer = parse_us(reply.response["data"]["timestamp"])
        note = journal_note(bridge, reply.request["id"])
        assert abs(answer - truth) <= stated_bound_us(note) + TRUNCATION_US, (answer - truth, note)
        logged = bridge.wait_log("host clock stepped by ", timeout=10)
        step_s = float(re.search(r"host clock stepped by ([-+][\d.]+) s", logged)[1])
        assert abs(step_s * 1e6 - THREE_YEARS_US) < 1e6, step_s
        synced = bridge.status()["host_clock"]["synchronised"]
        assert synced == read_sync_state().synchronised  # the kernel's word (adjtimex is not faked)
        assert ("host clock unsynchronised" in note) == (synced is False), note
        status = wait_until(lambda: (st := bridge.status())["host_clock"]["steps"] and st, 10, "the step in status")
        assert status["host_clock"]["steps"] == 1
        # the daemon's realtime is libfaketime's (now the true time): its offset moved by the step alone
        assert abs(status["host_clock"]["realtime_minus_monotonic_us"] - real_offset_us) < 5_000_000
        assert status["alerts"]["open"] == []  # a clock step is not three years of MCU silence
        shown = bridge.cli("status", "--wide")
        assert "host clock" in shown.stdout and "1 step(s) seen, last +946" in shown.stdout, shown.stdout
    finally:
        bridge.stop()


def test_journal_rows_written_before_a_three_year_step_survive_age_retention(broker, sim, tmp_path):
    """Issue 14, nothing lost: with the default `[journal] max_age_days` (30), the row of an answer
    given while the board's clock was 3 years behind is still in the journal after NTP steps the clock
    forward and retention has run: it is seconds old, however old its UTC time looks. (Ages are taken
    on CLOCK_BOOTTIME within a host boot, core/journal_age.)"""
    faked = tmp_path / "faketime"
    bridge = BridgeProcess(tmp_path / "bridge", broker_port=broker.port, serial_url=str(sim.pty_link))
    bridge.start(env=three_years_behind(faked))
    try:
        command(sim, "plug-connector", {"evse_id": 1})
        bridge.wait_log("EVSE 1 EVConnected TxEventStart")
        request_id = ask(broker, "TxEventStart", "EVConnected").request["id"]
        journal_note(bridge, request_id)  # written, with the board's time then: 3 years ago
        written = parse_us(journal_row(bridge, request_id)["createdAt"])
        assert written < time.time_ns() // 1000 - THREE_YEARS_US + 86_400_000_000, written

        write_atomically(faked, "+0")  # NTP arrives: +3 years
        bridge.wait_log("host clock stepped by ", timeout=10)
        # a pass counted from here may have read its clock before the step; the one after it did not
        passes = bridge.status()["journal"]["retention_passes"]
        status = wait_until(lambda: (st := bridge.status())["journal"]["retention_passes"] >= passes + 2 and st,
                            20, "two age-retention passes after the step")
        hour = 3_600_000_000
        around = f"&startTimestamp={format_us(written - hour)}&endTimestamp={format_us(written + hour)}"
        assert journal_row(bridge, request_id, around) is not None, \
            f"the row written before the step was deleted by age retention (status: {status['journal']})"
        assert status["journal"]["retained_away"] == 0, status["journal"]
    finally:
        bridge.stop()


def journaled_ids(bridge) -> set[str]:
    """The correlation ids of every row in the daemon's journal (read from the file: the API's clock is
    not the shifted one)."""
    store = JournalStore(bridge.workdir / "state" / "journal.sqlite", readonly=True)
    try:
        return {s.entry.correlation_id for s in store.after_id(0, 10_000) if s.entry.correlation_id}
    finally:
        store.close()


def test_journal_rows_a_month_old_by_the_boards_clocks_go(broker, tmp_path):
    """The other half of issue 14: retention still deletes what is truly older than the default 30 days.
    A month passes for the daemon's clocks (boottime, monotonic and realtime alike: the test seam) and for
    the simulated MCU's, without a step: the row written before goes, the one written after stays."""
    shift = tmp_path / "clock-shift"
    write_atomically(shift, "0")
    with start_sim(tmp_path / "sim", extra_args=["--clock-shift-file", str(shift)]) as sim:
        bridge = BridgeProcess(tmp_path / "bridge", broker_port=broker.port, serial_url=str(sim.pty_link))
        bridge.start(env={SHIFT_ENV: str(shift)})
        try:
            command(sim, "plug-connector", {"evse_id": 1})
            bridge.wait_log("EVSE 1 EVConnected TxEventStart")
            month_old = ask(broker, "TxEventStart", "EVConnected").request["id"]
            wait_until(lambda: month_old in journaled_ids(bridge), 10, "the first row")
            write_atomically(shift, str(31 * 86_400))
            wait_until(lambda: month_old not in journaled_ids(bridge), 20, "age retention to delete the month-old row")
            young = ask(broker, "TxEventStart", "EVConnected").request["id"]
            wait_until(lambda: young in journaled_ids(bridge), 10, "the row written after the month")
            passes = bridge.status()["journal"]["retention_passes"]
            wait_until(lambda: bridge.status()["journal"]["retention_passes"] >= passes + 2, 20, "two more passes")
            assert young in journaled_ids(bridge)
            assert bridge.status()["host_clock"]["steps"] == 0  # time passed; the clock did not step
        finally:
            bridge.stop()


def test_edges_carried_over_a_host_reboot_keep_the_utc_they_had(broker, sim, bridge):
    """Host monotonic time restarts with the host, so an edge stored in another host boot (its
    /proc/sys/kernel/random/boot_id) keeps the UTC it had, and its journal rows say how the clock stood."""
    command(sim, "plug-connector", {"evse_id": 1})
    bridge.wait_log("EVSE 1 EVConnected TxEventStart")
    first = ask(broker, "TxEventStart", "EVConnected").response["data"]["timestamp"]
    bridge.stop()
    state = bridge.workdir / "state" / "edges.json"
    doc = json.loads(state.read_text())
    synced = doc["host"]["synchronised"]
    doc["host"]["boot_id"] = "an-earlier-boot"  # what a reboot changes, as far as the files can tell
    for clock in doc["clocks"].values():
        clock["host_boot"] = "an-earlier-boot"
    write_atomically(state, json.dumps(doc))
    bridge.start()
    bridge.wait_log("stored in an earlier host boot keep the UTC they had then")
    reply = ask(broker, "TxEventStart", "EVConnected")
    assert reply.response["data"]["timestamp"] == first
    note = journal_note(bridge, reply.request["id"])
    expected = "whose clock was unsynchronised" if synced is False else "UTC fixed in an earlier host boot"
    assert expected in note and stated_bound_us(note) >= 0, note  # the edge's bound + the saved offset's error
