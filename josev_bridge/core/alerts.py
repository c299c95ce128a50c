"""The alert engine: MCU faults, the EV's battery state, condition edges and link silence in; one
alert per episode out. Pure: no I/O, no threads, no clock (every time is passed in, UTC µs).

An *episode* is one stretch of a condition being true, keyed per alert type, per EVSE and (for
faults) per OCPP error code. A condition that clears does not end its episode at once: it must stay
clear for `clear_hold_s` (and SoC and ETA conditions must leave a hysteresis band), so a fault that
flaps, a SoC oscillating around a threshold or a link that comes and goes yields one alert, not a
storm. The alert's start is the time of the episode's first record and its end the time the
condition last cleared, both from the records, never from the hold expiry.

Times are the board's UTC, and the board's clock may step (no RTC, then NTP: +3 years). The times
shown (start, end) keep what the clock said then; the times durations are measured from (the start
of a hold, the last frame before an offline episode's silence) are moved with each step
(`on_clock_step`), so a hold lasts `clear_hold_s` and a silence is a silence whatever the clock did:
a forward step does not end every hold at once, a backward one does not stretch them by years.

The five types are Flipturn's (`GET /api/alerts`):

- chargingSessionError: a FAULT raised; open until it stays cleared. `errorContext` says whether
  it came in a session where energy never flowed ("Charging failed to start"), after energy flowed
  ("Charging ended early"), or outside a session (None). An MCU reboot clears every open fault at
  the time the reboot was seen, unconfirmed: the MCU re-raises the faults still active right after
  its HELLO (docs/serial-protocol.md), which resumes their episodes as if nothing happened; a fault
  it does not re-raise ends after the hold (the MCU never sends a clear for it).
- offlineCharger: no frame from the MCU for `offline_threshold_minutes`. It starts at the last frame
  heard (the last thing we know); once open, any gap over `link_gap_s` keeps it open.
- lowBattery: SoC at/below `low_soc_threshold` while the EV is connected; clears above the threshold
  plus `soc_hysteresis`, or when the EV disconnects.
- chargingCompleted: while the EV is connected, the SoC reaches `completed_soc_threshold`, or energy
  stops flowing (EnergyTransfer falls, no fault open on the EVSE) with the SoC within
  `completed_stop_band` below it (BMSs often stop at 97–99 %). It is a fact about the session:
  only the EV disconnecting clears it.
- lateCharging: ETA = record time + capacity × (completed_soc_threshold − SoC) / 100 / power, later
  than the departure time; clears when the ETA is `late_clear_margin_s` before departure, when the SoC
  reaches the target, or when the EV disconnects. Without power (≤ 0 or unknown), capacity, SoC or
  departure there is no ETA and nothing changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import Any

from .alert_inputs import EvStatusRecord, FaultRecord
from .conditions import Condition, Edge

US = 1_000_000
SNAPSHOT_VERSION = 1

FAULTED_STATUS = "Faulted"  # the OCPP connector status any MCU fault implies
FAILED_TO_START = "Charging failed to start"
ENDED_EARLY = "Charging ended early"
STATION_EVSE_ID = 0  # OCPP: EVSE 0 is the whole station


class AlertType(str, Enum):
    LOW_BATTERY = "lowBattery"
    CHARGING_COMPLETED = "chargingCompleted"
    CHARGING_SESSION_ERROR = "chargingSessionError"
    OFFLINE_CHARGER = "offlineCharger"
    LATE_CHARGING = "lateCharging"


#: Types whose episode belongs to the EV's session: the EV disconnecting clears them.
SESSION_TYPES = (AlertType.LOW_BATTERY, AlertType.CHARGING_COMPLETED, AlertType.LATE_CHARGING)


class ChangeKind(str, Enum):
    OPENED = "opened"
    UPDATED = "updated"  # lateCharging's current ETA or departure moved (throttled by eta_update_s)
    CLOSED = "closed"


# -- settings ---------------------------------------------------------------------------------------

class AlertSettingsError(ValueError):
    """A setting is missing its mark; the message names the key."""


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """Thresholds and hysteresis. Defaults are chosen so that nothing a healthy charger does alerts."""

    clear_hold_s: float = 60.0  # a cleared condition must stay clear this long to end its episode
    offline_threshold_minutes: float = 5.0  # MCU silence that is an outage, not a glitch (keep-alive is 1 s)
    link_gap_s: float = 5.0  # silence that re-opens a clearing offline episode (= the link's silence timeout)
    low_soc_threshold: float = 20.0  # %: lowBattery at or below
    completed_soc_threshold: float = 100.0  # %: chargingCompleted at or above; lateCharging's target
    completed_stop_band: float = 3.0  # %-points below the threshold where energy stopping also counts
    soc_hysteresis: float = 2.0  # %-points above the low threshold before lowBattery clears
    late_clear_margin_s: float = 300.0  # ETA must be this far before departure before lateCharging clears
    eta_update_s: float = 60.0  # a current ETA moving less than this is not an UPDATED change

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise AlertSettingsError(f"{f.name}: expected a number, got {value!r}")
            if value < 0:
                raise AlertSettingsError(f"{f.name}: must not be negative, got {value!r}")
        for name in ("offline_threshold_minutes", "link_gap_s"):
            if getattr(self, name) <= 0:
                raise AlertSettingsError(f"{name}: must be positive, got {getattr(self, name)!r}")
        for name in ("low_soc_threshold", "completed_soc_threshold"):
            if getattr(self, name) > 100:
                raise AlertSettingsError(f"{name}: a state of charge is 0..100, got {getattr(self, name)!r}")
        if self.low_soc_threshold + self.soc_hysteresis >= self.completed_soc_threshold:
            raise AlertSettingsError(
                "low_soc_threshold: plus soc_hysteresis must stay below completed_soc_threshold, got "
                f"{self.low_soc_threshold} + {self.soc_hysteresis} >= {self.completed_soc_threshold}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "alerts") -> AlertSettings:
        """Build from a plain dict (a TOML table); unknown keys and bad values name the key."""
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise AlertSettingsError(f"[{where}] {key}: unknown key (known: {', '.join(sorted(known))})")
        try:
            return cls(**dict(data))
        except AlertSettingsError as exc:
            raise AlertSettingsError(f"[{where}] {exc}") from None

    def hold_us(self) -> int:
        return round(self.clear_hold_s * US)


# -- alerts ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SessionErrorDetails:
    status: str
    ocpp_error_code: str
    ocpp_vendor_error_code: str | None
    ocpp_info: str | None
    error_context: str | None


@dataclass(frozen=True, slots=True)
class OfflineDetails:
    threshold_minutes: float


@dataclass(frozen=True, slots=True)
class SocDetails:
    soc_threshold: float
    soc_percent: float | None  # the SoC of the record that opened the episode


@dataclass(frozen=True, slots=True)
class LateDetails:
    original_eta_us: int | None  # as when the alert opened
    current_eta_us: int | None  # the latest estimate
    original_departure_us: int | None
    current_departure_us: int | None


AlertDetails = SessionErrorDetails | OfflineDetails | SocDetails | LateDetails

_DETAILS: dict[AlertType, type] = {
    AlertType.CHARGING_SESSION_ERROR: SessionErrorDetails,
    AlertType.OFFLINE_CHARGER: OfflineDetails,
    AlertType.LOW_BATTERY: SocDetails,
    AlertType.CHARGING_COMPLETED: SocDetails,
    AlertType.LATE_CHARGING: LateDetails,
}


@dataclass(frozen=True, slots=True)
class Alert:
    """One episode of one condition. `end_us` is None while the episode is open."""

    type: AlertType
    evse_id: int | None  # None: the whole charger (offlineCharger)
    connector_id: int | None
    start_us: int
    details: AlertDetails
    end_us: int | None = None
    session_start_us: int | None = None  # the EV session it came in, if any
    occurrences: int = 1  # how often the condition came back within the episode

    @property
    def key(self) -> str:
        """The episode key: at most one open episode per key."""
        return _key(self.type, self.evse_id,
                    self.details.ocpp_error_code if isinstance(self.details, SessionErrorDetails) else None)

    @property
    def episode_id(self) -> str:
        """Stable across restarts: a store can use it to never record one episode twice."""
        return f"{self.key}@{self.start_us}"


def _key(kind: AlertType, evse_id: int | None, error_code: str | None = None) -> str:
    parts = [kind.value] + ([] if evse_id is None else [f"evse{evse_id}"]) + ([error_code] if error_code else [])
    return "/".join(parts)


@dataclass(frozen=True, slots=True)
class AlertChange:
    kind: ChangeKind
    alert: Alert


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    """A JSON-able dict (field names as in the dataclasses); `alert_from_dict` reverses it."""
    return {
        "type": alert.type.value, "evse_id": alert.evse_id, "connector_id": alert.connector_id,
        "start_us": alert.start_us, "end_us": alert.end_us, "session_start_us": alert.session_start_us,
        "occurrences": alert.occurrences,
        "details": {f.name: getattr(alert.details, f.name) for f in fields(alert.details)},
    }


def alert_from_dict(data: Mapping[str, Any]) -> Alert:
    """Rebuild an alert from `alert_to_dict` output; ValueError on anything malformed."""
    try:
        kind = AlertType(data["type"])
        details = _DETAILS[kind](**data["details"])
        return Alert(type=kind, evse_id=_opt_int(data["evse_id"]), connector_id=_opt_int(data["connector_id"]),
                     start_us=_int(data["start_us"]), details=details, end_us=_opt_int(data["end_us"]),
                     session_start_us=_opt_int(data["session_start_us"]), occurrences=_int(data["occurrences"]))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed alert {data!r}: {exc}") from None


# -- the engine -------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Episode:
    alert: Alert
    cleared_us: int | None = None  # when the condition last cleared (the alert's end); None while it holds
    silent_since_us: int | None = None  # offlineCharger: the last frame heard before this silence (moved by steps)
    emitted_eta_us: int | None = None  # lateCharging: the current ETA last reported
    emitted_departure_us: int | None = None
    unconfirmed: bool = False  # cleared by an MCU reboot, not by a record: a re-raise resumes it as is
    hold_from_us: int | None = None  # cleared_us on the current time line (moved by steps): the hold's start

    def clear_at(self, time_us: int) -> None:
        self.cleared_us = self.hold_from_us = time_us

    def holds_again(self) -> None:
        self.cleared_us = self.hold_from_us = None


@dataclass(slots=True)
class _Evse:
    """What the engine needs to know of one EVSE's session."""

    connected: bool = False
    authorized: bool = False
    session_start_us: int | None = None  # None: no session open
    energy_flowed: bool = False  # EnergyTransfer rose in this session
    soc_percent: float | None = None  # the latest SoC in this session
    connector_id: int | None = None  # of the latest EV status


