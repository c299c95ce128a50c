"""What the MCU reports besides condition signals: faults and the EV's battery state (alert inputs).

These are the alert engine's inputs, decoded from FAULT and EV_STATUS frames
(docs/serial-protocol.md). Times are microseconds since the Unix epoch: the MCU's clock on the
wire, UTC once the ingest has mapped them (as for `SignalRecord`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class DepartureSource(IntEnum):
    """Who set the departure time an EV_STATUS carries."""

    NONE = 0  # no departure time known
    EV = 1  # the EV sent it (ISO 15118 DepartureTime, CHAdeMO charging time)
    OPERATOR = 2  # set at the charger (HMI, local app) and passed on by the MCU


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """A charge-controller fault was raised (`active`) or cleared, with OCPP's error vocabulary."""

    evse_id: int
    connector_id: int
    active: bool
    error_code: str  # OCPP ChargePointErrorCode, e.g. "GroundFailure", "OverCurrentFailure"
    vendor_error_code: str | None  # the MCU's own code, e.g. "E042"
    info: str | None  # free text, at most 500 characters
    time_us: int


@dataclass(frozen=True, slots=True)
class EvStatusRecord:
    """The EV's battery and charging state on one EVSE; None where the MCU does not know."""

    evse_id: int
    connector_id: int
    time_us: int
    soc_percent: float | None  # state of charge, 0..100
    power_w: int | None  # power into the EV now
    battery_capacity_wh: int | None  # usable capacity
    departure_time_us: int | None  # when the vehicle leaves, UTC us
    departure_source: DepartureSource = DepartureSource.NONE
