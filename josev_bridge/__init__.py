"""josev-bridge: hardware event timestamps for Josev's OCPP service, from the charge-controller MCU."""

__version__ = "0.1.0"
