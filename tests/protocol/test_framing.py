import zlib

from hypothesis import given, settings, strategies as st

from josev_bridge.core.conditions import Signal, SignalRecord
from josev_bridge.protocol import records
from josev_bridge.protocol.framing import MAX_FRAME, FrameDecoder, cobs_decode, cobs_encode, encode_frame
from josev_bridge.protocol.records import Ack, ClockProbe, ClockReply, FrameType, Hello, HostHello, KeepAlive, Unknown


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
             ClockReply(7, -12345)]
    stream = b"".join(records.encode(r, i) for i, r in enumerate(items, 1))
    frames = decoder.feed(stream)
    assert [records.decode(f) for f in frames] == items
    assert [f.seq for f in frames] == list(range(1, len(items) + 1))


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
