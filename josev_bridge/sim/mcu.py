"""The simulated MCU as a pure state machine: commands in, hardware signal records and OCPP edges out.

No I/O and no threads: the caller serialises access. The edges are computed here by the sim's own
small rules, deliberately not by `core.edge_store`, so that the bridge's edge logic is tested
against an independent truth.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from .. import __version__
from ..core.conditions import Condition, EventType, Signal, SignalRecord
from ..core.timestamps import format_us

Clock = Callable[[], int]

FIRMWARE = f"josev-sim {__version__}"
DEFAULT_ID_TAG = "SIM-TAG"
MAX_ID_TAG = 36  # OCPP IdToken length
MAX_CONNECTOR_ID = 255  # u8 on the wire
DEFAULT_RING_SIZE = 4096

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
    """Microseconds since the Unix epoch, UTC (the MCU's RTC)."""
    return time.time_ns() // 1000


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

    @property
    def power_path_closed(self) -> bool:
        return self.connected and self.authorized

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
        }


@dataclass(frozen=True, slots=True)
class SentRecord:
    """A signal record with the sequence number it was sent under in this boot."""

    seq: int
    record: SignalRecord


@dataclass
class CommandResult:
    """What one command did: the records to put on the line (in order) and the edges they caused."""

    records: list[SignalRecord] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)  # seqs[i] numbers records[i]
    edges: list[dict] = field(default_factory=list)
    note: str | None = None

    def sent(self) -> list[SentRecord]:
        return [SentRecord(seq, rec) for seq, rec in zip(self.seqs, self.records)]

    def extend(self, other: "CommandResult") -> None:
        self.records += other.records
        self.seqs += other.seqs
        self.edges += other.edges
        self.note = self.note or other.note


def edge_dict(evse_id: int, reason: Condition, rising: bool, time_us: int) -> dict:
    event_type = EventType.START if rising else EventType.STOP
    return {"evse_id": evse_id, "trigger_reason": reason.value, "event_type": event_type.value,
            "timestamp": format_us(time_us)}


