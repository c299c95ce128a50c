"""The simulated MCU as a pure state machine: commands in, records (SIGNAL, FAULT, EV_STATUS) and
OCPP edges out.

No I/O and no threads: the caller serialises access. The edges are computed here by the sim's own
small rules, deliberately not by `core.edge_store`, so that the bridge's edge logic is tested
against an independent truth.

Two clocks (docs/sim-control-api.openapi.json, "Clocks"):

- the TRUE clock (UTC µs, injectable): the reference. Edges report it; the bridge is judged by it.
- the MCU clock: what goes on the wire (records' `time_us`, KEEPALIVE, CLOCK_REPLY). It is the true
  clock with an offset and a drift, `mcu = true_at_start + offset + (true - true_at_start) * (1 + ppm/1e6)`,
  changed at run time by `clock-set` without jumping (unless the offset is set).

Faults and the EV's battery state go on the wire as FAULT and EV_STATUS records through the same
ring as the signals. EV_STATUS is sent only for an EV that reported its battery state (`ev-status`)
since it was plugged in, once per change of what it reports (power included); the sim neither
integrates the SoC over time nor repeats a status every 60 s, so the line stays deterministic.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from rfc3339_validator import validate_rfc3339

from .. import __version__
from ..core.alert_inputs import DepartureSource, EvStatusRecord, FaultRecord
from ..core.conditions import Condition, EventType, Signal, SignalRecord
from ..core.timestamps import format_us, parse_us
from ..protocol.framing import PROTOCOL_VERSION
from ..protocol.records import SequencedRecord, fit_fault_info
from .boot_report import LOST_BY_COLD_BOOT, level_records
from .options import DEFAULT_EVSE_COUNT, DEFAULT_RING_SIZE

Clock = Callable[[], int]

FIRMWARE = f"josev-sim {__version__}"
DEFAULT_ID_TAG = "SIM-TAG"
MAX_ID_TAG = 36  # OCPP IdToken length
MAX_CONNECTOR_ID = 255  # u8 on the wire
MAX_RING_SIZE = 1_000_000
DEFAULT_POWER_W = 11_000.0  # what an EV draws when it asks for energy without a power-update
MAX_POWER_W = 1_000_000.0
MAX_OFFSET_S = 1e10  # a clock off by ~317 years is still an i64 of µs; -now models an RTC never set
MAX_DRIFT_PPM = 100_000.0  # ±10 %: far beyond any crystal, and the MCU clock still runs forwards
MAX_LOCAL_LIST = 10_000
MAX_VENDOR_ERROR_CODE = 50  # characters, and bytes of UTF-8 on the wire
MAX_FAULT_INFO = 500  # characters; FAULT records carry what fits the frame (records.fit_fault_info)
MAX_BATTERY_WH = 2**32 - 1  # u32 on the wire
DEPARTURE_SOURCES: dict[str, DepartureSource] = {"ev": DepartureSource.EV, "operator": DepartureSource.OPERATOR}

#: OCPP 1.6 ChargePointErrorCode values that are faults (NoError is not). OCPP 2.0.1 reports faults
#: as free-text components/events; these names are what both versions' test tools use.
FAULT_CODES: tuple[str, ...] = (
    "ConnectorLockFailure", "EVCommunicationError", "GroundFailure", "HighTemperature", "InternalError",
    "LocalListConflict", "OtherError", "OverCurrentFailure", "OverVoltage", "PowerMeterFailure",
    "PowerSwitchFailure", "ReaderFailure", "ResetFailure", "UnderVoltage", "WeakSignal",
)

#: The trigger reason each signal reports; RelayClosed is not a trigger reason, so it has none.
_SIGNAL_REASON: dict[Signal, Condition] = {
    Signal.EV_CONNECTED: Condition.EV_CONNECTED,
    Signal.AUTHORIZED: Condition.AUTHORIZED,
    Signal.BAY_OCCUPIED: Condition.PARKING_BAY_OCCUPANCY,
    Signal.ENERGY_FLOWING: Condition.ENERGY_TRANSFER,
    Signal.DATA_SIGNED: Condition.DATA_SIGNED,
}

#: The state attribute of `EvseState` each signal drives.
_SIGNAL_ATTR: dict[Signal, str] = {
    Signal.EV_CONNECTED: "connected",
    Signal.AUTHORIZED: "authorized",
    Signal.BAY_OCCUPIED: "bay_occupied",
    Signal.RELAY_CLOSED: "relay_closed",
    Signal.ENERGY_FLOWING: "energy_flowing",
    Signal.DATA_SIGNED: "data_signed",
}


def system_clock_us() -> int:
    """Microseconds since the Unix epoch, UTC (the TRUE clock)."""
    return time.time_ns() // 1000


def _check_text(name: str, value: object, max_chars: int, max_bytes: int | None = None) -> str | None:
    """An optional string the wire can carry: UTF-8 encodable (no lone surrogates), within limits."""
    if value is None:
        return None
    limit = f"a string of at most {max_chars} characters" + (f" ({max_bytes} bytes of UTF-8)" if max_bytes else "")
    if not isinstance(value, str) or len(value) > max_chars:
        raise ValueError(f"{name} must be {limit}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{name} must be valid Unicode (no lone surrogates)") from None
    if max_bytes is not None and size > max_bytes:
        raise ValueError(f"{name} must be {limit}")
    return value


def _parse_departure(departure_time: object, departure_source: object) -> tuple[int | None, DepartureSource]:
    """(TRUE departure in UTC µs or None, its source) from the ev-status fields."""
    if departure_time is None:
        if departure_source is not None:
            raise ValueError("departure_source needs a departure_time")
        return None, DepartureSource.NONE
    if not isinstance(departure_time, str) or not validate_rfc3339(departure_time):
        raise ValueError("departure_time must be an RFC 3339 date-time with a time zone")
    source = "ev" if departure_source is None else departure_source
    if source not in DEPARTURE_SOURCES:
        raise ValueError(f"departure_source must be one of {', '.join(DEPARTURE_SOURCES)}")
    return parse_us(departure_time), DEPARTURE_SOURCES[source]


def _check_number(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")
    if not low <= value <= high:
        raise ValueError(f"{name} must be within {low:g}..{high:g}")
    return float(value)


class McuClock:
    """The MCU's clock derived from the TRUE clock: offset and drift, continuous across changes.

    State is one anchor (true_us, mcu_us) and a rate: mcu(t) = mcu_us + (t - true_us) * (1 + ppm/1e6).
    The anchor is taken lazily at the first reading (the sim's start), so with offset 0 and drift 0
    the MCU clock *is* the true clock, reading for reading.
    """

    def __init__(self, true_clock: Clock = system_clock_us, offset_s: float = 0.0, drift_ppm: float = 0.0) -> None:
        self.true_clock = true_clock
        self._offset_us = round(_check_number("offset_s", offset_s, -MAX_OFFSET_S, MAX_OFFSET_S) * 1e6)
        self._ppm = _check_number("drift_ppm", drift_ppm, -MAX_DRIFT_PPM, MAX_DRIFT_PPM)
        self._anchor: tuple[int, int] | None = None  # (true_us, mcu_us); replaced whole, read lock-free
        self._lock = threading.RLock()  # set() reads the clock (which may anchor it) under it

    @property
    def drift_ppm(self) -> float:
        return self._ppm

    def at(self, true_us: int) -> int:
        """The MCU clock reading at true time `true_us`."""
        anchor = self._anchor
        if anchor is None:
            with self._lock:
                if self._anchor is None:
                    self._anchor = (true_us, true_us + self._offset_us)
                anchor = self._anchor
        elapsed = true_us - anchor[0]
        ppm = self._ppm
        return anchor[1] + elapsed + (round(elapsed * ppm / 1e6) if ppm else 0)

    def now(self) -> int:
        return self.at(self.true_clock())

    def read_both(self) -> tuple[int, int]:
        """(true_us, mcu_us) from one reading of the true clock."""
        true_us = self.true_clock()
        return true_us, self.at(true_us)

    def set(self, offset_s: float | None = None, drift_ppm: float | None = None) -> int:
        """Change the clock now; returns the step of the MCU clock in µs (0 unless the offset is set).

        `offset_s` sets the MCU clock to true + offset_s *now* (the accumulated drift is absorbed);
        `drift_ppm` applies from now on. Both checked before either is applied.
        """
        if offset_s is not None:
            offset_us = round(_check_number("offset_s", offset_s, -MAX_OFFSET_S, MAX_OFFSET_S) * 1e6)
        if drift_ppm is not None:
            ppm = _check_number("drift_ppm", drift_ppm, -MAX_DRIFT_PPM, MAX_DRIFT_PPM)
        with self._lock:
            true_us = self.true_clock()
            before = self.at(true_us)
            after = true_us + offset_us if offset_s is not None else before
            self._anchor = (true_us, after)
            if drift_ppm is not None:
                self._ppm = ppm
            if offset_s is not None:
                self._offset_us = offset_us
            return after - before

    def status(self) -> dict:
        true_us, mcu_us = self.read_both()
        return {"drift_ppm": self._ppm, "offset_s": self._offset_us / 1e6,
                "mcu_minus_true_us": mcu_us - true_us, "true_us": true_us, "mcu_us": mcu_us}


@dataclass(slots=True)
class Fault:
    error_code: str
    vendor_error_code: str | None = None
    info: str | None = None

    def as_dict(self) -> dict:
        return {"error_code": self.error_code, "vendor_error_code": self.vendor_error_code, "info": self.info}


@dataclass(frozen=True, slots=True)
class EvBattery:
    """What the EV reported about its battery (ev-status); None where it reported nothing."""

    soc_tenths: int | None = None  # 0.1 % units, as on the wire
    capacity_wh: int | None = None
    departure_true_us: int | None = None  # TRUE time (UTC)
    departure_source: DepartureSource = DepartureSource.NONE

    def as_dict(self) -> dict:
        return {"soc_percent": None if self.soc_tenths is None else self.soc_tenths / 10,
                "battery_capacity_wh": self.capacity_wh,
                "departure_time": None if self.departure_true_us is None else format_us(self.departure_true_us),
                "departure_source": None if self.departure_true_us is None else self.departure_source.name.lower()}


@dataclass(slots=True)
class EvseState:
    connector_id: int = 1  # the connector last plugged (or addressed); records name it
    connected: bool = False
    authorized: bool = False
    bay_occupied: bool = False
    relay_closed: bool = False
    energy_flowing: bool = False
    data_signed: bool = False
    id_tag: str | None = None
    ev_power_w: float = 0.0  # what the EV draws when energy flows (its demand)
    faults: dict[str, Fault] = field(default_factory=dict)
    ev: EvBattery | None = None  # None until the plugged EV reports its battery state (ev-status)
    ev_reported: tuple | None = None  # the last EV_STATUS sent, to send one per change
    since_mcu_us: dict[Signal, int] = field(default_factory=dict)  # MCU clock at each signal's last edge

    @property
    def power_path_closed(self) -> bool:
        return self.connected and self.authorized

    @property
    def power_w(self) -> float:
        """Metered power: the EV's draw while energy flows, else 0."""
        return self.ev_power_w if self.energy_flowing else 0.0

    def as_dict(self, evse_id: int) -> dict:
        return {
            "evse_id": evse_id,
            "connector_id": self.connector_id,
            "connected": self.connected,
            "authorized": self.authorized,
            "bay_occupied": self.bay_occupied,
            "relay_closed": self.relay_closed,
            "energy_flowing": self.energy_flowing,
            "data_signed": self.data_signed,
            "power_path_closed": self.power_path_closed,
            "id_tag": self.id_tag,
            "power_w": self.power_w,
            "ev_power_w": self.ev_power_w,
            "faulted": bool(self.faults),
            "faults": [fault.as_dict() for fault in self.faults.values()],
            "ev": None if self.ev is None else self.ev.as_dict(),
        }


@dataclass(frozen=True, slots=True)
class SentRecord:
    """A record (SIGNAL, FAULT or EV_STATUS) with the sequence number it was sent under in its boot.

    `record.time_us` is the MCU clock (the wire value); `true_time_us` the TRUE time of the event.
    """

    seq: int
    record: SequencedRecord
    true_time_us: int | None = None

    @property
    def true_us(self) -> int:
        return self.record.time_us if self.true_time_us is None else self.true_time_us


@dataclass
class BootRing:
    """The unacknowledged records of one boot (the current one, or an earlier one kept over a reboot)."""

    boot_id: int
    next_seq: int = 1
    records: deque[SentRecord] = field(default_factory=deque)

    @property
    def oldest_seq(self) -> int:
        return self.records[0].seq if self.records else self.next_seq

    def ack(self, seq: int) -> None:
        while self.records and self.records[0].seq <= seq:
            self.records.popleft()


@dataclass
class CommandResult:
    """What one command did: the records to put on the line (in order) and the edges they caused."""

    records: list[SequencedRecord] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)  # seqs[i] numbers records[i]
    edges: list[dict] = field(default_factory=list)
    note: str | None = None
    true_times: list[int] = field(default_factory=list)  # true_times[i]: TRUE time of records[i]
    info: dict = field(default_factory=dict)  # command-specific answer fields (unlock_status, faults, ...)

    def sent(self) -> list[SentRecord]:
        return [SentRecord(seq, rec, true) for seq, rec, true in zip(self.seqs, self.records, self.true_times)]

    def extend(self, other: CommandResult) -> None:
        self.records += other.records
        self.seqs += other.seqs
        self.edges += other.edges
        self.true_times += other.true_times
        self.info.update(other.info)
        self.add_note(other.note)

    def add_note(self, note: str | None) -> None:
        if note:
            self.note = f"{self.note}; {note}" if self.note else note


