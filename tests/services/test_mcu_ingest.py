"""Persist before acknowledging: a failing disk means no ack, so the MCU keeps the records."""

import errno
import json

from josev_bridge.adapters.state_file import AtomicJsonFile
from josev_bridge.core.clock_map import ClockSample
from josev_bridge.core.clock_wait import FRESH_SAMPLE_TRIES
from josev_bridge.core.conditions import Condition, EventType, Signal, SignalRecord
from josev_bridge.core.host_time import Basis
from josev_bridge.protocol.records import Ack, Hello
from josev_bridge.services.mcu_ingest import McuIngest


class FullDisk(AtomicJsonFile):
    full = True

    def save(self, data):
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        super().save(data)


def test_no_ack_while_the_disk_is_full_then_ack_everything(tmp_path, caplog):
    f = FullDisk(tmp_path / "edges.json")
    ingest = McuIngest(f, realtime_offset_us=lambda: 0)
    ingest.on_record(0, Hello(1, 0xABC, "fw"))
    ingest.on_clock_sample(ClockSample(1_000_000, 1_000_000, 100))  # an MCU clock on the host's time line
    ingest.on_record(1, SignalRecord(1, 1, Signal.EV_CONNECTED, True, 1_000_000))
    assert ingest.flush() is None
    assert ingest.counters.persist_failures == 1
    assert "not acknowledging" in caplog.text
    f.full = False
    assert ingest.flush() == Ack(0xABC, 1)
    assert McuIngest(AtomicJsonFile(tmp_path / "edges.json")).tracker.last_seq == 1


def test_records_wait_for_their_boots_clock_and_are_mapped_to_utc(tmp_path):
    ingest = McuIngest(AtomicJsonFile(tmp_path / "edges.json"), realtime_offset_us=lambda: 1_000_000_000)
    ingest.on_record(0, Hello(1, 9, "fw"))
    ingest.on_record(1, SignalRecord(1, 1, Signal.EV_CONNECTED, True, 7_000_000))  # MCU clock, not UTC
    assert ingest.counters.records == 0 and ingest.flush() == Ack(9, 0)  # nothing applied, nothing acked
    # the MCU clock reads 5 s where the host monotonic clock reads 2 s
    ingest.on_clock_sample(ClockSample(mcu_us=5_000_000, host_us=2_000_000, rtt_us=200))
    assert ingest.counters.records == 1
    found = ingest.store.state(1, Condition.EV_CONNECTED)
    assert found.rise_us == 4_000_000  # 7 s MCU -> 4 s host monotonic (UTC is derived when answering)
    assert found.rise_utc_us(1_000_000_000) == 1_000_000_000 + 4_000_000  # + the realtime offset then
    assert ingest.flush() == Ack(9, 1)


def test_duplicates_gaps_and_untimed_records_are_counted(tmp_path):
    ingest = McuIngest(AtomicJsonFile(tmp_path / "edges.json"), realtime_offset_us=lambda: 0)
    ingest.on_record(0, Hello(1, 7, "fw"))
    ingest.on_clock_sample(ClockSample(5, 5, 100))
    ingest.on_record(1, SignalRecord(1, 1, Signal.AUTHORIZED, True, 5))
    ingest.on_record(1, SignalRecord(1, 1, Signal.AUTHORIZED, True, 5))
    ingest.on_record(3, SignalRecord(1, 1, Signal.BAY_OCCUPIED, True, 0))
    assert ingest.replay_wanted() and ingest.flush() == Ack(7, 1)  # only the contiguous prefix is acked
    ingest.on_record(2, SignalRecord(1, 1, Signal.EV_CONNECTED, True, 9))  # the replay fills the gap
    c = ingest.counters
    assert (c.records, c.duplicates, c.held, c.lost_records, c.untimed_records) == (3, 1, 1, 0, 1)
    assert not ingest.replay_wanted() and ingest.flush() == Ack(7, 3)


def test_an_unusable_numbered_record_keeps_its_place_and_is_counted(tmp_path):
    from josev_bridge.protocol.records import Skipped

    ingest = McuIngest(AtomicJsonFile(tmp_path / "edges.json"), realtime_offset_us=lambda: 0)
    ingest.on_record(0, Hello(1, 7, "fw"))
    ingest.on_clock_sample(ClockSample(5, 5, 100))
    ingest.on_record(1, SignalRecord(1, 1, Signal.AUTHORIZED, True, 5))
    ingest.on_record(2, Skipped(0x42, "unknown record type"))  # newer firmware, or a bad body
    ingest.on_record(3, SignalRecord(1, 1, Signal.EV_CONNECTED, True, 9))
    assert not ingest.replay_wanted() and ingest.flush() == Ack(7, 3)  # nothing held behind it
    assert ingest.counters.skipped_records == 1 and ingest.counters.held == 0
    assert ingest.store.state(1, Condition.EV_CONNECTED).rise_us == 9


