"""The link side in-process (a real pty, no subprocess): CLOCK_PROBE/CLOCK_REPLY and its priority
lane, and every link-* fault as the host sees it on the line."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import serial

from josev_bridge.core.conditions import LevelRecord, Signal
from josev_bridge.harness.waiting import wait_until
from josev_bridge.protocol.framing import PROTOCOL_VERSION
from josev_bridge.protocol.records import Ack, ClockProbe, ClockReply, FrameType, HostHello, KeepAlive, decode
from josev_bridge.sim.control_api import HttpError, SimController
from josev_bridge.sim.mcu import SimulatedMcu
from josev_bridge.sim.pty_link import PtyLink

CHARGER = "josev-sim"


@dataclass
class Rig:
    mcu: SimulatedMcu
    link: PtyLink
    controller: SimController

    def run(self, name: str, event: dict | None = None) -> dict:
        return self.controller.command(name, {"target": {"charger_id": CHARGER}, "event": event or {}})


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    made: list[PtyLink] = []

    def make(keepalive_interval_s: float = 1.0, write_timeout_s: float = 0.5, **mcu_options) -> Rig:
        mcu = SimulatedMcu(**{"boot_id": 1001, **mcu_options})
        lock = threading.RLock()
        link = PtyLink(mcu, lock, tmp_path / f"mcu{len(made)}.pty", write_timeout_s=write_timeout_s,
                       keepalive_interval_s=keepalive_interval_s)
        made.append(link)
        link.start()
        return Rig(mcu, link, SimController(mcu, lock, link, CHARGER, "token"))

    yield make
    for link in made:
        link.close()
        assert not link.link_path.is_symlink()


@pytest.fixture
def rig(make_rig) -> Rig:
    return make_rig()


def wait_for(predicate: Callable[[], object], timeout: float = 3.0) -> None:
    wait_until(predicate, timeout, "the condition", interval=0.005)


def now_us() -> int:
    return time.time_ns() // 1000


def hello_of(frame_record) -> tuple[int, int | None, int | None]:
    frame, record = frame_record
    assert frame.type == FrameType.HELLO, record
    return record.boot_id, record.oldest_seq, record.next_seq


def seq_of(frame_record) -> int:
    frame, _ = frame_record
    assert frame.type == FrameType.SIGNAL
    return frame.seq


# -- CLOCK_PROBE -> CLOCK_REPLY ------------------------------------------------------------------------
def test_clock_reply_carries_the_probe_id_and_the_mcu_clock_at_receipt(make_rig, open_host):
    rig = make_rig(clock_offset_s=-7.25, clock_drift_ppm=0)
    host = open_host(rig.link.link_path)
    for probe_id in (1, 0xFFFFFFFF, 77):
        before = now_us()
        host.send(ClockProbe(probe_id), seq=probe_id)
        frame = host.next_frame(lambda f: f.type == FrameType.CLOCK_REPLY)
        after = now_us()
        reply = decode(frame)
        assert isinstance(reply, ClockReply)
        assert frame.seq == 0 and reply.probe_id == probe_id
        assert before - 7_250_000 <= reply.mcu_time_us <= after - 7_250_000
    counters = rig.link.status()["counters"]
    assert counters["clock_probes"] == 3 and counters["clock_replies"] == 3


def test_clock_reply_follows_clock_set(rig, open_host):
    host = open_host(rig.link.link_path)
    rig.run("clock-set", {"offset_s": 3600})
    before = now_us()
    host.send(ClockProbe(5))
    reply = decode(host.next_frame(lambda f: f.type == FrameType.CLOCK_REPLY))
    assert before + 3_600_000_000 <= reply.mcu_time_us <= now_us() + 3_600_000_000


def test_clock_reply_overtakes_queued_records(make_rig, open_host):
    """With thousands of SIGNAL frames queued behind a full pty, the reply comes before most of them."""
    rig = make_rig(write_timeout_s=10.0)
    host = open_host(rig.link.link_path)
    total = 3000  # ~70 KB of frames: more than a pty buffers, so most wait in the outbox
    with rig.link.lock:
        for i in range(total):
            result = rig.mcu.parking_bay_occupied() if i % 2 == 0 else rig.mcu.parking_bay_vacated()
            rig.link.send_records(result.sent())
    wait_for(lambda: rig.link.status()["queued_frames"] > 0)
    host.send(ClockProbe(99))
    wait_for(lambda: rig.link.counters.clock_replies == 1)
    signals_before = 0
    while True:
        frame = host.next_frame(lambda f: f.type in (FrameType.SIGNAL, FrameType.CLOCK_REPLY), timeout=5)
        if frame.type == FrameType.CLOCK_REPLY:
            break
        signals_before += 1
    assert decode(frame).probe_id == 99
    assert signals_before < total - 500, signals_before
    rest = host.signals(total - signals_before, timeout=5)
    assert rest[-1][0] == total  # nothing lost, order kept


# -- link-noise ---------------------------------------------------------------------------------------------
def test_noise_arrives_between_frames_and_the_frames_survive(rig, open_host):
    host = open_host(rig.link.link_path)
    host.hello()
    answer = rig.run("link-noise", {"bytes": 300, "seed": 5})
    assert answer["noise_bytes"] == 300 and answer["seed"] == 5 and answer["records"] == []
    noise = random.Random(5).randbytes(300)
    assert 0 in noise  # the noise is not 0x00-free
    host.raw_until(noise + b"\x00")
    assert host.decoder.counters.errors() >= 1
    rig.run("plug-connector")
    (seq, record), = host.signals(1)
    assert seq == 1 and record.state is True
    assert rig.link.status()["counters"]["noise_bytes"] == 300


def test_noise_seed_is_random_by_default(rig):
    seeds = {rig.run("link-noise", {"bytes": 1})["seed"] for _ in range(3)}
    assert len(seeds) > 1


# -- link-silence ------------------------------------------------------------------------------------------------
def test_silence_sends_nothing_then_the_held_records_in_order(make_rig, open_host):
    rig = make_rig(keepalive_interval_s=0.02)
    host = open_host(rig.link.link_path)
    host.next_frame(lambda f: f.type == FrameType.KEEPALIVE)  # keepalives flow
    silence = 0.4
    started = time.monotonic()
    rig.run("link-silence", {"seconds": silence})
    assert rig.link.status()["state"] == "silent"
    created = rig.run("start-session")["records"]  # made during the silence: queued and in the ring
    host.send(ClockProbe(8))  # not answered while silent
    arrivals: list[tuple[float, int]] = []
    while len([t for t, kind in arrivals if kind == FrameType.SIGNAL]) < 4:
        frame = host.next_frame(timeout=2.0)
        arrivals.append((time.monotonic() - started, frame.type))
    # Bytes written before the command may still be read at its start; then nothing until it ends.
    quiet = [(t, kind) for t, kind in arrivals if 0.05 < t < silence - 0.02]
    assert quiet == [], arrivals
    first_signal = next(t for t, kind in arrivals if kind == FrameType.SIGNAL)
    assert first_signal >= silence - 0.02
    assert FrameType.CLOCK_REPLY not in [kind for _, kind in arrivals]
    host.next_frame(lambda f: f.type == FrameType.KEEPALIVE)  # keepalives resume
    status = rig.link.status()
    assert status["state"] == "up" and status["counters"]["clock_replies_suppressed"] == 1
    assert [r["seq"] for r in created] == [1, 2, 3, 4] and rig.mcu.status()["unacked"] == 4


def test_silence_holds_hello_answers_and_still_hears_acks(make_rig, open_host):
    rig = make_rig()
    host = open_host(rig.link.link_path)
    rig.run("plug-connector")
    host.signals(1)
    rig.run("link-silence", {"seconds": 0.2})
    host.send(Ack(1001, 1))
    host.send(HostHello(PROTOCOL_VERSION))
    wait_for(lambda: rig.link.counters.host_hellos == 1)
    assert rig.mcu.status()["unacked"] == 0  # received while silent
    assert hello_of(host.frames(1)[0]) == (1001, 2, 2)  # answered once the silence is over


# -- link-reboot ------------------------------------------------------------------------------------------------
def levels_of(frames) -> list[tuple[int, LevelRecord]]:
    assert all(frame.type == FrameType.LEVEL for frame, _ in frames), frames
    return [(frame.seq, record) for frame, record in frames]


def test_reboot_without_keep_ring_loses_unacked_records(rig, open_host):
    host = open_host(rig.link.link_path)
    host.hello()
    rig.run("start-session")
    host.signals(4)
    answer = rig.run("link-reboot", {"keep_ring": False})
    new_boot = answer["boot_id"]
    assert answer["previous_boot_id"] == 1001 and new_boot != 1001 and answer["lost"] == 4
    assert hello_of(host.frames(1)[0]) == (new_boot, 1, 13)
    levels = levels_of(host.frames(12))  # every level of both EVSEs, from seq 1: the cable is still in
    assert [seq for seq, _ in levels] == list(range(1, 13))
    assert [(r.evse_id, r.signal) for _, r in levels if r.state] == [(1, Signal.EV_CONNECTED)]
    assert rig.run("parking-bay-occupied")["records"][0]["seq"] == 13
    assert host.signals(1)[0][0] == 13
    host.send(HostHello(PROTOCOL_VERSION))
    assert hello_of(host.frames(1)[0]) == (new_boot, 1, 14)
    assert [seq for seq, _ in levels_of(host.frames(12))] == list(range(1, 13)) and seq_of(host.frames(1)[0]) == 13
    assert host.no_signal_within(0.1)


def test_reboot_with_keep_ring_announces_the_old_boot_first(rig, open_host):
    host = open_host(rig.link.link_path)
    host.hello()
    rig.run("start-session")  # boot 1001, seqs 1..4
    host.signals(4)
    host.send(Ack(1001, 1))
    wait_for(lambda: rig.mcu.status()["unacked"] == 3)
    answer = rig.run("link-reboot", {"keep_ring": True, "warm": True})
    new_boot = answer["boot_id"]
    assert answer["kept"] == 3 and answer["lost"] == 0 and answer["edges"] == []  # warm: nothing dropped
    got = host.frames(5)
    assert hello_of(got[0]) == (1001, 2, 5)
    assert [seq_of(f) for f in got[1:4]] == [2, 3, 4]
    assert [r.time_us for _, r in got[1:4]] == [s.record.time_us for s in rig.mcu.previous_boots()[0].records]
    assert hello_of(got[4]) == (new_boot, 1, 13)
    levels = levels_of(host.frames(12))
    assert all(r.age_us for _, r in levels if r.state)  # a warm boot kept the edges' times
    assert all(e["connected"] and e["authorized"] for e in rig.controller.status()["evses"][:1])

    rig.run("parking-bay-occupied")  # the new boot's seq 13
    host.signals(1)
    host.send(HostHello(PROTOCOL_VERSION))  # a reopening host gets the same story, then the new boot's records
    got = host.frames(5)
    assert hello_of(got[0]) == (1001, 2, 5) and [seq_of(f) for f in got[1:4]] == [2, 3, 4]
    assert hello_of(got[4]) == (new_boot, 1, 14)
    assert len(levels_of(host.frames(12))) == 12 and seq_of(host.frames(1)[0]) == 13

    host.send(Ack(1001, 4))  # the old boot is stored: no longer announced
    host.send(Ack(new_boot, 13))
    wait_for(lambda: rig.controller.status()["previous_boots"] == [])
    host.send(HostHello(PROTOCOL_VERSION))
    assert hello_of(host.frames(1)[0]) == (new_boot, 14, 14)
    assert host.no_signal_within(0.1)


# -- link-unplug --------------------------------------------------------------------------------------------------
def test_unplug_removes_the_device_and_replug_replays_what_happened_meanwhile(rig, open_host):
    link_path = rig.link.link_path
    old_pty = os.readlink(link_path)
    host = open_host(link_path)
    host.hello()
    rig.run("plug-connector")
    host.signals(1)  # seq 1, not acked

    assert rig.run("link-unplug", {"seconds": 0.3})["unplugged_for_s"] == 0.3
    assert not os.path.lexists(link_path)  # gone at once
    assert rig.controller.status()["pty"] is None and rig.link.status()["state"] == "unplugged"
    with pytest.raises(serial.SerialException):  # the open port fails, as with a pulled USB adapter
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            host.port.read(1)
    with pytest.raises(HttpError) as conflict:
        rig.run("link-unplug", {"seconds": 1})
    assert conflict.value.status == 409
    meanwhile = rig.run("parking-bay-occupied")["records"]  # made while unplugged: ring only
    assert [r["seq"] for r in meanwhile] == [2]

    wait_for(lambda: os.path.islink(link_path), timeout=3)
    new_pty = os.readlink(link_path)
    assert new_pty != old_pty and os.path.exists(new_pty)  # the old pty is still held open by `host`
    assert rig.controller.status()["pty"] == new_pty
    reopened = open_host(link_path)
    assert reopened.hello().boot_id == 1001  # not a reboot
    assert [seq for seq, _ in reopened.signals(2)] == [1, 2]
    counters = rig.link.status()["counters"]
    assert counters["unplugs"] == 1 and counters["replugs"] == 1 and rig.link.status()["state"] == "up"


def test_link_faults_other_than_reboot_are_409_while_unplugged(rig):
    rig.run("link-unplug", {"seconds": 5})
    for name, event in (("link-noise", {"bytes": 1}), ("link-silence", {"seconds": 1})):
        with pytest.raises(HttpError) as conflict:
            rig.run(name, event)
        assert conflict.value.status == 409
    assert rig.run("link-reboot", {"keep_ring": True})["kept"] == 0  # the MCU can reboot unplugged
    assert rig.run("link-corrupt-frames", {"count": 1})["corrupting"] == 1


def test_close_while_unplugged_is_clean(rig):
    rig.run("link-unplug", {"seconds": 60})
    started = time.monotonic()
    rig.link.close()
    assert time.monotonic() - started < 2 and not rig.link.link_path.exists()


def test_keepalive_uses_the_mcu_clock(make_rig, open_host):
    rig = make_rig(keepalive_interval_s=0.02, clock_offset_s=100)
    host = open_host(rig.link.link_path)
    before = now_us()
    record = decode(host.next_frame(lambda f: f.type == FrameType.KEEPALIVE))
    assert isinstance(record, KeepAlive)
    assert before + 100_000_000 - 100_000 <= record.time_us <= now_us() + 100_000_000


def test_keepalive_says_how_far_the_mcu_has_sent(make_rig, open_host):
    """docs/serial-protocol.md §4.6: behind the records on the line, the boot and one past the last
    record sent, so a host that lost the last one sees it (and a version-1 MCU says nothing of it)."""
    rig = make_rig(keepalive_interval_s=0.02)
    host = open_host(rig.link.link_path)
    rig.run("link-corrupt-frames", {"count": 1})
    rig.run("plug-connector")  # seq 1, damaged on the line: the host never sees it...
    frame = host.next_frame(lambda f: f.type in (FrameType.KEEPALIVE, FrameType.SIGNAL))
    while (keepalive := decode(frame)).next_seq != 2:  # (keepalives sent before it say 1)
        assert keepalive == KeepAlive(keepalive.time_us, 1001, 1)
        frame = host.next_frame(lambda f: f.type in (FrameType.KEEPALIVE, FrameType.SIGNAL))
    assert keepalive.boot_id == 1001  # ...but the next KEEPALIVE says it was sent
    old = make_rig(keepalive_interval_s=0.02, protocol_version=1)
    assert decode(open_host(old.link.link_path).next_frame(lambda f: f.type == FrameType.KEEPALIVE)).boot_id is None
