"""What the MCU reports besides condition signals: faults and the EV's battery state (alert inputs).

These are the alert engine's inputs, decoded from FAULT and EV_STATUS frames
(docs/serial-protocol.md). Times are microseconds since the Unix epoch: the MCU's clock on the
wire, UTC once the ingest has mapped them (as for `SignalRecord`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from .timestamps import format_us


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


AlertRecord = FaultRecord | EvStatusRecord


def with_utc(record: AlertRecord, utc: Callable[[int], int]) -> AlertRecord:
    """The record with every MCU clock reading it carries replaced by UTC."""
    if isinstance(record, FaultRecord):
        return dataclasses.replace(record, time_us=utc(record.time_us))
    departure = None if record.departure_time_us is None else utc(record.departure_time_us)
    return dataclasses.replace(record, time_us=utc(record.time_us), departure_time_us=departure)


def describe(record: AlertRecord) -> str:
    if isinstance(record, FaultRecord):
        return f"FAULT {record.error_code} {'raised' if record.active else 'cleared'}"
    return "EV_STATUS"


def log_line(record: AlertRecord) -> str:
    """The technician's line for an applied record (the ingest logs faults at INFO, EV status at DEBUG)."""
    if isinstance(record, FaultRecord):
        extra = "".join(f" {label} {value!r}" for label, value in (("vendor code", record.vendor_error_code),
                                                                   ("info", record.info)) if value)
        return (f"EVSE {record.evse_id} connector {record.connector_id} fault {record.error_code} "
                f"{'raised' if record.active else 'cleared'}{extra} at {format_us(record.time_us)}")
    departure = "unknown" if record.departure_time_us is None else format_us(record.departure_time_us)
    return (f"EVSE {record.evse_id} connector {record.connector_id} EV status at {format_us(record.time_us)}: "
            f"SoC {_known(record.soc_percent, ' %')}, power {_known(record.power_w, ' W')}, "
            f"capacity {_known(record.battery_capacity_wh, ' Wh')}, departure {departure} "
            f"({record.departure_source.name.lower()})")


def _known(value: object, unit: str) -> str:
    return "unknown" if value is None else f"{value}{unit}"
