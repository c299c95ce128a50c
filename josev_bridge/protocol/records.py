"""Typed records carried in frames, and their byte layouts (little-endian, see docs/serial-protocol.md)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from ..core.alert_inputs import DepartureSource, EvStatusRecord, FaultRecord
from ..core.conditions import LevelRecord, Signal, SignalRecord
from .framing import CRC, HEADER, MAX_FRAME, Frame, encode_frame


class FrameType(IntEnum):
    HELLO = 0x01  # MCU -> host, first frame after MCU boot and answer to HOST_HELLO
    SIGNAL = 0x02  # MCU -> host, one hardware event record
    KEEPALIVE = 0x03  # both ways, every second
    ACK = 0x04  # host -> MCU, records up to seq are persisted
    HOST_HELLO = 0x05  # host -> MCU, sent when the host (re)opens the port
    CLOCK_PROBE = 0x06  # host -> MCU, answered at once with CLOCK_REPLY
    CLOCK_REPLY = 0x07  # MCU -> host, the MCU clock when the probe arrived
    FAULT = 0x08  # MCU -> host, a fault raised or cleared (a numbered record, like SIGNAL)
    EV_STATUS = 0x09  # MCU -> host, the EV's battery state (a numbered record, like SIGNAL)
    LEVEL = 0x0A  # MCU -> host, a signal's level re-reported after boot: not an edge (protocol v2)


_HELLO = struct.Struct("<BIB")  # protocol version, boot id, length of firmware version string
_HELLO_RING = struct.Struct("<II")  # after the firmware string: oldest seq held, next seq (optional)
_SIGNAL = struct.Struct("<BBBBq")  # evse, connector, signal, state, time_us
_KEEPALIVE = struct.Struct("<q")  # sender's clock in us (0 = unknown): the MCU's record clock, the host's UTC
_KEEPALIVE_RING = struct.Struct("<II")  # MCU -> host, protocol v2: boot id, 1 + last seq put on the line
_ACK = struct.Struct("<II")  # boot id, highest persisted seq
_HOST_HELLO = struct.Struct("<B")  # protocol version
_CLOCK_PROBE = struct.Struct("<I")  # probe id
_CLOCK_REPLY = struct.Struct("<Iq")  # probe id, MCU clock in us
_FAULT = struct.Struct("<BBBq")  # evse, connector, active, time_us; then error_code, vendor_error_code, info
_EV_STATUS = struct.Struct("<BBqHiIqB")  # evse, connector, time_us, soc, power_w, capacity_wh, departure_us, source
_LEVEL = struct.Struct("<BBBBqq")  # evse, connector, signal, state, time_us, age_us (0 = unknown)

MAX_BODY = MAX_FRAME - HEADER.size - CRC.size  # 502
#: FAULT strings: (name, length prefix, min bytes, max bytes), in wire order.
_FAULT_STRINGS = (("error_code", struct.Struct("<B"), 1, 50),
                  ("vendor_error_code", struct.Struct("<B"), 0, 50),
                  ("info", struct.Struct("<H"), 0, 500))
#: Bytes left for the three strings' contents in the largest frame (487).
FAULT_TEXT_MAX = MAX_BODY - _FAULT.size - sum(prefix.size for _, prefix, _, _ in _FAULT_STRINGS)
SOC_UNKNOWN = 0xFFFF
SOC_MAX = 1000  # 100.0 % in 0.1 % units
POWER_UNKNOWN = -(2**31)


@dataclass(frozen=True, slots=True)
class Hello:
    protocol_version: int
    boot_id: int
    firmware: str
    oldest_seq: int | None = None  # the oldest record still in the MCU's ring (== next_seq when empty)
    next_seq: int | None = None  # the seq the MCU's next record will get


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """Both ways every second. From an MCU of protocol version 2 it also says how far the MCU has
    sent (`boot_id`, `next_seq`: one more than the last record it put on the line before this frame),
    so the host notices a lost last record or a lost HELLO without waiting for the next record."""

    time_us: int
    boot_id: int | None = None
    next_seq: int | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """A numbered frame (seq != 0) the host cannot use: an unknown record type, or a bad body.

    It still takes its place in the numbering, so the records after it are not held behind a gap
    that can never fill; it is counted and logged, never silently dropped.
    """

    type: int
    reason: str


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


Record = (Hello | SignalRecord | LevelRecord | FaultRecord | EvStatusRecord | KeepAlive | Ack | HostHello | ClockProbe
          | ClockReply | Unknown)
#: The records that carry a seq and go through the MCU's ring, replay and ACK.
SequencedRecord = SignalRecord | LevelRecord | FaultRecord | EvStatusRecord
SEQUENCED = (SignalRecord, LevelRecord, FaultRecord, EvStatusRecord)


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
        if kind is FrameType.LEVEL:
            return _decode_level(body)
        if kind is FrameType.FAULT:
            return _decode_fault(body)
        if kind is FrameType.EV_STATUS:
            return _decode_ev_status(body)
        if kind is FrameType.KEEPALIVE:
            if len(body) == _KEEPALIVE.size + _KEEPALIVE_RING.size:
                return KeepAlive(*_KEEPALIVE.unpack_from(body), *_KEEPALIVE_RING.unpack_from(body, _KEEPALIVE.size))
            return KeepAlive(*_KEEPALIVE.unpack(body))  # the host's, or an MCU of protocol version 1
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
    except ValueError as exc:  # unknown Signal or DepartureSource number, or a check below (a RecordError)
        raise RecordError(f"{kind.name}: {exc}") from None


def _decode_level(body: bytes) -> LevelRecord:
    evse, connector, signal, state, time_us, age_us = _LEVEL.unpack(body)
    if state not in (0, 1):
        raise RecordError(f"level state must be 0 or 1, got {state}")
    if age_us < 0:
        raise RecordError(f"age_us must be 0 (unknown) or positive, got {age_us}")
    return LevelRecord(evse, connector, Signal(signal), bool(state), time_us, age_us or None)


def _decode_fault(body: bytes) -> FaultRecord:
    evse, connector, active, time_us = _FAULT.unpack_from(body)
    if active not in (0, 1):
        raise RecordError(f"active must be 0 or 1, got {active}")
    pos = _FAULT.size
    texts = []
    for name, prefix, low, high in _FAULT_STRINGS:
        text, pos = _read_string(body, pos, name, prefix, low, high)
        texts.append(text)
    if pos != len(body):
        raise RecordError(f"body has {len(body) - pos} byte(s) after its strings")
    error_code, vendor, info = texts
    return FaultRecord(evse, connector, bool(active), error_code, vendor or None, info or None, time_us)


def _read_string(body: bytes, pos: int, name: str, prefix: struct.Struct, low: int, high: int) -> tuple[str, int]:
    """One length-prefixed UTF-8 string of a FAULT body; returns it and the position after it."""
    (length,) = prefix.unpack_from(body, pos)
    pos += prefix.size
    if not low <= length <= high:
        raise RecordError(f"{name} is {length} bytes, expected {low}..{high}")
    if pos + length > len(body):
        raise RecordError(f"{name} of {length} bytes runs past the end of the body")
    try:
        return body[pos:pos + length].decode("utf-8"), pos + length
    except UnicodeDecodeError as exc:
        raise RecordError(f"{name} is not UTF-8: {exc.reason} at byte {exc.start}") from None


def _decode_ev_status(body: bytes) -> EvStatusRecord:
    evse, connector, time_us, soc, power_w, capacity, departure_us, source = _EV_STATUS.unpack(body)
    if soc > SOC_MAX and soc != SOC_UNKNOWN:
        raise RecordError(f"soc is {soc} (0.1 %), expected 0..{SOC_MAX} or {SOC_UNKNOWN:#x}")
    departure_source = DepartureSource(source)
    if (departure_us == 0) != (departure_source is DepartureSource.NONE):
        raise RecordError(f"departure_source {source} does not fit departure_time_us {departure_us} "
                          "(0 exactly when there is no departure time)")
    return EvStatusRecord(evse, connector, time_us, None if soc == SOC_UNKNOWN else soc / 10,
                          None if power_w == POWER_UNKNOWN else power_w, capacity or None, departure_us or None,
                          departure_source)


def fit_fault_info(error_code: str, vendor_error_code: str | None, info: str | None) -> str | None:
    """`info` cut (at a character boundary) so the FAULT frame stays within MAX_FRAME; None if empty.

    The MCU side cuts the same way (mcu/josev_link.c), so a sender can keep the record as it went out.
    """
    if not info:
        return None
    room = min(500, FAULT_TEXT_MAX - len(error_code.encode()) - len((vendor_error_code or "").encode()))
    raw = info.encode()
    if len(raw) <= room:
        return info
    return raw[:max(room, 0)].decode("utf-8", "ignore") or None


def encode(record: Record, seq: int) -> bytes:
    """Encode a record as line bytes (frame + delimiter)."""
    if isinstance(record, SignalRecord):
        body = _SIGNAL.pack(record.evse_id, record.connector_id, int(record.signal), int(record.state), record.time_us)
        return encode_frame(FrameType.SIGNAL, seq, body)
    if isinstance(record, LevelRecord):
        if record.age_us is not None and record.age_us <= 0:
            raise ValueError(f"LEVEL age_us must be positive or None (unknown), got {record.age_us}")
        body = _LEVEL.pack(record.evse_id, record.connector_id, int(record.signal), int(record.state),
                           record.time_us, record.age_us or 0)
        return encode_frame(FrameType.LEVEL, seq, body)
    if isinstance(record, FaultRecord):
        return encode_frame(FrameType.FAULT, seq, _fault_body(record))
    if isinstance(record, EvStatusRecord):
        return encode_frame(FrameType.EV_STATUS, seq, _ev_status_body(record))
    if isinstance(record, KeepAlive):
        body = _KEEPALIVE.pack(record.time_us)
        if record.boot_id is not None and record.next_seq is not None:
            body += _KEEPALIVE_RING.pack(record.boot_id, record.next_seq)
        return encode_frame(FrameType.KEEPALIVE, seq, body)
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


def _fault_body(record: FaultRecord) -> bytes:
    """Raises ValueError for a record the host would refuse (so no sender puts one on the line)."""
    body = bytearray(_FAULT.pack(record.evse_id, record.connector_id, int(record.active), record.time_us))
    for (name, prefix, low, high), text in zip(_FAULT_STRINGS, (record.error_code, record.vendor_error_code,
                                                                 record.info)):
        raw = (text or "").encode("utf-8")
        if not low <= len(raw) <= high:
            raise ValueError(f"FAULT {name} must be {low}..{high} bytes of UTF-8, got {len(raw)}")
        body += prefix.pack(len(raw)) + raw
    return bytes(body)


def _ev_status_body(record: EvStatusRecord) -> bytes:
    """Raises ValueError for values the wire cannot carry (None is how 'unknown' is spelled)."""
    soc = SOC_UNKNOWN if record.soc_percent is None else round(record.soc_percent * 10)
    if soc != SOC_UNKNOWN and not 0 <= soc <= SOC_MAX:
        raise ValueError(f"EV_STATUS soc_percent must be 0..100, got {record.soc_percent}")
    power = POWER_UNKNOWN if record.power_w is None else record.power_w
    if record.power_w is not None and not POWER_UNKNOWN < power < 2**31:
        raise ValueError(f"EV_STATUS power_w must fit an i32 above {POWER_UNKNOWN}, got {power}")
    if record.battery_capacity_wh is not None and not 0 < record.battery_capacity_wh < 2**32:
        raise ValueError(f"EV_STATUS battery_capacity_wh must be 1..{2**32 - 1}, got {record.battery_capacity_wh}")
    if record.departure_time_us == 0 or (record.departure_time_us is None) != (
            record.departure_source is DepartureSource.NONE):
        raise ValueError("EV_STATUS departure_source is NONE exactly when departure_time_us is None")
    try:
        return _EV_STATUS.pack(record.evse_id, record.connector_id, record.time_us, soc, power,
                               record.battery_capacity_wh or 0, record.departure_time_us or 0,
                               int(record.departure_source))
    except struct.error as exc:
        raise ValueError(f"EV_STATUS: {exc}") from None
