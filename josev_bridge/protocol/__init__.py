"""The MCU serial protocol (docs/serial-protocol.md): pure encoding and decoding, no I/O."""
