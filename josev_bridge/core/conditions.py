"""The vocabulary: the Josev request's enums, the MCU's hardware signals, and the edges between them.

The six trigger reasons are OCPP 2.0.1's TxStartPoint/TxStopPoint values. The MCU reports raw
signals; the bridge turns them into condition edges. PowerPathClosed is not a hardware signal but
`EVConnected AND Authorized`; the relay's own closing is kept as the separate condition RelayClosed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum


class EventType(str, Enum):
    START = "TxEventStart"
    STOP = "TxEventStop"


class Condition(str, Enum):
    """A boolean fact about one EVSE whose rising and falling edges the bridge keeps."""

    EV_CONNECTED = "EVConnected"
    AUTHORIZED = "Authorized"
    PARKING_BAY_OCCUPANCY = "ParkingBayOccupancy"
    POWER_PATH_CLOSED = "PowerPathClosed"
    ENERGY_TRANSFER = "EnergyTransfer"
    DATA_SIGNED = "DataSigned"
    RELAY_CLOSED = "RelayClosed"  # not a trigger reason: the relay-confirmed time, kept for diagnosis


#: The values of `trigger_reason` in the Josev request, in the seed's order.
TRIGGER_REASONS: tuple[Condition, ...] = (
    Condition.EV_CONNECTED,
    Condition.AUTHORIZED,
    Condition.PARKING_BAY_OCCUPANCY,
    Condition.POWER_PATH_CLOSED,
    Condition.ENERGY_TRANSFER,
    Condition.DATA_SIGNED,
)

#: Trigger reasons that have no TxEventStop meaning (OCPP 2.0.1: DataSigned is not a stop point).
START_ONLY: frozenset[Condition] = frozenset({Condition.DATA_SIGNED})


class Signal(IntEnum):
    """Hardware signals as numbered on the serial line (docs/serial-protocol.md)."""

    EV_CONNECTED = 1  # control pilot left state A: cable connected at both ends
    AUTHORIZED = 2  # driver or EV authorized at the MCU (RFID, button, plug-and-charge)
    BAY_OCCUPIED = 3  # parking-bay detector sees a vehicle
    RELAY_CLOSED = 4  # contactor feedback confirms the power relay closed
    ENERGY_FLOWING = 5  # metered current above the MCU's threshold
    DATA_SIGNED = 6  # fiscal meter delivered signed data for this session (falls at session end)


SIGNAL_CONDITION: dict[Signal, Condition] = {
    Signal.EV_CONNECTED: Condition.EV_CONNECTED,
    Signal.AUTHORIZED: Condition.AUTHORIZED,
    Signal.BAY_OCCUPIED: Condition.PARKING_BAY_OCCUPANCY,
    Signal.RELAY_CLOSED: Condition.RELAY_CLOSED,
    Signal.ENERGY_FLOWING: Condition.ENERGY_TRANSFER,
    Signal.DATA_SIGNED: Condition.DATA_SIGNED,
}


@dataclass(frozen=True, slots=True)
class SignalRecord:
    """One MCU event record: a signal of one EVSE changed (or was re-asserted) at hardware time `time_us`."""

    evse_id: int
    connector_id: int
    signal: Signal
    state: bool
    time_us: int  # microseconds since the Unix epoch, UTC, by the MCU's clock


@dataclass(frozen=True, slots=True)
class LevelRecord:
    """The MCU says what a signal's level *is* without having seen it change: after its boot it
    re-reports every signal this way (protocol version 2). Not an edge: the bridge keeps the edge it
    knew when the level is the one it knew before the reboot (docs/serial-protocol.md §4.3)."""

    evse_id: int
    connector_id: int
    signal: Signal
    state: bool
    time_us: int  # MCU clock when the level was read
    age_us: int | None = None  # how long the level had held at time_us, in MCU clock µs; None: unknown


@dataclass(frozen=True, slots=True)
class Edge:
    """A condition of one EVSE became true (`rising`) or stopped being true at `time_us`."""

    evse_id: int
    condition: Condition
    rising: bool
    time_us: int

    @property
    def event_type(self) -> EventType:
        return EventType.START if self.rising else EventType.STOP
