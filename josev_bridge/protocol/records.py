"""Typed records carried in frames, and their byte layouts (little-endian, see docs/serial-protocol.md)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from ..core.conditions import Signal, SignalRecord
from .framing import Frame, encode_frame


class FrameType(IntEnum):
    HELLO = 0x01  # MCU -> host, first frame after MCU boot and answer to HOST_HELLO
    SIGNAL = 0x02  # MCU -> host, one hardware event record
    KEEPALIVE = 0x03  # both ways, every second
    ACK = 0x04  # host -> MCU, records up to seq are persisted
    HOST_HELLO = 0x05  # host -> MCU, sent when the host (re)opens the port


_HELLO = struct.Struct("<BIB")  # protocol version, boot id, length of firmware version string
_SIGNAL = struct.Struct("<BBBBq")  # evse, connector, signal, state, time_us
_KEEPALIVE = struct.Struct("<q")  # sender's clock, us since epoch (0 = unknown)
_ACK = struct.Struct("<II")  # boot id, highest persisted seq
_HOST_HELLO = struct.Struct("<B")  # protocol version


@dataclass(frozen=True, slots=True)
class Hello:
    protocol_version: int
    boot_id: int
    firmware: str


@dataclass(frozen=True, slots=True)
class KeepAlive:
    time_us: int


@dataclass(frozen=True, slots=True)
class Ack:
    boot_id: int
    seq: int


@dataclass(frozen=True, slots=True)
class HostHello:
    protocol_version: int


@dataclass(frozen=True, slots=True)
class Unknown:
    """A frame with a type this version does not know: skipped, counted, never fatal."""

    type: int


class RecordError(ValueError):
    """A checksummed frame whose body does not fit its type (an MCU bug, not line noise)."""


Record = Hello | SignalRecord | KeepAlive | Ack | HostHello | Unknown


def decode(frame: Frame) -> Record:
    body = frame.body
    try:
        kind = FrameType(frame.type)
    except ValueError:
        return Unknown(frame.type)
    try:
        if kind is FrameType.SIGNAL:
            evse, connector, signal, state, time_us = _SIGNAL.unpack(body)
            if state not in (0, 1):
                raise RecordError(f"signal state must be 0 or 1, got {state}")
            return SignalRecord(evse, connector, Signal(signal), bool(state), time_us)
        if kind is FrameType.KEEPALIVE:
            return KeepAlive(*_KEEPALIVE.unpack(body))
        if kind is FrameType.HELLO:
            version, boot_id, n = _HELLO.unpack_from(body)
            if len(body) != _HELLO.size + n:
                raise RecordError(f"HELLO body is {len(body)} bytes, header says {_HELLO.size + n}")
            return Hello(version, boot_id, body[_HELLO.size:].decode("ascii", "replace"))
        if kind is FrameType.ACK:
            return Ack(*_ACK.unpack(body))
        return HostHello(*_HOST_HELLO.unpack(body))
    except struct.error as exc:
        raise RecordError(f"{kind.name} body of {len(body)} bytes: {exc}") from None
    except ValueError as exc:  # unknown Signal number
        raise RecordError(f"{kind.name}: {exc}") from None


def encode(record: Record, seq: int) -> bytes:
    """Encode a record as line bytes (frame + delimiter)."""
    if isinstance(record, SignalRecord):
        body = _SIGNAL.pack(record.evse_id, record.connector_id, int(record.signal), int(record.state), record.time_us)
        return encode_frame(FrameType.SIGNAL, seq, body)
    if isinstance(record, KeepAlive):
        return encode_frame(FrameType.KEEPALIVE, seq, _KEEPALIVE.pack(record.time_us))
    if isinstance(record, Hello):
        fw = record.firmware.encode("ascii")[:255]
        return encode_frame(FrameType.HELLO, seq, _HELLO.pack(record.protocol_version, record.boot_id, len(fw)) + fw)
    if isinstance(record, Ack):
        return encode_frame(FrameType.ACK, seq, _ACK.pack(record.boot_id, record.seq))
    if isinstance(record, HostHello):
        return encode_frame(FrameType.HOST_HELLO, seq, _HOST_HELLO.pack(record.protocol_version))
    raise TypeError(f"cannot encode {record!r}")