#: The condition edges that change the engine's session state (the rest only move its clock).
SESSION_CONDITIONS = frozenset({Condition.EV_CONNECTED, Condition.AUTHORIZED, Condition.ENERGY_TRANSFER})


class AlertEngine:
    """Feed records, edges and ticks in time order; each call returns the alert changes it caused."""

    def __init__(self, settings: AlertSettings | None = None) -> None:
        self.settings = settings or AlertSettings()
        self._episodes: dict[str, _Episode] = {}
        self._evses: dict[int, _Evse] = {}

    # -- inputs ------------------------------------------------------------------------------------
    def on_fault(self, rec: FaultRecord) -> list[AlertChange]:
        """A FAULT raised or cleared. Every input first closes the episodes whose hold has passed by
        its time, so a condition back after the hold is a new alert even without a tick between."""
        changes = self._expire(rec.time_us)
        key = _key(AlertType.CHARGING_SESSION_ERROR, rec.evse_id, rec.error_code)
        if not rec.active:
            self._clear(key, rec.time_us)
            return changes
        evse = self._evse(rec.evse_id)
        details = SessionErrorDetails(FAULTED_STATUS, rec.error_code, rec.vendor_error_code, rec.info,
                                      self._error_context(rec.evse_id))
        alert = Alert(AlertType.CHARGING_SESSION_ERROR, rec.evse_id, rec.connector_id, rec.time_us, details,
                      session_start_us=evse.session_start_us)
        return changes + self._assert(key, alert)

    def on_ev_status(self, rec: EvStatusRecord) -> list[AlertChange]:
        """The EV's SoC, power, capacity and departure; ignored unless the EV is connected."""
        changes = self._expire(rec.time_us)
        evse = self._evse(rec.evse_id)
        if not evse.connected or rec.soc_percent is None:
            return changes
        evse.soc_percent, evse.connector_id = rec.soc_percent, rec.connector_id
        changes += self._low_battery(rec, evse, rec.soc_percent)
        if rec.soc_percent >= self.settings.completed_soc_threshold:
            changes += self._completed(rec.evse_id, rec.connector_id, rec.time_us, rec.soc_percent)
        return changes + self._late(rec, evse, rec.soc_percent)

    def on_edge(self, edge: Edge) -> list[AlertChange]:
        """Condition edges (from EdgeStore.apply) tell the engine about sessions and energy flow
        (only those of SESSION_CONDITIONS change its state)."""
        changes = self._expire(edge.time_us)
        evse = self._evse(edge.evse_id)
        if edge.condition in (Condition.EV_CONNECTED, Condition.AUTHORIZED):
            changes += self._session_edge(edge, evse)
        elif edge.condition is Condition.ENERGY_TRANSFER:
            if edge.rising:
                evse.energy_flowed = True
            else:
                changes += self._energy_stopped(edge, evse)
        return changes

    def on_mcu_reboot(self, time_us: int) -> list[AlertChange]:
        """The MCU rebooted (a HELLO with a new boot id, seen at `time_us`): its faults are unknown
        until it re-raises those still active, so every open fault clears here, unconfirmed."""
        changes = self._expire(time_us)
        for ep in self._episodes.values():
            if ep.alert.type is AlertType.CHARGING_SESSION_ERROR and ep.cleared_us is None:
                ep.clear_at(time_us)
                ep.unconfirmed = True
        return changes

    def on_clock_step(self, step_us: int) -> None:
        """The board's clock stepped by `step_us` (+ forward) since the last input: the inputs from now
        on are on the new time line, so the times durations are measured from move with it. The alert
        times shown keep what the clock said (module docstring)."""
        for ep in self._episodes.values():
            if ep.hold_from_us is not None:
                ep.hold_from_us += step_us
            if ep.silent_since_us is not None:
                ep.silent_since_us += step_us

    def tick(self, now_us: int, last_heard_us: int | None) -> list[AlertChange]:
        """Call about once a second with the bridge's clock and the MCU link's last frame time.

        `last_heard_us` None means no frame since start: the link's state is unknown and the offline
        episode is left as it is (pass the time the link was opened to have silence from start count).
        """
        self._no_start_after(now_us)
        changes = self._link(now_us, last_heard_us) if last_heard_us is not None else []
        return changes + self._expire(now_us)

    def _no_start_after(self, now_us: int) -> None:
        """A hold or silence that starts after now comes from a time line the engine never saw leave
        (restored after a host reboot that set the clock back, a step while the bridge was stopped):
        it counts from now: the hold ends late rather than years from now (a board that booted at 1970)."""
        for ep in self._episodes.values():
            if ep.hold_from_us is not None and ep.hold_from_us > now_us:
                ep.hold_from_us = now_us
            if ep.silent_since_us is not None and ep.silent_since_us > now_us:
                ep.silent_since_us = now_us

    # -- asking ------------------------------------------------------------------------------------
    def open_alerts(self) -> list[Alert]:
        """Every open episode's alert (clearing ones included), oldest first."""
        return sorted((ep.alert for ep in self._episodes.values()), key=lambda a: (a.start_us, a.key))

    def session_open(self, evse_id: int) -> bool:
        evse = self._evses.get(evse_id)
        return evse is not None and evse.session_start_us is not None

    # -- episodes ----------------------------------------------------------------------------------
    def _assert(self, key: str, alert: Alert) -> list[AlertChange]:
        """The condition of `key` holds: open an episode, or keep a clearing one open."""
        ep = self._episodes.get(key)
        if ep is None:
            self._episodes[key] = _Episode(alert)
            return [AlertChange(ChangeKind.OPENED, alert)]
        if ep.cleared_us is not None:
            ep.holds_again()
            if ep.unconfirmed:  # re-raised after an MCU reboot: the same fault, still active
                ep.unconfirmed = False
            else:
                ep.alert = replace(ep.alert, occurrences=ep.alert.occurrences + 1)
        return []

    def _clear(self, key: str, time_us: int) -> None:
        ep = self._episodes.get(key)
        if ep is not None and (ep.cleared_us is None or ep.unconfirmed):
            ep.clear_at(time_us)  # a clear record: the MCU's own time wins
            ep.unconfirmed = False

    def _expire(self, now_us: int) -> list[AlertChange]:
        """Close every episode that has stayed clear for the hold time; its end is when it cleared."""
        hold = self.settings.hold_us()
        due = sorted((ep.hold_from_us, key) for key, ep in self._episodes.items()
                     if ep.hold_from_us is not None and now_us - ep.hold_from_us >= hold)
        return [self._close(key) for _, key in due]

    def _close(self, key: str) -> AlertChange:
        ep = self._episodes.pop(key)
        return AlertChange(ChangeKind.CLOSED, replace(ep.alert, end_us=ep.cleared_us))

    # -- sessions and faults -----------------------------------------------------------------------
    def _evse(self, evse_id: int) -> _Evse:
        evse = self._evses.get(evse_id)
        if evse is None:
            evse = self._evses[evse_id] = _Evse()
        return evse

    def _error_context(self, evse_id: int) -> str | None:
        """A station-wide fault (EVSE 0) touches every open session; the worst context wins."""
        if evse_id == STATION_EVSE_ID:
            sessions = [e for e in self._evses.values() if e.session_start_us is not None]
        else:
            evse = self._evses.get(evse_id)
            sessions = [evse] if evse is not None and evse.session_start_us is not None else []
        if not sessions:
            return None
        return ENDED_EARLY if any(e.energy_flowed for e in sessions) else FAILED_TO_START

    def _session_edge(self, edge: Edge, evse: _Evse) -> list[AlertChange]:
        """A session is open while the EV is connected or authorized."""
        if edge.condition is Condition.EV_CONNECTED:
            evse.connected = edge.rising
        else:
            evse.authorized = edge.rising
        if evse.connected or evse.authorized:
            if evse.session_start_us is None:
                evse.session_start_us, evse.energy_flowed, evse.soc_percent = edge.time_us, False, None
        else:
            evse.session_start_us, evse.energy_flowed, evse.soc_percent = None, False, None
        if edge.condition is Condition.EV_CONNECTED and not edge.rising:
            for kind in SESSION_TYPES:
                self._clear(_key(kind, edge.evse_id), edge.time_us)
        return []

    # -- state of charge ---------------------------------------------------------------------------
    def _low_battery(self, rec: EvStatusRecord, evse: _Evse, soc: float) -> list[AlertChange]:
        s = self.settings
        key = _key(AlertType.LOW_BATTERY, rec.evse_id)
        if soc <= s.low_soc_threshold:
            alert = Alert(AlertType.LOW_BATTERY, rec.evse_id, rec.connector_id, rec.time_us,
                          SocDetails(s.low_soc_threshold, soc), session_start_us=evse.session_start_us)
            return self._assert(key, alert)
        if soc > s.low_soc_threshold + s.soc_hysteresis:
            self._clear(key, rec.time_us)
        return []

    def _completed(self, evse_id: int, connector_id: int | None, time_us: int, soc: float) -> list[AlertChange]:
        alert = Alert(AlertType.CHARGING_COMPLETED, evse_id, connector_id, time_us,
                      SocDetails(self.settings.completed_soc_threshold, soc),
                      session_start_us=self._evse(evse_id).session_start_us)
        return self._assert(_key(AlertType.CHARGING_COMPLETED, evse_id), alert)

    def _energy_stopped(self, edge: Edge, evse: _Evse) -> list[AlertChange]:
        """Energy stopping near the threshold is completion, unless a fault stopped it."""
        s = self.settings
        if not evse.connected or evse.soc_percent is None:
            return []
        if evse.soc_percent < s.completed_soc_threshold - s.completed_stop_band or self._fault_holds(edge.evse_id):
            return []
        return self._completed(edge.evse_id, evse.connector_id, edge.time_us, evse.soc_percent)

    def _fault_holds(self, evse_id: int) -> bool:
        return any(ep.cleared_us is None and ep.alert.type is AlertType.CHARGING_SESSION_ERROR
                   and ep.alert.evse_id in (evse_id, STATION_EVSE_ID) for ep in self._episodes.values())

    # -- late charging -----------------------------------------------------------------------------
    def eta_us(self, rec: EvStatusRecord) -> int | None:
        """When the EV reaches `completed_soc_threshold` at the power of `rec`; None if unknowable."""
        if rec.soc_percent is None or not rec.power_w or rec.power_w <= 0 or not rec.battery_capacity_wh:
            return None
        missing_wh = rec.battery_capacity_wh * max(0.0, self.settings.completed_soc_threshold - rec.soc_percent) / 100
        return rec.time_us + round(missing_wh / rec.power_w * 3600 * US)

    def _late(self, rec: EvStatusRecord, evse: _Evse, soc: float) -> list[AlertChange]:
        key = _key(AlertType.LATE_CHARGING, rec.evse_id)
        if soc >= self.settings.completed_soc_threshold:
            self._clear(key, rec.time_us)
            return []
        eta, departure = self.eta_us(rec), rec.departure_time_us
        if eta is None or departure is None:
            return []
        ep = self._episodes.get(key)
        if eta > departure:
            alert = Alert(AlertType.LATE_CHARGING, rec.evse_id, rec.connector_id, rec.time_us,
                          LateDetails(eta, eta, departure, departure), session_start_us=evse.session_start_us)
            opened = self._assert(key, alert)
            if opened:
                self._episodes[key].emitted_eta_us, self._episodes[key].emitted_departure_us = eta, departure
                return opened
        elif eta <= departure - round(self.settings.late_clear_margin_s * US):
            self._clear(key, rec.time_us)
        return self._update_late(ep, eta, departure) if ep is not None else []

    def _update_late(self, ep: _Episode, eta: int, departure: int) -> list[AlertChange]:
        details = ep.alert.details
        assert isinstance(details, LateDetails)  # a LATE_CHARGING episode's
        ep.alert = replace(ep.alert, details=replace(details, current_eta_us=eta, current_departure_us=departure))
        moved = ep.emitted_eta_us is None or abs(eta - ep.emitted_eta_us) >= round(self.settings.eta_update_s * US)
        if not moved and departure == ep.emitted_departure_us:
            return []
        ep.emitted_eta_us, ep.emitted_departure_us = eta, departure
        return [AlertChange(ChangeKind.UPDATED, ep.alert)]

    # -- the MCU link ------------------------------------------------------------------------------
    def _link(self, now_us: int, last_heard_us: int) -> list[AlertChange]:
        s = self.settings
        silence = now_us - last_heard_us
        key = _key(AlertType.OFFLINE_CHARGER, None)
        ep = self._episodes.get(key)
        if ep is None:
            if silence < round(s.offline_threshold_minutes * 60 * US):
                return []
            alert = Alert(AlertType.OFFLINE_CHARGER, None, None, last_heard_us,
                          OfflineDetails(s.offline_threshold_minutes))
            changes = self._assert(key, alert)
            self._episodes[key].silent_since_us = last_heard_us
            return changes
        if ep.cleared_us is None:
            if last_heard_us > (ep.silent_since_us if ep.silent_since_us is not None else ep.alert.start_us):
                ep.clear_at(last_heard_us)  # heard again: the first frame we know of after the silence
        elif silence >= round(s.link_gap_s * US):
            self._assert(key, ep.alert)
            ep.silent_since_us = last_heard_us
        return []

    # -- persistence -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Open episodes and session state as plain JSON-able dicts."""
        return {
            "version": SNAPSHOT_VERSION,
            "episodes": [
                {"alert": alert_to_dict(ep.alert), "cleared_us": ep.cleared_us,
                 "silent_since_us": ep.silent_since_us, "emitted_eta_us": ep.emitted_eta_us,
                 "emitted_departure_us": ep.emitted_departure_us, "unconfirmed": ep.unconfirmed,
                 "hold_from_us": ep.hold_from_us}
                for _, ep in sorted(self._episodes.items())
            ],
            "evses": {
                str(evse_id): {"connected": e.connected, "authorized": e.authorized,
                               "session_start_us": e.session_start_us, "energy_flowed": e.energy_flowed,
                               "soc_percent": e.soc_percent, "connector_id": e.connector_id}
                for evse_id, e in sorted(self._evses.items())
            },
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any], settings: AlertSettings | None = None) -> AlertEngine:
        """Rebuild from `snapshot()` output; ValueError on anything malformed. Open episodes keep the
        thresholds they opened with even if the settings changed."""
        if not isinstance(data, Mapping) or data.get("version") != SNAPSHOT_VERSION:
            version = data.get("version") if isinstance(data, Mapping) else data
            raise ValueError(f"unsupported alert snapshot version: {version!r}")
        engine = cls(settings)
        try:
            for raw in data["episodes"]:
                alert = alert_from_dict(raw["alert"])
                cleared, hold_from = _opt_int(raw["cleared_us"]), _opt_int(raw.get("hold_from_us"))
                if (hold_from is None) != (cleared is None):  # absent before the field; a hold has both
                    hold_from = cleared
                engine._episodes[alert.key] = _Episode(
                    alert, cleared, _opt_int(raw["silent_since_us"]),
                    _opt_int(raw["emitted_eta_us"]), _opt_int(raw["emitted_departure_us"]),
                    bool(raw.get("unconfirmed", False)),  # absent in snapshots from before the field
                    hold_from)
            for evse_key, raw in data["evses"].items():
                soc = raw["soc_percent"]
                if soc is not None and (isinstance(soc, bool) or not isinstance(soc, (int, float))):
                    raise ValueError(f"soc_percent: expected a number, got {soc!r}")
                engine._evses[int(evse_key)] = _Evse(bool(raw["connected"]), bool(raw["authorized"]),
                                                     _opt_int(raw["session_start_us"]),
                                                     bool(raw["energy_flowed"]), soc,
                                                     _opt_int(raw.get("connector_id")))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed alert snapshot: {exc!r}") from None
        return engine


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _opt_int(value: object) -> int | None:
    return None if value is None else _int(value)
