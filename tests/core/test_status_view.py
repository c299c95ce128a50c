"""The verdict rule and the MCU clock in words (core/status_view): what `status` prints first."""

import pytest

from josev_bridge.core.status_view import (
    ANSWERING,
    DEGRADED,
    NOT_ANSWERING,
    clock_words,
    duration_words,
    verdict,
    written_age_s,
)

NOW = 1_800_000_000.0


def doc(**changes) -> dict:
    """A status document of a healthy bridge, with `changes` merged into its sections."""
    status = {"pid": 42, "written_at": "2027-01-15T08:00:00.000Z", "written_at_epoch": NOW - 1,
              "mqtt": {"connected": True, "broker": "127.0.0.1:1883"},
              "mcu_link": {"state": "open", "port": "/dev/ttyUSB0", "clock": {"samples": 5}},
              "get_event_timestamp": {"enabled": True},
              "device_model": {"recovered_from": None, "lost": []},
              "journal": {"last_error": None}, "export": None}
    for section, value in changes.items():
        status[section] = {**status[section], **value} if isinstance(status.get(section), dict) else value
    return status


def judge(status, alive=True):
    return verdict(status, now_epoch=NOW, pid_alive=alive)


def test_a_healthy_bridge_is_answering():
    v = judge(doc())
    assert v.state == ANSWERING and v.ok and v.line() == "answering"


@pytest.mark.parametrize("state,words", [("silent", "MCU link silent"), ("closed", "MCU link down")])
def test_a_silent_or_down_mcu_link_is_degraded_not_ok(state, words):
    v = judge(doc(mcu_link={"state": state}))
    assert v.state == DEGRADED and not v.ok and v.line().startswith(f"degraded: {words}")


def test_a_disconnected_broker_means_not_answering():
    v = judge(doc(mqtt={"connected": False}))
    assert v.state == NOT_ANSWERING and "not connected to the broker 127.0.0.1:1883" in v.line()


def test_a_flag_that_fell_back_to_its_default_is_not_ok():
    v = judge(doc(device_model={"recovered_from": "/x.corrupt",
                                "lost": ["JOSEV_CTRLR.EnableGetEventTimestampRequest"]}))
    assert v.state == DEGRADED and "JOSEV_CTRLR.EnableGetEventTimestampRequest" in v.line()


def test_the_flag_turned_off_means_not_answering_and_every_reason_is_given():
    v = judge(doc(get_event_timestamp={"enabled": False}, mcu_link={"state": "silent"}))
    assert v.state == NOT_ANSWERING
    assert v.reasons[0].startswith("get_event_timestamp is turned off") and "MCU link silent" in v.reasons[1]


def test_not_running_and_wedged_are_said_plainly():
    assert judge(None).line() == "not answering: the bridge is not running"
    assert judge(doc(), alive=False).line().startswith("not answering: the bridge is not running (pid 42 has ended")
    wedged = judge(doc(written_at_epoch=NOW - 40))
    assert wedged.state == NOT_ANSWERING and "has not updated its status for 40 s" in wedged.line()


def test_an_unmapped_clock_and_a_cut_export_are_degraded():
    assert "MCU clock not mapped yet" in judge(doc(mcu_link={"clock": None})).line()
    v = judge(doc(export={"connected": False, "broker": "fleet:8883", "backlog": 12}))
    assert v.state == DEGRADED and "export to fleet:8883 disconnected (12 rows waiting)" in v.line()


@pytest.mark.parametrize("us,words", [(850_000, "850 ms"), (2_500, "2.5 ms"), (12_340_000, "12.3 s"),
                                      (245_000_000, "4 min 05 s"), (18_119_990_000, "5 h 02 min"),
                                      (3 * 86_400_000_000 + 4 * 3_600_000_000, "3 d 04 h"),
                                      (-18_120_000_000, "5 h 02 min")])
def test_durations_in_words(us, words):
    assert duration_words(us) == words


def test_the_mcu_clock_in_human_terms():
    clock = {"mcu_minus_utc_us": -18_120_400_000, "mcu_fast_ppm": 12.4, "error_bound_us": 230}
    assert clock_words(clock) == ("MCU clock 5 h 02 min behind UTC, drift: MCU fast by 12 ppm, "
                                  "mapping error bound 0.23 ms")
    slow = clock_words({"mcu_minus_utc_us": 90_000_000, "mcu_fast_ppm": -3.25, "error_bound_us": 1_400})
    assert slow == "MCU clock 1 min 30 s ahead of UTC, drift: MCU slow by 3.2 ppm, mapping error bound 1.4 ms"
    assert clock_words({"mcu_minus_utc_us": 300, "mcu_fast_ppm": None, "error_bound_us": 12_000}).startswith(
        "MCU clock agrees with UTC (within 1 ms), drift: not measured yet")
    assert clock_words(None).startswith("not mapped yet")


def test_an_mcu_clock_that_counts_from_boot_says_what_it_reads():
    words = clock_words({"mcu_minus_utc_us": -int(NOW * 1e6) + 3_600_000_000, "mcu_fast_ppm": 0.0,
                         "error_bound_us": 100}, written_at_epoch=NOW)
    assert "57 years behind UTC (it reads 1970-01-01T01:00:00.000Z: not set; the bridge maps it)" in words


def test_the_verdict_takes_the_age_it_is_given_over_the_wall_clocks():
    doc = {"pid": 1, "written_at_epoch": 1_000.0, "written_at_monotonic": 50.0, "host_boot": "b",
           "mqtt": {"connected": True}}
    assert written_age_s(doc, now_epoch=95_000_000.0, now_monotonic=51.5, boot_id="b") == 1.5
    assert written_age_s(doc, now_epoch=1_030.0, now_monotonic=51.5, boot_id="other") == 30.0
    unknown = {**doc, "host_boot": "unknown"}  # boot id unreadable: two boots may both say so
    assert written_age_s(unknown, now_epoch=1_030.0, now_monotonic=51.5, boot_id="unknown") == 30.0
    stale = verdict(doc, now_epoch=1_001.0, pid_alive=True, age_s=60.0)
    fresh = verdict(doc, now_epoch=95_000_000.0, pid_alive=True, age_s=1.5)
    assert "wedged" in stale.line() and "wedged" not in fresh.line()
