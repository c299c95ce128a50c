import zlib

import pytest
from hypothesis import given, settings, strategies as st

from josev_bridge.core.conditions import LevelRecord, Signal, SignalRecord
from josev_bridge.protocol import records
from josev_bridge.protocol.framing import (
    FRAME_FORMAT,
    MAX_FRAME,
    PROTOCOL_VERSION,
    FrameDecoder,
    cobs_decode,
    cobs_encode,
    encode_frame,
)
from josev_bridge.protocol.records import (
    Ack,
    ClockProbe,
    ClockReply,
    FrameType,
    Hello,
    HostHello,
    KeepAlive,
    RecordError,
    Unknown,
)


def test_known_vector():
    # docs/serial-protocol.md quotes this frame; if it changes, the document and the C side must too.
    rec = SignalRecord(1, 1, Signal.EV_CONNECTED, True, 1771323630123456)
    line = records.encode(rec, seq=1)
    assert line.hex() == VECTOR
    assert line.endswith(b"\x00") and b"\x00" not in line[:-1]


VECTOR = "0401020101010c01010101c079c16b024b060586c013e700"


@given(st.binary(max_size=1200))
def test_cobs_round_trip(data):
    encoded = cobs_encode(data)
    assert b"\x00" not in encoded
    assert cobs_decode(encoded) == data


def test_every_record_type_round_trips():
    decoder = FrameDecoder()
    items = [SignalRecord(2, 1, Signal.DATA_SIGNED, False, 5), KeepAlive(123), Hello(1, 0xDEADBEEF, "fw 1.2"),
             Ack(9, 77), HostHello(1), Hello(1, 5, "fw", oldest_seq=3, next_seq=9), ClockProbe(7),
             ClockReply(7, -12345), KeepAlive(5, 0xC0FFEE, 42), LevelRecord(1, 2, Signal.AUTHORIZED, True, 9, 3600),
             LevelRecord(2, 1, Signal.BAY_OCCUPIED, False, -9, None)]
    stream = b"".join(records.encode(r, i) for i, r in enumerate(items, 1))
    frames = decoder.feed(stream)
    assert [records.decode(f) for f in frames] == items
    assert [f.seq for f in frames] == list(range(1, len(items) + 1))


def test_protocol_version_2_keeps_the_frame_format_of_version_1():
    """Only HELLO and HOST_HELLO say the protocol version: every frame still starts with format 1,
    so a host and an MCU of different versions parse each other's frames (and can say so)."""
    assert (FRAME_FORMAT, PROTOCOL_VERSION) == (1, 2)
    for record in (HostHello(PROTOCOL_VERSION), LevelRecord(1, 1, Signal.EV_CONNECTED, True, 5),
                   KeepAlive(1, 2, 3)):
        (frame,) = FrameDecoder().feed(records.encode(record, 1))
        assert frame.version == FRAME_FORMAT


def test_keepalive_ring_fields_are_optional_but_all_or_nothing():
    old = records.encode(KeepAlive(77), 0)  # the host's, or an MCU of protocol version 1: 8 bytes
    (frame,) = FrameDecoder().feed(old)
    assert len(frame.body) == 8 and records.decode(frame) == KeepAlive(77, None, None)
    (frame,) = FrameDecoder().feed(records.encode(KeepAlive(77, 0xFFFFFFFF, 1), 0))
    assert len(frame.body) == 16 and records.decode(frame) == KeepAlive(77, 0xFFFFFFFF, 1)
    for size in (12, 9, 20):
        with pytest.raises(RecordError):
            records.decode(FrameDecoder().feed(encode_frame(FrameType.KEEPALIVE, 0, bytes(size)))[0])


@pytest.mark.parametrize("body", [
    bytes([1, 1, 1, 2]) + bytes(16),  # state 2
    bytes([1, 1, 9, 1]) + bytes(16),  # no such signal
    bytes([1, 1, 1, 1]) + bytes(8) + (-1).to_bytes(8, "little", signed=True),  # a negative age
    bytes([1, 1, 1, 1]) + bytes(15),  # short
])
def test_bad_level_bodies_are_record_errors(body):
    with pytest.raises(RecordError):
        records.decode(FrameDecoder().feed(encode_frame(FrameType.LEVEL, 3, body))[0])


def test_level_age_zero_means_unknown():
    raw = bytes([1, 1, 1, 1]) + (5).to_bytes(8, "little") + bytes(8)
    assert records.decode(FrameDecoder().feed(encode_frame(FrameType.LEVEL, 3, raw))[0]) == \
        LevelRecord(1, 1, Signal.EV_CONNECTED, True, 5, None)
    with pytest.raises(ValueError):  # nobody puts a LEVEL on the line that says "0 s old"
        records.encode(LevelRecord(1, 1, Signal.EV_CONNECTED, True, 5, 0), 1)


def test_unknown_type_is_skipped_not_fatal():
    frames = FrameDecoder().feed(encode_frame(0x7F, 1, b"future"))
    assert records.decode(frames[0]) == Unknown(0x7F)


def test_bad_crc_is_counted_and_next_frame_still_decodes():
    good = records.encode(KeepAlive(1), 1)
    bad = bytearray(records.encode(KeepAlive(2), 2))
    bad[3] ^= 0x55
    d = FrameDecoder()
    frames = d.feed(bytes(bad) + good)
    assert [records.decode(f) for f in frames] == [KeepAlive(1)]
    assert d.counters.errors() == 1


def test_garbage_and_oversize_resynchronise():
    d = FrameDecoder()
    noise = bytes(range(1, 256)) * 10  # no delimiter for a long stretch
    frames = d.feed(noise + b"\x00" + records.encode(KeepAlive(7), 3))
    assert [records.decode(f) for f in frames] == [KeepAlive(7)]
    assert d.counters.oversize == 1


def test_split_feeds_reassemble():
    line = records.encode(SignalRecord(1, 1, Signal.AUTHORIZED, True, 99), 5)
    d = FrameDecoder()
    out = []
    for b in line:
        out += d.feed(bytes([b]))
    assert len(out) == 1 and out[0].type == FrameType.SIGNAL


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=64), st.sampled_from([records.encode(KeepAlive(5), 1), b"\x00"])),
                max_size=40))
@pytest.mark.slow
def test_arbitrary_bytes_never_raise_and_only_verified_frames_come_out(chunks):
    d = FrameDecoder()
    for chunk in chunks:
        for frame in d.feed(chunk):
            raw = encode_frame(frame.type, frame.seq, frame.body)
            payload = cobs_decode(raw[:-1])
            assert zlib.crc32(payload[:-4]) == int.from_bytes(payload[-4:], "little")
            assert len(payload) <= MAX_FRAME
            try:
                records.decode(frame)
            except records.RecordError:
                pass