def edge_dict(evse_id: int, reason: Condition, rising: bool, time_us: int) -> dict:
    event_type = EventType.START if rising else EventType.STOP
    return {"evse_id": evse_id, "trigger_reason": reason.value, "event_type": event_type.value,
            "timestamp": format_us(time_us)}


def _new_boot_id(avoid: Iterable[int] = ()) -> int:
    avoid = set(avoid)
    while True:
        boot_id = secrets.randbelow(0xFFFFFFFF) + 1  # non-zero u32
        if boot_id not in avoid:
            return boot_id


class SimulatedMcu:
    """EVSE state, sequence numbering and the unacknowledged-record ring of one simulated MCU."""

    def __init__(self, evse_count: int = DEFAULT_EVSE_COUNT, clock: Clock = system_clock_us,
                 boot_id: int | None = None, ring_size: int = DEFAULT_RING_SIZE,
                 firmware: str = FIRMWARE, clock_offset_s: float = 0.0, clock_drift_ppm: float = 0.0,
                 protocol_version: int = PROTOCOL_VERSION) -> None:
        if isinstance(evse_count, bool) or not isinstance(evse_count, int) or not 1 <= evse_count <= 255:
            raise ValueError("evse_count must be 1..255 (u8 on the wire)")
        if isinstance(ring_size, bool) or not isinstance(ring_size, int) or not 1 <= ring_size <= MAX_RING_SIZE:
            raise ValueError(f"ring_size must be 1..{MAX_RING_SIZE}")
        if protocol_version not in (1, PROTOCOL_VERSION):
            raise ValueError(f"protocol_version must be 1 or {PROTOCOL_VERSION}")
        self.protocol_version = protocol_version  # 1: an MCU of the first protocol (v1 re-reports, KEEPALIVE)
        self.evse_count = evse_count
        self.true_clock = clock
        self.mcu_clock = McuClock(clock, clock_offset_s, clock_drift_ppm)
        self.firmware = firmware
        self.evses: dict[int, EvseState] = {i: EvseState() for i in range(1, evse_count + 1)}
        self._ring_size = ring_size
        self._ring = BootRing(_new_boot_id() if boot_id is None else boot_id)
        self._previous: list[BootRing] = []  # earlier boots' unacked records, kept over `reboot(keep_ring=True)`
        self.last_acked_seq = 0
        self.overflowed = 0  # unacked records pushed out of the full ring: lost for replay
        self.reboots = 0
        self.local_list: dict[str, None] | None = None  # None: no list installed (every tag accepted)
        self.auth_cache: dict[str, None] = {}  # tags accepted since the last reset-authorization-cache

    @property
    def clock(self) -> Clock:
        """The TRUE clock (kept under its old name for callers that only need "now")."""
        return self.true_clock

    @property
    def boot_id(self) -> int:
        return self._ring.boot_id

    # -- commands (each returns a CommandResult) ------------------------------------------------
    def plug_connector(self, evse_id: int = 1, connector_id: int | None = None) -> CommandResult:
        evse = self._evse(evse_id, connector_id)
        result = CommandResult()
        if not evse.connected:
            self._emit(result, evse_id, Signal.EV_CONNECTED, True)
        return result

    def unplug_connector(self, evse_id: int = 1, connector_id: int | None = None) -> CommandResult:
        """Unplugging ends the session: energy, relay, connection, authorization, signed data."""
        self._evse(evse_id, connector_id)
        result = CommandResult()
        for signal in (Signal.ENERGY_FLOWING, Signal.RELAY_CLOSED, Signal.EV_CONNECTED,
                       Signal.AUTHORIZED, Signal.DATA_SIGNED):
            self._set(result, evse_id, signal, False)
        evse = self.evses[evse_id]
        evse.id_tag = None
        evse.ev_power_w = 0.0
        evse.ev = evse.ev_reported = None  # the EV is gone: EV_CONNECTED 0 says so, no EV_STATUS
        return result

    def unlock_connector(self, evse_id: int = 1, connector_id: int | None = None) -> CommandResult:
        """OCPP UnlockConnector: refused (no records) while a session is authorized on a connected EV
        (`OngoingAuthorizedTransaction`, as OCPP 2.0.1 answers); otherwise the cable is released and
        pulled out: like unplug-connector."""
        evse = self._evse(evse_id, connector_id)
        if evse.power_path_closed:
            result = CommandResult(info={"unlock_status": "OngoingAuthorizedTransaction"})
            result.note = "OngoingAuthorizedTransaction: stop the session (stop-session) before unlocking"
            return result
        if not evse.connected:
            return CommandResult(info={"unlock_status": "Unlocked"})
        result = self.unplug_connector(evse_id)
        result.info["unlock_status"] = "Unlocked"
        return result

    def authorize_id_tag(self, id_tag: str, evse_id: int = 1, connector_id: int | None = None) -> CommandResult:
        """Accepted unless a local authorization list is installed and the tag is not on it (then
        `id_tag_status` Invalid, a note, and nothing changes). The sim has no CSMS to ask."""
        if not isinstance(id_tag, str) or not 1 <= len(id_tag) <= MAX_ID_TAG:
            raise ValueError(f"id_tag must be a string of 1..{MAX_ID_TAG} characters")
        evse = self._evse(evse_id, connector_id)
        if self.local_list is not None and id_tag not in self.local_list:
            result = CommandResult(info={"id_tag_status": "Invalid"})
            result.note = f"id tag {id_tag!r} rejected: not in the local authorization list"
            return result
        result = CommandResult(info={"id_tag_status": "Accepted"})
        self.auth_cache[id_tag] = None
        if not evse.authorized:
            evse.id_tag = id_tag
            self._emit(result, evse_id, Signal.AUTHORIZED, True)
        return result

    def stop_session(self, evse_id: int = 1, connector_id: int | None = None) -> CommandResult:
        """Deauthorize: energy stops, the relay opens, authorization ends; the EV stays plugged."""
        self._evse(evse_id, connector_id)
        result = CommandResult()
        for signal in (Signal.ENERGY_FLOWING, Signal.RELAY_CLOSED, Signal.AUTHORIZED):
            self._set(result, evse_id, signal, False)
        self.evses[evse_id].id_tag = None
        self.evses[evse_id].ev_power_w = 0.0
        self._report_ev(result, evse_id)
        return result

    def start_session(self, evse_id: int = 1, connector_id: int | None = None,
                      id_tag: str = DEFAULT_ID_TAG) -> CommandResult:
        result = self.plug_connector(evse_id, connector_id)
        result.extend(self.authorize_id_tag(id_tag, evse_id, connector_id))
        if result.info.get("id_tag_status") == "Accepted":
            result.extend(self.ev_requests_energy(evse_id, connector_id))
        return result

    def ev_requests_energy(self, evse_id: int = 1, connector_id: int | None = None) -> CommandResult:
        evse = self._evse(evse_id, connector_id)
        result = CommandResult()
        if not self._may_flow(evse, result):
            return result
        if evse.ev_power_w == 0:
            evse.ev_power_w = DEFAULT_POWER_W
        self._set(result, evse_id, Signal.RELAY_CLOSED, True)
        self._set(result, evse_id, Signal.ENERGY_FLOWING, True)
        self._report_ev(result, evse_id)
        return result

    def ev_stops_energy(self, evse_id: int = 1, connector_id: int | None = None) -> CommandResult:
        """The EV suspends: energy stops, the relay stays closed."""
        evse = self._evse(evse_id, connector_id)
        result = CommandResult()
        self._set(result, evse_id, Signal.ENERGY_FLOWING, False)
        evse.ev_power_w = 0.0
        self._report_ev(result, evse_id)
        return result

    def power_update(self, power_w: float, evse_id: int = 1, connector_id: int | None = None) -> CommandResult:
        """The EV's power draw changed. 0 while energy flows = ev-stops-energy (relay stays closed);
        > 0 with the power path closed = ev-requests-energy at that power (relay closes, energy flows);
        > 0 otherwise is remembered as the EV's demand, with a note, and no energy flows."""
        power = _check_number("power_w", power_w, 0.0, MAX_POWER_W)
        evse = self._evse(evse_id, connector_id)
        result = CommandResult()
        evse.ev_power_w = power
        if power == 0:
            self._set(result, evse_id, Signal.ENERGY_FLOWING, False)
        elif self._may_flow(evse, result):
            self._set(result, evse_id, Signal.RELAY_CLOSED, True)
            self._set(result, evse_id, Signal.ENERGY_FLOWING, True)
        self._report_ev(result, evse_id)
        result.info["power_w"] = evse.power_w
        return result

    def ev_status(self, soc_percent: float | None = None, battery_capacity_wh: int | None = None,
                  departure_time: str | None = None, departure_source: str | None = None,
                  evse_id: int = 1, connector_id: int | None = None) -> CommandResult:
        """The plugged EV reports its battery state (ISO 15118 / CHAdeMO): one EV_STATUS if it changed.

        Each call replaces the whole report (an omitted field is unknown). Power comes from the
        simulated meter. Without an EV connected nothing is reported (a note says so)."""
        soc = None if soc_percent is None else round(_check_number("soc_percent", soc_percent, 0.0, 100.0) * 10)
        if battery_capacity_wh is not None and (isinstance(battery_capacity_wh, bool) or not isinstance(
                battery_capacity_wh, int) or not 1 <= battery_capacity_wh <= MAX_BATTERY_WH):
            raise ValueError(f"battery_capacity_wh must be an integer 1..{MAX_BATTERY_WH}")
        departure_us, source = _parse_departure(departure_time, departure_source)
        evse = self._evse(evse_id, connector_id)
        if not evse.connected:
            return CommandResult(note=f"no EV connected on EVSE {evse_id}: nothing to report")
        evse.ev = EvBattery(soc, battery_capacity_wh, departure_us, source)
        result = CommandResult()
        self._report_ev(result, evse_id)
        if not result.records:
            result.note = "the EV's status is unchanged: no record"
        result.info["ev"] = {**evse.ev.as_dict(), "power_w": evse.power_w}
        return result

    def parking_bay_occupied(self, evse_id: int = 1, connector_id: int | None = None) -> CommandResult:
        return self._set_only(evse_id, connector_id, Signal.BAY_OCCUPIED, True)

    def parking_bay_vacated(self, evse_id: int = 1, connector_id: int | None = None) -> CommandResult:
        return self._set_only(evse_id, connector_id, Signal.BAY_OCCUPIED, False)

    def data_signed(self, evse_id: int = 1, connector_id: int | None = None) -> CommandResult:
        return self._set_only(evse_id, connector_id, Signal.DATA_SIGNED, True)

    def inject_fault(self, error_code: str, vendor_error_code: str | None = None, info: str | None = None,
                     evse_id: int = 1, connector_id: int | None = None) -> CommandResult:
        """The EVSE faults: a FAULT record (raised), then energy stops and the relay opens (the EV stays
        connected and authorized); no energy flows until every fault is cleared and the EV asks
        again. Injecting an active code again replaces its vendor code and info (and sends it again)."""
        if error_code not in FAULT_CODES:
            raise ValueError(f"error_code must be one of {', '.join(FAULT_CODES)}")
        vendor_error_code = _check_text("vendor_error_code", vendor_error_code, MAX_VENDOR_ERROR_CODE,
                                        MAX_VENDOR_ERROR_CODE)
        info = _check_text("info", info, MAX_FAULT_INFO)
        evse = self._evse(evse_id, connector_id)
        result = CommandResult()
        fault = Fault(error_code, vendor_error_code, info)
        evse.faults[error_code] = fault
        self._emit_fault(result, evse_id, fault, active=True)
        self._set(result, evse_id, Signal.ENERGY_FLOWING, False)
        self._set(result, evse_id, Signal.RELAY_CLOSED, False)
        self._report_ev(result, evse_id)
        result.info["faults"] = [fault.as_dict() for fault in evse.faults.values()]
        return result

    def clear_fault(self, error_code: str | None = None, evse_id: int = 1,
                    connector_id: int | None = None) -> CommandResult:
        """Clear one fault (or all, without `error_code`): one FAULT record (cleared) per code cleared;
        energy does not resume by itself."""
        if error_code is not None and error_code not in FAULT_CODES:
            raise ValueError(f"error_code must be one of {', '.join(FAULT_CODES)}")
        evse = self._evse(evse_id, connector_id)
        result = CommandResult()
        cleared = list(evse.faults) if error_code is None else [error_code] if error_code in evse.faults else []
        if error_code is not None and not cleared:
            result.note = f"{error_code} is not active on EVSE {evse_id}"
        for code in cleared:
            self._emit_fault(result, evse_id, evse.faults.pop(code), active=False)
        result.info.update(cleared=cleared, faults=[fault.as_dict() for fault in evse.faults.values()])
        return result

    def reset_authorization_cache(self) -> CommandResult:
        """OCPP ClearCache: forget the tags accepted so far (acceptance itself depends only on the
        local list: the sim has no CSMS, so without a list every tag is accepted)."""
        cleared = len(self.auth_cache)
        self.auth_cache.clear()
        return CommandResult(info={"cleared": cleared})

    def send_local_authorization_list(self, id_tags: list[str]) -> CommandResult:
        """Install a full local list (replacing any); with one installed, only listed tags are
        accepted. An empty list is no list (OCPP: a full update with no entries clears it)."""
        if not isinstance(id_tags, list) or len(id_tags) > MAX_LOCAL_LIST or any(
                not isinstance(tag, str) or not 1 <= len(tag) <= MAX_ID_TAG for tag in id_tags):
            raise ValueError(f"id_tags must be a list of at most {MAX_LOCAL_LIST} id tags of 1..{MAX_ID_TAG} "
                             "characters")
        self.local_list = dict.fromkeys(id_tags) if id_tags else None
        return CommandResult(info={"list_size": len(self.local_list or ())})

    def clear_local_authorization_list(self) -> CommandResult:
        cleared = len(self.local_list or ())
        self.local_list = None
        return CommandResult(info={"cleared": cleared, "list_size": 0})

    def clock_set(self, offset_s: float | None = None, drift_ppm: float | None = None) -> CommandResult:
        step = self.mcu_clock.set(offset_s, drift_ppm)
        return CommandResult(info={"step_us": step, "clock": self.mcu_clock.status()})

    # -- reboot -------------------------------------------------------------------------------------
    def reboot(self, keep_ring: bool = False, boot_id: int | None = None, warm: bool = False) -> dict:
        """A new boot: random boot id, seq from 1, faults gone. Cable and parked car keep their level;
        a cold boot loses the rest (authorization, relay, energy, signed data: 0, with their TRUE
        edges at the reboot in "edges"), a warm one keeps it and the times of the signals' edges
        (sim/boot_report.py). The new boot's first records report every level ("sent"). The local
        authorization list and the cache survive (flash). With `keep_ring` the unacknowledged records
        of this and earlier boots are kept for replay under their boot ids; else they are lost."""
        old = self._ring
        kept = lost = 0
        if keep_ring:
            if old.records:
                self._previous.append(old)
            kept = sum(len(ring.records) for ring in self._previous)
        else:
            lost = len(old.records) + sum(len(ring.records) for ring in self._previous)
            self._previous.clear()
        avoid = {old.boot_id, *(ring.boot_id for ring in self._previous)}
        self._ring = BootRing(_new_boot_id(avoid) if boot_id is None else boot_id)
        self.last_acked_seq = 0
        self.reboots += 1
        result = CommandResult()
        true_us, mcu_us = self.mcu_clock.read_both()
        for evse_id, evse in self.evses.items():
            evse.faults.clear()
            if not warm:
                for signal in LOST_BY_COLD_BOOT:
                    self._change(result, evse_id, signal, False, true_us)
                evse.id_tag, evse.ev_power_w, evse.ev, evse.ev_reported = None, 0.0, None, None
                evse.since_mcu_us.clear()  # RAM: a cold boot knows no edge time
            levels = {signal: getattr(evse, attr) for signal, attr in _SIGNAL_ATTR.items()}
            for record in level_records(evse_id, evse.connector_id, levels, evse.since_mcu_us, mcu_us, warm,
                                        self.protocol_version):
                self._push(result, record, true_us)
        return {"previous_boot_id": old.boot_id, "boot_id": self.boot_id, "kept": kept, "lost": lost,
                "warm": warm, "edges": result.edges, "sent": result.sent()}

    # -- the host side of the link ---------------------------------------------------------------
    def ack(self, boot_id: int, seq: int) -> bool:
        """The host persisted everything up to `seq` of boot `boot_id`; False if it named no boot we hold."""
        if boot_id == self._ring.boot_id:
            self._ring.ack(seq)
            self.last_acked_seq = max(self.last_acked_seq, min(seq, self._ring.next_seq - 1))
            return True
        for ring in self._previous:
            if ring.boot_id == boot_id:
                ring.ack(seq)
                self._previous = [r for r in self._previous if r.records]
                return True
        return False

    def unacked(self) -> list[SentRecord]:
        """Sent but unacknowledged records of this boot, oldest first (what a HOST_HELLO gets replayed)."""
        return list(self._ring.records)

    def previous_boots(self) -> list[BootRing]:
        """Earlier boots whose unacknowledged records were kept over a reboot, oldest boot first."""
        return [BootRing(r.boot_id, r.next_seq, deque(r.records)) for r in self._previous]

    @property
    def ring_size(self) -> int:
        return self._ring_size

    @property
    def next_seq(self) -> int:
        return self._ring.next_seq

    @property
    def oldest_seq(self) -> int:
        return self._ring.oldest_seq

    def status(self) -> dict:
        return {
            "boot_id": self.boot_id,
            "firmware": self.firmware,
            "evse_count": self.evse_count,
            "next_seq": self.next_seq,
            "oldest_seq": self.oldest_seq,
            "last_acked_seq": self.last_acked_seq,
            "unacked": len(self._ring.records),
            "ring_size": self._ring_size,
            "ring_overflowed": self.overflowed,
            "reboots": self.reboots,
            "protocol_version": self.protocol_version,
            "previous_boots": [{"boot_id": r.boot_id, "oldest_seq": r.oldest_seq, "next_seq": r.next_seq,
                                "unacked": len(r.records)} for r in self._previous],
            "clock": self.mcu_clock.status(),
            "local_authorization_list": None if self.local_list is None else list(self.local_list),
            "authorization_cache": list(self.auth_cache),
            "evses": [evse.as_dict(evse_id) for evse_id, evse in self.evses.items()],
        }

    # -- internals --------------------------------------------------------------------------------
    def _evse(self, evse_id: int, connector_id: int | None) -> EvseState:
        if isinstance(evse_id, bool) or not isinstance(evse_id, int) or evse_id not in self.evses:
            raise ValueError(f"evse_id must be 1..{self.evse_count}")
        evse = self.evses[evse_id]
        if connector_id is not None:
            if isinstance(connector_id, bool) or not isinstance(connector_id, int) \
                    or not 1 <= connector_id <= MAX_CONNECTOR_ID:
                raise ValueError(f"connector_id must be 1..{MAX_CONNECTOR_ID}")
            evse.connector_id = connector_id
        return evse

    @staticmethod
    def _may_flow(evse: EvseState, result: CommandResult) -> bool:
        """Whether energy may start; if not, say why in the note."""
        if not evse.power_path_closed:
            result.add_note("power path is not closed (EV must be connected and authorized); no energy")
            return False
        if evse.faults:
            result.add_note(f"EVSE is faulted ({', '.join(evse.faults)}); no energy until clear-fault")
            return False
        return True

    def _set_only(self, evse_id: int, connector_id: int | None, signal: Signal, state: bool) -> CommandResult:
        self._evse(evse_id, connector_id)
        result = CommandResult()
        self._set(result, evse_id, signal, state)
        return result

    def _set(self, result: CommandResult, evse_id: int, signal: Signal, state: bool) -> None:
        """Emit a record only if the signal actually changes (commands are idempotent)."""
        if getattr(self.evses[evse_id], _SIGNAL_ATTR[signal]) != state:
            self._emit(result, evse_id, signal, state)

    def _emit(self, result: CommandResult, evse_id: int, signal: Signal, state: bool) -> None:
        evse = self.evses[evse_id]
        true_us, mcu_us = self.mcu_clock.read_both()  # one reading: the hardware saw the change now
        evse.since_mcu_us[signal] = mcu_us
        self._change(result, evse_id, signal, state, true_us)
        self._push(result, SignalRecord(evse_id, evse.connector_id, signal, state, mcu_us), true_us)

    def _change(self, result: CommandResult, evse_id: int, signal: Signal, state: bool, true_us: int) -> None:
        """Set a signal and add the edges it makes by the sim's own rules (nothing if it is unchanged)."""
        evse = self.evses[evse_id]
        if getattr(evse, _SIGNAL_ATTR[signal]) == state:
            return
        ppc_before = evse.power_path_closed
        setattr(evse, _SIGNAL_ATTR[signal], state)
        reason = _SIGNAL_REASON.get(signal)
        if reason is not None and (state or reason is not Condition.DATA_SIGNED):
            result.edges.append(edge_dict(evse_id, reason, state, true_us))
        if evse.power_path_closed != ppc_before:
            result.edges.append(edge_dict(evse_id, Condition.POWER_PATH_CLOSED, not ppc_before, true_us))

    def _emit_fault(self, result: CommandResult, evse_id: int, fault: Fault, active: bool) -> None:
        """A FAULT record: raised with the fault's texts (info cut to fit the frame), cleared with its codes."""
        true_us, mcu_us = self.mcu_clock.read_both()
        vendor = fault.vendor_error_code or None
        info = fit_fault_info(fault.error_code, vendor, fault.info) if active else None
        self._push(result, FaultRecord(evse_id, self.evses[evse_id].connector_id, active, fault.error_code,
                                       vendor, info, mcu_us), true_us)

    def _report_ev(self, result: CommandResult, evse_id: int) -> None:
        """One EV_STATUS if the EV reports its battery state and what it would say has changed."""
        evse = self.evses[evse_id]
        if evse.ev is None:
            return
        ev = evse.ev
        report = (ev.soc_tenths, round(evse.power_w), ev.capacity_wh, ev.departure_true_us, ev.departure_source)
        if report == evse.ev_reported:
            return
        evse.ev_reported = report
        true_us, mcu_us = self.mcu_clock.read_both()
        departure = None if ev.departure_true_us is None else self.mcu_clock.at(ev.departure_true_us)
        record = EvStatusRecord(evse_id, evse.connector_id, mcu_us,
                                None if ev.soc_tenths is None else ev.soc_tenths / 10, round(evse.power_w),
                                ev.capacity_wh, departure, ev.departure_source)
        self._push(result, record, true_us)

    def _push(self, result: CommandResult, record: SequencedRecord, true_us: int) -> None:
        """Number the record, keep it in the ring until acknowledged, and add it to the result."""
        ring = self._ring
        seq = ring.next_seq
        ring.next_seq += 1
        ring.records.append(SentRecord(seq, record, true_us))
        self._trim_ring()
        result.records.append(record)
        result.seqs.append(seq)
        result.true_times.append(true_us)

    def _trim_ring(self) -> None:
        """One ring for all boots: past its size the oldest record (oldest boot first) is lost."""
        excess = len(self._ring.records) + sum(len(r.records) for r in self._previous) - self._ring_size
        while excess > 0:
            oldest = self._previous[0] if self._previous else self._ring
            oldest.records.popleft()
            self.overflowed += 1
            excess -= 1
            if self._previous and not self._previous[0].records:
                self._previous.pop(0)


#: Command name (kebab-case, as in the URL) -> SimulatedMcu method name.
COMMANDS: dict[str, str] = {
    "plug-connector": "plug_connector",
    "unplug-connector": "unplug_connector",
    "unlock-connector": "unlock_connector",
    "authorize-id-tag": "authorize_id_tag",
    "start-session": "start_session",
    "stop-session": "stop_session",
    "ev-requests-energy": "ev_requests_energy",
    "ev-stops-energy": "ev_stops_energy",
    "power-update": "power_update",
    "ev-status": "ev_status",
    "parking-bay-occupied": "parking_bay_occupied",
    "parking-bay-vacated": "parking_bay_vacated",
    "data-signed": "data_signed",
    "inject-fault": "inject_fault",
    "clear-fault": "clear_fault",
    "reset-authorization-cache": "reset_authorization_cache",
    "send-local-authorization-list": "send_local_authorization_list",
    "clear-local-authorization-list": "clear_local_authorization_list",
    "clock-set": "clock_set",
}


def run_command(mcu: SimulatedMcu, name: str, event: dict) -> CommandResult:
    """Run a command by its URL name with an already validated event (keys = method keywords)."""
    return getattr(mcu, COMMANDS[name])(**event)