class SimulatedMcu:
    """EVSE state, sequence numbering and the unacknowledged-record ring of one simulated MCU boot."""

    def __init__(self, evse_count: int = 2, clock: Clock = system_clock_us,
                 boot_id: int | None = None, ring_size: int = DEFAULT_RING_SIZE,
                 firmware: str = FIRMWARE) -> None:
        if not 1 <= evse_count <= 255:
            raise ValueError("evse_count must be 1..255 (u8 on the wire)")
        self.evse_count = evse_count
        self.clock = clock
        self.boot_id = secrets.randbelow(0xFFFFFFFF) + 1 if boot_id is None else boot_id  # non-zero u32
        self.firmware = firmware
        self.evses: dict[int, EvseState] = {i: EvseState() for i in range(1, evse_count + 1)}
        self._next_seq = 1
        self._unacked: deque[SentRecord] = deque(maxlen=ring_size)
        self.last_acked_seq = 0
        self.overflowed = 0  # unacked records pushed out of the full ring: lost for replay

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
        self.evses[evse_id].id_tag = None
        return result

    def authorize_id_tag(self, id_tag: str, evse_id: int = 1, connector_id: int | None = None) -> CommandResult:
        if not isinstance(id_tag, str) or not 1 <= len(id_tag) <= MAX_ID_TAG:
            raise ValueError(f"id_tag must be a string of 1..{MAX_ID_TAG} characters")
        evse = self._evse(evse_id, connector_id)
        result = CommandResult()
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
        return result

    def start_session(self, evse_id: int = 1, connector_id: int | None = None,
                      id_tag: str = DEFAULT_ID_TAG) -> CommandResult:
        result = self.plug_connector(evse_id, connector_id)
        result.extend(self.authorize_id_tag(id_tag, evse_id, connector_id))
        result.extend(self.ev_requests_energy(evse_id, connector_id))
        return result

    def ev_requests_energy(self, evse_id: int = 1, connector_id: int | None = None) -> CommandResult:
        evse = self._evse(evse_id, connector_id)
        result = CommandResult()
        if not evse.power_path_closed:
            result.note = "power path is not closed (EV must be connected and authorized); no energy"
            return result
        self._set(result, evse_id, Signal.RELAY_CLOSED, True)
        self._set(result, evse_id, Signal.ENERGY_FLOWING, True)
        return result

    def ev_stops_energy(self, evse_id: int = 1, connector_id: int | None = None) -> CommandResult:
        """The EV suspends: energy stops, the relay stays closed."""
        self._evse(evse_id, connector_id)
        result = CommandResult()
        self._set(result, evse_id, Signal.ENERGY_FLOWING, False)
        return result

    def parking_bay_occupied(self, evse_id: int = 1, connector_id: int | None = None) -> CommandResult:
        return self._set_only(evse_id, connector_id, Signal.BAY_OCCUPIED, True)

    def parking_bay_vacated(self, evse_id: int = 1, connector_id: int | None = None) -> CommandResult:
        return self._set_only(evse_id, connector_id, Signal.BAY_OCCUPIED, False)

    def data_signed(self, evse_id: int = 1, connector_id: int | None = None) -> CommandResult:
        return self._set_only(evse_id, connector_id, Signal.DATA_SIGNED, True)

    # -- the host side of the link ---------------------------------------------------------------
    def ack(self, boot_id: int, seq: int) -> bool:
        """The host persisted everything up to `seq` of boot `boot_id`; False if it named another boot."""
        if boot_id != self.boot_id:
            return False
        while self._unacked and self._unacked[0].seq <= seq:
            self._unacked.popleft()
        self.last_acked_seq = max(self.last_acked_seq, min(seq, self._next_seq - 1))
        return True

    def unacked(self) -> list[SentRecord]:
        """Sent but unacknowledged records, oldest first (what a HOST_HELLO gets replayed)."""
        return list(self._unacked)

    @property
    def ring_size(self) -> int:
        return self._unacked.maxlen or 0

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def status(self) -> dict:
        return {
            "boot_id": self.boot_id,
            "firmware": self.firmware,
            "evse_count": self.evse_count,
            "next_seq": self._next_seq,
            "last_acked_seq": self.last_acked_seq,
            "unacked": len(self._unacked),
            "ring_overflowed": self.overflowed,
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
        time_us = self.clock()
        ppc_before = evse.power_path_closed
        setattr(evse, _SIGNAL_ATTR[signal], state)
        record = SignalRecord(evse_id, evse.connector_id, signal, state, time_us)
        seq = self._next_seq
        self._next_seq += 1
        if len(self._unacked) == self._unacked.maxlen:
            self.overflowed += 1
        self._unacked.append(SentRecord(seq, record))
        result.records.append(record)
        result.seqs.append(seq)
        reason = _SIGNAL_REASON.get(signal)
        if reason is not None and (state or reason is not Condition.DATA_SIGNED):
            result.edges.append(edge_dict(evse_id, reason, state, time_us))
        if evse.power_path_closed != ppc_before:
            result.edges.append(edge_dict(evse_id, Condition.POWER_PATH_CLOSED, not ppc_before, time_us))


#: Command name (kebab-case, as in the URL) -> SimulatedMcu method name.
COMMANDS: dict[str, str] = {
    "plug-connector": "plug_connector",
    "unplug-connector": "unplug_connector",
    "authorize-id-tag": "authorize_id_tag",
    "start-session": "start_session",
    "stop-session": "stop_session",
    "ev-requests-energy": "ev_requests_energy",
    "ev-stops-energy": "ev_stops_energy",
    "parking-bay-occupied": "parking_bay_occupied",
    "parking-bay-vacated": "parking_bay_vacated",
    "data-signed": "data_signed",
}


def run_command(mcu: SimulatedMcu, name: str, event: dict) -> CommandResult:
    """Run a command by its URL name with an already validated event (keys = method keywords)."""
    return getattr(mcu, COMMANDS[name])(**event)
