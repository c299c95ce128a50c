"""An alert as Flipturn's `GET /api/alerts` shows it (`../shared/seeds/flipturn-alerts.txt`). Pure.

Every type-specific object is present and exactly one is non-null; `chargingSession`, `site`,
`charger`, `port`, `vehicle` and `organization` are filled from what the caller knows, else null.
Our extensions: `endTimestamp` (null while the episode is open) and `evseId` (null for alerts of
the whole charger). Times are RFC 3339 UTC with `Z`, truncated to milliseconds.
`schemas/alert.schema.json` describes exactly this shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .alerts import (Alert, AlertType, LateDetails, OfflineDetails, SessionErrorDetails, SocDetails)
from .timestamps import format_us

TYPE_KEYS: tuple[str, ...] = tuple(t.value for t in AlertType)


@dataclass(frozen=True, slots=True)
class ChargerInfo:
    """What the bridge knows of its charger (from its configuration); `ocpp_id` is the identity."""

    ocpp_id: str
    id: int = 1
    name: str | None = None  # defaults to ocpp_id
    manufacturer: str | None = None
    model: str | None = None
    network_service_provider: str = ""  # the seed requires a string: empty when unknown
    charger_type: str = ""  # e.g. "AC", "DCFC"; empty when unknown
    serial_number: str | None = None
    number_of_ports: int = 1
    latitude: float | None = None
    longitude: float | None = None
    external_id: str | None = None


@dataclass(frozen=True, slots=True)
class PortInfo:
    """One EVSE as a Flipturn port."""

    evse_id: int
    name: str | None = None  # defaults to "EVSE <id>"
    port_number: int | None = None  # defaults to evse_id
    maximum_power_kw: float | None = None
    id: int | None = None  # defaults to evse_id


@dataclass(frozen=True, slots=True)
class SiteInfo:
    id: int
    name: str
    location_id: str | None = None


@dataclass(frozen=True, slots=True)
class OrganizationInfo:
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class VehicleInfo:
    id: int
    make: str | None = None
    model: str | None = None
    name: str | None = None
    vin: str | None = None


@dataclass(frozen=True, slots=True)
class ChargingSessionInfo:
    id: int
    start_us: int
    end_us: int | None = None
    energy_delivered_wh: float | None = None
    soc_start_percent: float | None = None
    soc_end_percent: float | None = None


def render_alert(alert: Alert, *, alert_id: int, muted: bool, charger: ChargerInfo | None = None,
                 ports: Mapping[int, PortInfo] | None = None, site: SiteInfo | None = None,
                 organization: OrganizationInfo | None = None, session: ChargingSessionInfo | None = None,
                 vehicle: VehicleInfo | None = None) -> dict:
    """The alert as one element of the seed's `data` list. Recipients are not part of the shape:
    they are a filter of the list (`alertRecipientIds`)."""
    port = (ports or {}).get(alert.evse_id) if alert.evse_id is not None else None
    out: dict = {"id": alert_id, "type": alert.type.value, "startTimestamp": format_us(alert.start_us),
                 "muted": muted}
    out.update({key: None for key in TYPE_KEYS})
    out[alert.type.value] = render_details(alert)
    out.update({
        "chargingSession": _session(session) if session else None,
        "site": {"id": site.id, "name": site.name, "locationId": site.location_id} if site else None,
        "charger": _charger(charger) if charger else None,
        "port": _port(port) if port else None,
        "vehicle": _vehicle(vehicle) if vehicle else None,
        "organization": {"id": organization.id, "name": organization.name} if organization else None,
        "endTimestamp": _time(alert.end_us),
        "evseId": alert.evse_id,
    })
    return out


def render_details(alert: Alert) -> dict:
    """The type-specific object of `alert`."""
    d = alert.details
    if isinstance(d, SessionErrorDetails):
        return {"status": d.status, "ocppErrorCode": d.ocpp_error_code, "ocppVendorErrorCode": d.ocpp_vendor_error_code,
                "ocppInfo": d.ocpp_info, "errorContext": d.error_context}
    if isinstance(d, OfflineDetails):
        return {"thresholdMinutes": _num(d.threshold_minutes)}
    if isinstance(d, SocDetails):
        return {"socThreshold": _num(d.soc_threshold), "socPercent": _num(d.soc_percent)}
    if isinstance(d, LateDetails):
        return {"originalEta": _time(d.original_eta_us), "currentEta": _time(d.current_eta_us),
                "originalDepartureTime": _time(d.original_departure_us),
                "currentDepartureTime": _time(d.current_departure_us)}
    raise TypeError(f"unknown alert details {d!r}")


def _session(s: ChargingSessionInfo) -> dict:
    duration = None if s.end_us is None else (s.end_us - s.start_us) // 1_000_000
    energy = None if s.energy_delivered_wh is None else _num(s.energy_delivered_wh / 1000)
    return {"id": s.id, "startTime": format_us(s.start_us), "endTime": _time(s.end_us),
            "durationSeconds": duration, "energyDeliveredKwh": energy,
            "socStartPercent": _num(s.soc_start_percent), "socEndPercent": _num(s.soc_end_percent)}


def _charger(c: ChargerInfo) -> dict:
    return {"id": c.id, "name": c.name if c.name is not None else c.ocpp_id, "manufacturer": c.manufacturer,
            "model": c.model, "networkServiceProvider": c.network_service_provider, "chargerType": c.charger_type,
            "serialNumber": c.serial_number, "numberOfPorts": c.number_of_ports, "latitude": c.latitude,
            "longitude": c.longitude, "externalId": c.external_id, "ocppId": c.ocpp_id}


def _port(p: PortInfo) -> dict:
    return {"id": p.id if p.id is not None else p.evse_id,
            "name": p.name if p.name is not None else f"EVSE {p.evse_id}",
            "portNumber": p.port_number if p.port_number is not None else p.evse_id,
            "maximumPowerKw": _num(p.maximum_power_kw)}


def _vehicle(v: VehicleInfo) -> dict:
    return {"id": v.id, "make": v.make, "model": v.model, "name": v.name, "vin": v.vin}


def _time(time_us: int | None) -> str | None:
    return None if time_us is None else format_us(time_us)


def _num(value: float | None) -> int | float | None:
    """20.0 -> 20 (as the seed's example shows), 15.5 stays 15.5."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value
