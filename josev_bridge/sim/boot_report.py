"""What a rebooted simulated MCU does to its signals, and what it tells the host about them.

A reboot of the MCU is not a reboot of the car park: a plugged cable stays plugged and a parked car
stays parked, so EV_CONNECTED and BAY_OCCUPIED keep their level. What the MCU held only in RAM goes
with a **cold** boot: the authorization, and with it the relay and the energy (the MCU opens the
contactor while it resets), and the signed-data session. A **warm** boot (a watchdog reset that keeps
retained RAM and a running timer) keeps all of it, and the time of each signal's last edge.

After the boot the MCU reports every level (docs/serial-protocol.md §4.3): protocol version 2 with a
LEVEL per signal, 0s included, and the age of the level when the warm boot kept it; version 1, as
that version's MCUs did, with a SIGNAL for every signal that is 1 (which the host cannot tell from
an edge: the reason version 2 exists).
"""

from __future__ import annotations

from ..core.conditions import LevelRecord, Signal, SignalRecord

#: The signals a cold boot drops to 0 (RAM state, and the contactor the MCU opens while it resets);
#: the others are physical (cable, parked car) and keep their level.
LOST_BY_COLD_BOOT: tuple[Signal, ...] = (Signal.ENERGY_FLOWING, Signal.RELAY_CLOSED, Signal.AUTHORIZED,
                                         Signal.DATA_SIGNED)


def level_records(evse_id: int, connector_id: int, levels: dict[Signal, bool], since_mcu_us: dict[Signal, int],
                  mcu_us: int, warm: bool, protocol_version: int) -> list[SignalRecord | LevelRecord]:
    """The records that report one EVSE's levels after a boot, in signal order.

    `since_mcu_us` is the MCU clock at each signal's last edge, as far as this boot knows it (a warm
    boot kept them; the sim's MCU clock runs on through a reboot, like an RTC or a timer a warm reset
    does not clear): the age is sent only when it is known, never estimated.
    """
    out: list[SignalRecord | LevelRecord] = []
    for signal in Signal:
        state = levels[signal]
        if protocol_version < 2:
            if state:  # version 1: a SIGNAL for every 1, nothing for the 0s
                out.append(SignalRecord(evse_id, connector_id, signal, True, mcu_us))
            continue
        since = since_mcu_us.get(signal) if warm else None
        age = mcu_us - since if since is not None and mcu_us > since else None
        out.append(LevelRecord(evse_id, connector_id, signal, state, mcu_us, age))
    return out
