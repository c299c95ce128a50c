"""The MCU link's state as the serial link reports it and the ingest records it. Pure."""

from __future__ import annotations

from enum import Enum


class LinkState(str, Enum):
    CLOSED = "closed"  # port not open (never opened, or lost and waiting to reopen)
    OPEN = "open"  # port open, MCU heard within the silence timeout
    SILENT = "silent"  # port open, but no frame from the MCU for mcu_silence_timeout
