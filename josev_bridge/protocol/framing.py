"""Frames on the serial line: COBS-encoded, 0x00-delimited, each with a CRC-32 trailer.

    frame   = COBS(format u8 | type u8 | seq u32le | body | crc32 u32le) 0x00
    crc32   = CRC-32/ISO-HDLC (zlib.crc32) over format..body

`format` is the layout of this frame (1, unchanged since protocol version 1); the protocol version
(which record types exist and what their bodies hold) is stated once per link, in HELLO and
HOST_HELLO, so a peer of either version still parses every frame of the other (docs/serial-protocol.md §2).

The decoder never raises on input: garbage, truncation, oversize and bad checksums are counted and
the decoder resynchronises at the next 0x00.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

FRAME_FORMAT = 1  # the first byte of every frame: its layout, not the protocol version
PROTOCOL_VERSION = 2  # what HELLO and HOST_HELLO announce: 2 added LEVEL and KEEPALIVE's ring fields
DELIMITER = b"\x00"
HEADER = struct.Struct("<BBI")
CRC = struct.Struct("<I")
MIN_FRAME = HEADER.size + CRC.size
MAX_FRAME = 512  # decoded bytes, header and CRC included; a longer run without a delimiter is line noise
MAX_ENCODED = MAX_FRAME + (MAX_FRAME + 253) // 254  # COBS adds one code byte per started 254-byte block


class CobsError(ValueError):
    pass


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: the output contains no 0x00."""
    out = bytearray()
    for chunk in data.split(b"\x00"):
        while len(chunk) >= 254:
            out.append(0xFF)
            out += chunk[:254]
            chunk = chunk[254:]
        out.append(len(chunk) + 1)
        out += chunk
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise CobsError("zero byte inside a COBS block")
        end = i + code
        if end > n:
            raise CobsError("COBS block runs past the end of the frame")
        out += data[i + 1:end]
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Frame:
    type: int
    seq: int
    body: bytes
    version: int = FRAME_FORMAT  # the frame's format byte


class FrameTooLarge(ValueError):
    pass


def encode_frame(frame_type: int, seq: int, body: bytes = b"") -> bytes:
    """The bytes to write on the line for one frame, delimiter included."""
    if HEADER.size + len(body) + CRC.size > MAX_FRAME:
        raise FrameTooLarge(f"a {len(body)}-byte body exceeds the {MAX_FRAME}-byte frame maximum")
    raw = HEADER.pack(FRAME_FORMAT, frame_type, seq & 0xFFFFFFFF) + body
    return cobs_encode(raw + CRC.pack(zlib.crc32(raw))) + DELIMITER


@dataclass
class DecodeCounters:
    frames: int = 0
    crc_errors: int = 0
    cobs_errors: int = 0
    oversize: int = 0
    runt: int = 0  # shorter than header + CRC
    bad_version: int = 0  # a frame format other than FRAME_FORMAT
    discarded_bytes: int = 0

    def errors(self) -> int:
        return self.crc_errors + self.cobs_errors + self.oversize + self.runt + self.bad_version


@dataclass
class FrameDecoder:
    """Incremental decoder: feed it whatever the port returned, get whole verified frames back."""

    counters: DecodeCounters = field(default_factory=DecodeCounters)
    _buffer: bytearray = field(default_factory=bytearray)
    _overflowing: bool = False

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        self._buffer += data
        while True:
            end = self._buffer.find(0)
            if end < 0:
                if len(self._buffer) > MAX_ENCODED:
                    # No delimiter in sight: drop what we have, remember we are mid-garbage.
                    self.counters.discarded_bytes += len(self._buffer)
                    self._buffer.clear()
                    if not self._overflowing:
                        self.counters.oversize += 1
                    self._overflowing = True
                return frames
            chunk = bytes(self._buffer[:end])
            del self._buffer[:end + 1]
            if self._overflowing:
                self._overflowing = False
                self.counters.discarded_bytes += len(chunk)
                continue
            if chunk:
                frame = self._decode(chunk)
                if frame is not None:
                    frames.append(frame)

    def reset(self) -> None:
        """Forget a partial frame, e.g. after the port was reopened."""
        self._buffer.clear()
        self._overflowing = False

    def _decode(self, chunk: bytes) -> Frame | None:
        c = self.counters
        if len(chunk) > MAX_ENCODED:
            c.oversize += 1
            c.discarded_bytes += len(chunk)
            return None
        try:
            raw = cobs_decode(chunk)
        except CobsError:
            c.cobs_errors += 1
            c.discarded_bytes += len(chunk)
            return None
        if len(raw) > MAX_FRAME:
            c.oversize += 1
            c.discarded_bytes += len(chunk)
            return None
        if len(raw) < MIN_FRAME:
            c.runt += 1
            c.discarded_bytes += len(chunk)
            return None
        payload, (crc,) = raw[:-CRC.size], CRC.unpack_from(raw, len(raw) - CRC.size)
        if zlib.crc32(payload) != crc:
            c.crc_errors += 1
            c.discarded_bytes += len(chunk)
            return None
        version, frame_type, seq = HEADER.unpack_from(payload)
        if version != FRAME_FORMAT:
            c.bad_version += 1
            return None
        c.frames += 1
        return Frame(frame_type, seq, payload[HEADER.size:], version)
