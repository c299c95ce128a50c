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


def service(tmp_path, clocks: Clocks) -> tuple[AlertService, list[bytes]]:
    sent: list[bytes] = []
    config = from_dict({"serial": {"url": "/dev/null"}, "charger": {"identity": "CP-1"},
                        "paths": {"state_dir": str(tmp_path / "state"), "runtime_dir": str(tmp_path / "run")}})
    (tmp_path / "state").mkdir()

    def publish(_topic: str, payload: bytes) -> None:
        sent.append(payload)

    return AlertService(config, publish, monotonic_us=lambda: clocks.monotonic_us,
                        offset_us=lambda: clocks.offset_us), sent


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
