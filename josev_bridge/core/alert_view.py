"""An alert as Flipturn's `GET /api/alerts` shows it (`../shared/seeds/flipturn-alerts.txt`). Pure.

Every type-specific object is present and exactly one is non-null; `chargingSession`, `site`,
`charger`, `port`, `vehicle` and `organization` are filled from what the caller knows, else null.
Our extensions: `endTimestamp` (null while the episode is open) and `evseId` (null for alerts of
the whole charger). Times are RFC 3339 UTC with `Z`, truncated to milliseconds.
`schemas/alert.schema.json` describes exactly this shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .alerts import Alert, AlertType, LateDetails, OfflineDetails, SessionErrorDetails, SocDetails
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
                 vehicle: VehicleInfo | None = None) -> dict[str, Any]:
    """The alert as one element of the seed's `data` list. Recipients are not part of the shape:
    they are a filter of the list (`alertRecipientIds`)."""
    port = (ports or {}).get(alert.evse_id) if alert.evse_id is not None else None
    out: dict[str, Any] = {"id": alert_id, "type": alert.type.value, "startTimestamp": format_us(alert.start_us),
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


def render_details(alert: Alert) -> dict[str, Any]:
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


def _session(s: ChargingSessionInfo) -> dict[str, Any]:
    duration = None if s.end_us is None else (s.end_us - s.start_us) // 1_000_000
    energy = None if s.energy_delivered_wh is None else _num(s.energy_delivered_wh / 1000)
    return {"id": s.id, "startTime": format_us(s.start_us), "endTime": _time(s.end_us),
            "durationSeconds": duration, "energyDeliveredKwh": energy,
            "socStartPercent": _num(s.soc_start_percent), "socEndPercent": _num(s.soc_end_percent)}


def _charger(c: ChargerInfo) -> dict[str, Any]:
    return {"id": c.id, "name": c.name if c.name is not None else c.ocpp_id, "manufacturer": c.manufacturer,
            "model": c.model, "networkServiceProvider": c.network_service_provider, "chargerType": c.charger_type,
            "serialNumber": c.serial_number, "numberOfPorts": c.number_of_ports, "latitude": c.latitude,
            "longitude": c.longitude, "externalId": c.external_id, "ocppId": c.ocpp_id}


def _port(p: PortInfo) -> dict[str, Any]:
    return {"id": p.id if p.id is not None else p.evse_id,
            "name": p.name if p.name is not None else f"EVSE {p.evse_id}",
            "portNumber": p.port_number if p.port_number is not None else p.evse_id,
            "maximumPowerKw": _num(p.maximum_power_kw)}


def _vehicle(v: VehicleInfo) -> dict[str, Any]:
    return {"id": v.id, "make": v.make, "model": v.model, "name": v.name, "vin": v.vin}


def _time(time_us: int | None) -> str | None:
    return None if time_us is None else format_us(time_us)


def _num(value: float | None) -> int | float | None:
    """20.0 -> 20 (as the seed's example shows), 15.5 stays 15.5."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


# Presentation of a stored alert, shared by the alert service, the alerts API and the CLI.

class ChargerSettings(Protocol):
    """What `charger_info` reads of the `[charger]` section (`josev_bridge.config.ChargerConfig`,
    which core/ does not import)."""

    @property
    def identity(self) -> str: ...
    @property
    def fleet_id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def manufacturer(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def serial_number(self) -> str: ...
    @property
    def charger_type(self) -> str: ...
    @property
    def network_service_provider(self) -> str: ...
    @property
    def evse_count(self) -> int: ...
    @property
    def max_power_kw(self) -> float: ...


class HasChargerSettings(Protocol):
    """A `josev_bridge.config.Config`, as far as `charger_info` reads it."""

    @property
    def charger(self) -> ChargerSettings: ...


def tech_code(alert: Alert) -> str:
    """The fault's OCPP error code for session errors; the alert type otherwise."""
    if isinstance(alert.details, SessionErrorDetails) and alert.details.ocpp_error_code:
        return alert.details.ocpp_error_code
    return alert.type.value


def alert_summary(alert: Alert) -> str:
    where = f"EVSE {alert.evse_id}" if alert.evse_id is not None else "charger"
    d = alert.details
    if isinstance(d, SessionErrorDetails):
        extra = ", ".join(x for x in (d.ocpp_error_code, d.ocpp_vendor_error_code, d.ocpp_info, d.error_context) if x)
    elif isinstance(d, SocDetails):
        extra = f"SoC {d.soc_percent}% (threshold {d.soc_threshold}%)"
    elif isinstance(d, OfflineDetails):
        extra = f"MCU link silent for {d.threshold_minutes:g}+ min"
    elif isinstance(d, LateDetails):
        extra = f"ETA {format_us(d.current_eta_us) if d.current_eta_us else '?'} after departure " \
                f"{format_us(d.current_departure_us) if d.current_departure_us else '?'}"
    else:  # pragma: no cover - every type is above
        extra = ""
    return f"{alert.type.value} on {where}" + (f" ({extra})" if extra else "")


def alert_view(alert: Alert, alert_id: int, muted: bool, charger: ChargerInfo,
               ports: dict[int, PortInfo]) -> dict[str, Any]:
    """The API shape, with what the bridge knows: the charger and port from the config, and the
    charging session the alert came in (its id is its start in ms since the epoch: the bridge has
    no session numbers, and the start time names a session on this charger uniquely)."""
    session = None if alert.session_start_us is None else \
        ChargingSessionInfo(id=alert.session_start_us // 1000, start_us=alert.session_start_us)
    return render_alert(alert, alert_id=alert_id, muted=muted, charger=charger, ports=ports, session=session)


def charger_info(config: HasChargerSettings) -> tuple[ChargerInfo, dict[int, PortInfo]]:
    """The charger and its ports from a `josev_bridge.config.Config` (only its `charger` section is read)."""
    c = config.charger
    info = ChargerInfo(ocpp_id=c.identity, id=c.fleet_id, name=c.name or None, manufacturer=c.manufacturer or None,
                       model=c.model or None, network_service_provider=c.network_service_provider,
                       charger_type=c.charger_type, serial_number=c.serial_number or None,
                       number_of_ports=c.evse_count)
    ports = {n: PortInfo(n, maximum_power_kw=c.max_power_kw or None) for n in range(1, c.evse_count + 1)}
    return info, ports