def test_a_record_stamped_during_an_outage_waits_for_a_sample_after_it(tmp_path):
    """Mapped at once it would be extrapolated across the outage; one low-latency sample after it
    makes it an interpolation. The link probes every 0.1 s while `clock_sample_wanted`."""
    ingest = McuIngest(AtomicJsonFile(tmp_path / "edges.json"), realtime_offset_us=lambda: 0)
    ingest.on_record(0, Hello(1, 7, "fw"))
    for i in range(3):
        ingest.on_clock_sample(ClockSample(i * 1_000_000, i * 1_000_000, 300))
    assert not ingest.clock_sample_wanted()
    ingest.on_record(1, SignalRecord(1, 1, Signal.AUTHORIZED, True, 2_500_000))  # live: applied at once
    ingest.on_record(2, SignalRecord(1, 1, Signal.EV_CONNECTED, True, 300_000_000))  # 5 minutes later
    assert ingest.applied_seq == 1 and ingest.clock_sample_wanted()
    ingest.on_clock_sample(ClockSample(601_000_000, 601_000_000, 20_000))  # slow: not fitted, still waiting
    assert ingest.applied_seq == 1
    ingest.on_clock_sample(ClockSample(602_000_000, 602_000_000, 300))
    assert ingest.applied_seq == 2 and not ingest.clock_sample_wanted()
    state = ingest.store.state(1, Condition.EV_CONNECTED)
    assert state.rise_us == 300_000_000 and state.rise_error_us < 1000  # interpolated


def test_a_record_no_sample_reaches_is_mapped_after_a_bounded_wait(tmp_path):
    ingest = McuIngest(AtomicJsonFile(tmp_path / "edges.json"), realtime_offset_us=lambda: 0)
    ingest.on_record(0, Hello(1, 7, "fw"))
    ingest.on_clock_sample(ClockSample(0, 0, 300))
    ingest.on_record(1, SignalRecord(1, 1, Signal.EV_CONNECTED, True, 3_600_000_000))  # an hour ahead
    for i in range(FRESH_SAMPLE_TRIES):
        assert ingest.applied_seq == 0 and ingest.clock_sample_wanted()
        ingest.on_clock_sample(ClockSample((i + 1) * 100_000, (i + 1) * 100_000, 300))
    assert ingest.applied_seq == 1 and not ingest.clock_sample_wanted()
    assert ingest.store.state(1, Condition.EV_CONNECTED).rise_error_us > 300_000  # extrapolated: and says so


def test_edges_of_an_earlier_host_boot_are_fixed_to_the_utc_they_had(tmp_path):
    f = AtomicJsonFile(tmp_path / "edges.json")
    ingest = McuIngest(f, realtime_offset_us=lambda: (1_000_000_000, 3))
    ingest.on_record(0, Hello(1, 7, "fw"))
    ingest.on_clock_sample(ClockSample(5_000_000, 5_000_000, 300))
    ingest.on_record(1, SignalRecord(1, 1, Signal.EV_CONNECTED, True, 5_000_000))
    assert ingest.flush() == Ack(7, 1)
    same_boot = McuIngest(f, realtime_offset_us=lambda: (2_000_000_000, 3))  # the clock stepped since
    assert same_boot.store.lookup(EventType.START, Condition.EV_CONNECTED, offset_us=2_000_000_000).time_us == \
        2_005_000_000
    doc = json.loads((tmp_path / "edges.json").read_text())
    doc["host"]["boot_id"] = "an-earlier-boot"
    (tmp_path / "edges.json").write_text(json.dumps(doc))
    rebooted = McuIngest(f, realtime_offset_us=lambda: (7, 0))
    found = rebooted.store.lookup(EventType.START, Condition.EV_CONNECTED, offset_us=7)
    assert found.time_us == 1_005_000_000 and found.basis is Basis.fixed(doc["host"]["synchronised"])
    assert not rebooted.clocks  # its MCU clock fits were on the other boot's monotonic clock
