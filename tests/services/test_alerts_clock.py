"""The alert service against steps of the board's clock: silence and holds are measured on the
monotonic clock, whatever the realtime clock does between two readings (issue 14)."""

from __future__ import annotations

from josev_bridge.config import from_dict
from josev_bridge.core.alert_inputs import FaultRecord
from josev_bridge.services.alerts import AlertService

S = 1_000_000
YEARS_3 = 3 * 365 * 86_400 * S
OFFSET = 1_772_000_000 * S  # realtime minus monotonic of a board whose clock is right


class Clocks:
    def __init__(self) -> None:
        self.monotonic_us, self.offset_us = 1_000 * S, OFFSET - YEARS_3  # booted 3 years behind

    def utc(self) -> int:
        return self.monotonic_us + self.offset_us


def service(tmp_path, clocks: Clocks, host_boot: str = "first-boot") -> tuple[AlertService, list[bytes]]:
    sent: list[bytes] = []
    config = from_dict({"serial": {"url": "/dev/null"}, "charger": {"identity": "CP-1"},
                        "paths": {"state_dir": str(tmp_path / "state"), "runtime_dir": str(tmp_path / "run")}})
    (tmp_path / "state").mkdir(exist_ok=True)

    def publish(_topic: str, payload: bytes) -> None:
        sent.append(payload)

    return AlertService(config, publish, monotonic_us=lambda: clocks.monotonic_us,
                        offset_us=lambda: clocks.offset_us, host_boot=host_boot), sent


def test_a_step_between_the_last_frame_and_now_is_not_silence(tmp_path):
    clocks = Clocks()
    alerts, _ = service(tmp_path, clocks)
    try:
        heard = clocks.monotonic_us
        clocks.offset_us = OFFSET  # NTP steps the clock: +3 years
        for _ in range(10):
            clocks.monotonic_us += S // 2
            alerts.tick(heard)
        assert alerts.open_keys() == []
        clocks.monotonic_us = heard + 6 * 60 * S  # six minutes without a frame: that is an outage
        alerts.tick(heard)
        assert alerts.open_keys() == ["offlineCharger"]
    finally:
        alerts.close()


def test_a_hold_started_before_a_step_lasts_its_time_after_it(tmp_path):
    clocks = Clocks()
    alerts, _ = service(tmp_path, clocks)
    try:
        alerts.on_record(FaultRecord(1, 1, True, "GroundFailure", None, None, clocks.utc()))
        clocks.monotonic_us += S
        alerts.on_record(FaultRecord(1, 1, False, "GroundFailure", None, None, clocks.utc()))
        clocks.offset_us = OFFSET  # NTP steps the clock: +3 years, 1 s into the 60 s hold
        clocks.monotonic_us += S
        alerts.tick(clocks.monotonic_us)
        assert alerts.open_keys() == ["chargingSessionError/evse1/GroundFailure"]  # still clearing
        cleared = clocks.utc() - S - YEARS_3  # the clear, as the clock said then
        clocks.monotonic_us += 60 * S
        alerts.tick(clocks.monotonic_us)
        assert alerts.open_keys() == []
        [stored] = alerts.store.after_id(0)
        assert stored.alert.end_us == cleared  # the time shown is the one the clock gave
    finally:
        alerts.close()


def clearing(alerts: AlertService, clocks: Clocks) -> None:
    """A fault raised and cleared: its 60 s hold starts."""
    alerts.on_record(FaultRecord(1, 1, True, "GroundFailure", None, None, clocks.utc()))
    clocks.monotonic_us += S
    alerts.on_record(FaultRecord(1, 1, False, "GroundFailure", None, None, clocks.utc()))


FAULT = "chargingSessionError/evse1/GroundFailure"


def test_a_step_while_the_bridge_is_stopped_moves_the_restored_hold(tmp_path):
    clocks = Clocks()
    alerts, _ = service(tmp_path, clocks)
    clearing(alerts, clocks)
    alerts.close()
    clocks.offset_us = OFFSET  # NTP steps the clock while the bridge is stopped (same host boot)
    clocks.monotonic_us += S
    alerts, _ = service(tmp_path, clocks)
    try:
        alerts.tick(clocks.monotonic_us)
        assert alerts.open_keys() == [FAULT]  # 2 s into the hold, not 3 years
        clocks.monotonic_us += 60 * S
        alerts.tick(clocks.monotonic_us)
        assert alerts.open_keys() == []
    finally:
        alerts.close()


def test_a_step_seen_during_a_hold_survives_a_restart(tmp_path):
    clocks = Clocks()
    alerts, _ = service(tmp_path, clocks)
    clearing(alerts, clocks)
    clocks.offset_us = OFFSET
    clocks.monotonic_us += S
    alerts.tick(clocks.monotonic_us)  # the step is seen and applied; nothing else changes before the restart
    alerts.close()
    alerts, _ = service(tmp_path, clocks)
    try:
        clocks.monotonic_us += S
        alerts.tick(clocks.monotonic_us)
        assert alerts.open_keys() == [FAULT]
        clocks.monotonic_us += 60 * S
        alerts.tick(clocks.monotonic_us)
        assert alerts.open_keys() == []
    finally:
        alerts.close()


def test_a_hold_restored_after_a_reboot_to_1970_ends_once_ntp_steps_the_clock(tmp_path):
    clocks = Clocks()
    clocks.offset_us = OFFSET  # the clock was right before the reboot
    alerts, _ = service(tmp_path, clocks)
    clearing(alerts, clocks)
    alerts.close()
    clocks.monotonic_us, clocks.offset_us = 20 * S, 0  # the host rebooted without an RTC: 1970
    alerts, _ = service(tmp_path, clocks, host_boot="second-boot")
    try:
        alerts.tick(clocks.monotonic_us)
        assert alerts.open_keys() == [FAULT]
        clocks.offset_us = OFFSET  # NTP: +56 years
        clocks.monotonic_us += 61 * S
        alerts.tick(clocks.monotonic_us)
        assert alerts.open_keys() == []  # the hold counted from the reboot at the latest
    finally:
        alerts.close()


def test_an_unreadable_boot_id_is_no_proof_of_the_same_boot(tmp_path):
    clocks = Clocks()
    clocks.offset_us = OFFSET
    alerts, _ = service(tmp_path, clocks, host_boot="unknown")
    clearing(alerts, clocks)
    alerts.close()
    clocks.monotonic_us, clocks.offset_us = 20 * S, OFFSET + 2_000 * S  # another boot, ~17 minutes later
    alerts, _ = service(tmp_path, clocks, host_boot="unknown")
    try:
        alerts.tick(clocks.monotonic_us)  # the offsets differ by 2000 s: not a step to move the hold by
        assert alerts.open_keys() == []  # the hold started 17 minutes ago: over
    finally:
        alerts.close()
