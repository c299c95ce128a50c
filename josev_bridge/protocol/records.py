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
    CLOCK_PROBE = 0x06  # host -> MCU, answered at once with CLOCK_REPLY
    CLOCK_REPLY = 0x07  # MCU -> host, the MCU clock when the probe arrived


_HELLO = struct.Struct("<BIB")  # protocol version, boot id, length of firmware version string
_HELLO_RING = struct.Struct("<II")  # after the firmware string: oldest seq held, next seq (optional)
_SIGNAL = struct.Struct("<BBBBq")  # evse, connector, signal, state, time_us
_KEEPALIVE = struct.Struct("<q")  # sender's clock, us since epoch (0 = unknown)
_ACK = struct.Struct("<II")  # boot id, highest persisted seq
_HOST_HELLO = struct.Struct("<B")  # protocol version
_CLOCK_PROBE = struct.Struct("<I")  # probe id
_CLOCK_REPLY = struct.Struct("<Iq")  # probe id, MCU clock in us


@dataclass(frozen=True, slots=True)
class Hello:
    protocol_version: int
    boot_id: int
    firmware: str
    oldest_seq: int | None = None  # the oldest record still in the MCU's ring (== next_seq when empty)
    next_seq: int | None = None  # the seq the MCU's next record will get


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
class ClockProbe:
    probe_id: int


@dataclass(frozen=True, slots=True)
class ClockReply:
    probe_id: int
    mcu_time_us: int


@dataclass(frozen=True, slots=True)
class Unknown:
    """A frame with a type this version does not know: skipped, counted, never fatal."""

    type: int


class RecordError(ValueError):
    """A checksummed frame whose body does not fit its type (an MCU bug, not line noise)."""


Record = Hello | SignalRecord | KeepAlive | Ack | HostHello | ClockProbe | ClockReply | Unknown


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
            end = _HELLO.size + n
            firmware = body[_HELLO.size:end].decode("ascii", "replace")
            if len(body) == end:  # an MCU that does not report its ring
                return Hello(version, boot_id, firmware)
            if len(body) != end + _HELLO_RING.size:
                raise RecordError(f"HELLO body is {len(body)} bytes, expected {end} or {end + _HELLO_RING.size}")
            return Hello(version, boot_id, firmware, *_HELLO_RING.unpack_from(body, end))
        if kind is FrameType.CLOCK_PROBE:
            return ClockProbe(*_CLOCK_PROBE.unpack(body))
        if kind is FrameType.CLOCK_REPLY:
            return ClockReply(*_CLOCK_REPLY.unpack(body))
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
        fw = record.firmware.encode("ascii", "replace")[:255]
        body = _HELLO.pack(record.protocol_version, record.boot_id, len(fw)) + fw
        if record.oldest_seq is not None and record.next_seq is not None:
            body += _HELLO_RING.pack(record.oldest_seq, record.next_seq)
        return encode_frame(FrameType.HELLO, seq, body)
    if isinstance(record, ClockProbe):
        return encode_frame(FrameType.CLOCK_PROBE, seq, _CLOCK_PROBE.pack(record.probe_id))
    if isinstance(record, ClockReply):
        return encode_frame(FrameType.CLOCK_REPLY, seq, _CLOCK_REPLY.pack(record.probe_id, record.mcu_time_us))
    if isinstance(record, Ack):
        return encode_frame(FrameType.ACK, seq, _ACK.pack(record.boot_id, record.seq))
    if isinstance(record, HostHello):
        return encode_frame(FrameType.HOST_HELLO, seq, _HOST_HELLO.pack(record.protocol_version))
    raise TypeError(f"cannot encode {record!r}")
