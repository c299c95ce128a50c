"""FAULT and EV_STATUS on the wire: the document's vectors, round trips, and every refusal."""

import dataclasses
import re
import struct
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from josev_bridge.core.alert_inputs import DepartureSource, EvStatusRecord, FaultRecord
from josev_bridge.protocol import records
from josev_bridge.protocol.framing import MAX_FRAME, Frame, FrameDecoder, cobs_decode, encode_frame
from josev_bridge.protocol.records import FAULT_TEXT_MAX, FrameType, RecordError, fit_fault_info

DOC = Path(__file__).resolve().parents[2] / "docs" / "serial-protocol.md"
T = 1771323630123456
I64 = st.integers(-(2**63), 2**63 - 1)


def doc_vector(label: str) -> tuple[bytes, bytes]:
    """(frame before COBS, line) quoted in docs/serial-protocol.md after `<label> before COBS:`."""
    text = DOC.read_text(encoding="utf-8")
    raw = re.search(rf"^{label} before COBS: ([0-9a-f |]+)$", text, re.M)
    line = re.search(rf"^{label} on the line: ([0-9a-f ]+)$", text, re.M)
    assert raw and line, f"docs/serial-protocol.md lost the {label} test vector"
    return bytes.fromhex(raw.group(1).replace("|", " ")), bytes.fromhex(line.group(1))


FAULT_VECTOR = (FaultRecord(1, 1, True, "GroundFailure", "GF-12", "31 mA", T), 2)
EV_VECTOR = (EvStatusRecord(1, 1, T + 100_000, 45.3, 7400, 60000, 1771330830000000, DepartureSource.EV), 3)


@pytest.mark.parametrize("label,vector", [("FAULT", FAULT_VECTOR), ("EV_STATUS", EV_VECTOR)])
def test_doc_vectors(label, vector):
    record, seq = vector
    raw, line = doc_vector(label)
    assert records.encode(record, seq) == line
    assert cobs_decode(line[:-1]) == raw
    (frame,) = FrameDecoder().feed(line)
    assert (frame.type, frame.seq, records.decode(frame)) == (FrameType[label], seq, record)


def decode(frame_type: int, body: bytes):
    return records.decode(Frame(frame_type, 1, body))


def round_trip(record):
    (frame,) = FrameDecoder().feed(records.encode(record, 7))
    return records.decode(frame)


# -- FAULT ---------------------------------------------------------------------------------------------
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@given(evse=st.integers(0, 255), connector=st.integers(0, 255), active=st.booleans(), time_us=I64,
       error_code=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12),
       vendor=st.one_of(st.none(), text.filter(lambda t: t and len(t.encode()) <= 50)),  # the limit is bytes
       info=st.one_of(st.none(), text.filter(bool)))
def test_fault_round_trips(evse, connector, active, time_us, error_code, vendor, info):
    record = FaultRecord(evse, connector, active, error_code, vendor, info, time_us)
    assert round_trip(record) == record


def test_fault_empty_strings_mean_none():
    record = round_trip(FaultRecord(1, 0, False, "OtherError", "", "", 5))
    assert (record.vendor_error_code, record.info, record.active) == (None, None, False)


def test_fault_of_the_largest_size_fits_the_frame():
    info = fit_fault_info("E" * 50, "V" * 50, "é" * 400)  # 800 bytes of UTF-8: cut to 387, a whole character
    assert info == "é" * 193 and len(info.encode()) == FAULT_TEXT_MAX - 100 - 1
    record = FaultRecord(255, 255, True, "E" * 50, "V" * 50, info, -1)
    line = records.encode(record, 1)
    assert len(cobs_decode(line[:-1])) == MAX_FRAME - 1
    assert round_trip(record) == record


def test_fit_fault_info_keeps_what_fits_and_drops_nothing_else():
    assert fit_fault_info("GroundFailure", None, "31 mA") == "31 mA"
    assert fit_fault_info("GroundFailure", None, None) is None and fit_fault_info("X", "", "") is None
    assert len(fit_fault_info("X", None, "a" * 500).encode()) == FAULT_TEXT_MAX - 1
    assert fit_fault_info("X", None, "a" * 486 + "€") == "a" * 486  # the euro sign would straddle the end


def fault_body(active=1, strings=((b"\x0d", b"GroundFailure"), (b"\x00", b""), (b"\x00\x00", b""))):
    return struct.pack("<BBBq", 1, 1, active, T) + b"".join(prefix + data for prefix, data in strings)


def test_a_hand_built_fault_body_decodes():
    assert decode(FrameType.FAULT, fault_body()) == FaultRecord(1, 1, True, "GroundFailure", None, None, T)


BAD_FAULTS = {
    "short head": (fault_body()[:10], "FAULT body of 10 bytes"),
    "no info prefix": (fault_body()[:-2], "FAULT body of"),
    "active 2": (fault_body(active=2), "active must be 0 or 1, got 2"),
    "empty error_code": (fault_body(strings=((b"\x00", b""), (b"\x00", b""), (b"\x00\x00", b""))),
                         "error_code is 0 bytes, expected 1..50"),
    "error_code 51": (fault_body(strings=((b"\x33", b"E" * 51), (b"\x00", b""), (b"\x00\x00", b""))),
                      "error_code is 51 bytes, expected 1..50"),
    "vendor 51": (fault_body(strings=((b"\x01", b"E"), (b"\x33", b"V" * 51), (b"\x00\x00", b""))),
                  "vendor_error_code is 51 bytes, expected 0..50"),
    "info 501": (fault_body(strings=((b"\x01", b"E"), (b"\x00", b""), (b"\xf5\x01", b"i" * 501))),
                 "info is 501 bytes, expected 0..500"),
    "info past the end": (fault_body(strings=((b"\x01", b"E"), (b"\x00", b""), (b"\x05\x00", b"abcd"))),
                          "info of 5 bytes runs past the end"),
    "bad UTF-8 error_code": (fault_body(strings=((b"\x02", b"\xc3\x28"), (b"\x00", b""), (b"\x00\x00", b""))),
                             "error_code is not UTF-8"),
    "surrogate in vendor": (fault_body(strings=((b"\x01", b"E"), (b"\x03", b"\xed\xa0\x80"), (b"\x00\x00", b""))),
                            "vendor_error_code is not UTF-8"),
    "cut character in info": (fault_body(strings=((b"\x01", b"E"), (b"\x00", b""), (b"\x01\x00", b"\xe2"))),
                              "info is not UTF-8"),
    "trailing bytes": (fault_body() + b"\x00", "body has 1 byte(s) after its strings"),
}


@pytest.mark.parametrize("name", BAD_FAULTS)
def test_bad_fault_bodies_are_record_errors(name):
    body, message = BAD_FAULTS[name]
    with pytest.raises(RecordError, match=re.escape(message)):
        decode(FrameType.FAULT, body)


@pytest.mark.parametrize("record,message", [
    (FaultRecord(1, 1, True, "", None, None, T), "error_code must be 1..50"),
    (FaultRecord(1, 1, True, "E" * 51, None, None, T), "error_code must be 1..50"),
    (FaultRecord(1, 1, True, "E", "é" * 26, None, T), "vendor_error_code must be 0..50"),
    (FaultRecord(1, 1, True, "E", None, "i" * 501, T), "info must be 0..500"),
])
def test_encoding_refuses_faults_the_host_would_refuse(record, message):
    with pytest.raises(ValueError, match=message):
        records.encode(record, 1)


# -- EV_STATUS -----------------------------------------------------------------------------------------
@st.composite
def ev_status(draw):
    departure = draw(st.one_of(st.none(), I64.filter(bool)))
    source = DepartureSource.NONE if departure is None else draw(st.sampled_from(
        [DepartureSource.EV, DepartureSource.OPERATOR]))
    soc = draw(st.one_of(st.none(), st.integers(0, 1000).map(lambda tenths: tenths / 10)))
    return EvStatusRecord(draw(st.integers(0, 255)), draw(st.integers(0, 255)), draw(I64), soc,
                          draw(st.one_of(st.none(), st.integers(-(2**31) + 1, 2**31 - 1))),
                          draw(st.one_of(st.none(), st.integers(1, 2**32 - 1))), departure, source)


@given(ev_status())
def test_ev_status_round_trips(record):
    assert round_trip(record) == record


def test_ev_status_unknowns():
    body = struct.pack("<BBqHiIqB", 2, 1, T, 0xFFFF, -(2**31), 0, 0, 0)
    assert decode(FrameType.EV_STATUS, body) == EvStatusRecord(2, 1, T, None, None, None, None)
    full = decode(FrameType.EV_STATUS, struct.pack("<BBqHiIqB", 2, 1, T, 1000, -5, 1, 9, 2))
    assert (full.soc_percent, full.power_w, full.battery_capacity_wh, full.departure_time_us,
            full.departure_source) == (100.0, -5, 1, 9, DepartureSource.OPERATOR)


def ev_body(soc=453, departure=9, source=1):
    return struct.pack("<BBqHiIqB", 1, 1, T, soc, 7400, 60000, departure, source)


BAD_EV = {
    "short": (ev_body()[:-1], "EV_STATUS body of 28 bytes"),
    "long": (ev_body() + b"\x00", "EV_STATUS body of 30 bytes"),
    "soc 1001": (ev_body(soc=1001), "soc is 1001 (0.1 %), expected 0..1000 or 0xffff"),
    "soc 0xfffe": (ev_body(soc=0xFFFE), "soc is 65534"),
    "unknown source": (ev_body(source=3), "EV_STATUS: 3 is not a valid DepartureSource"),
    "source without departure": (ev_body(departure=0, source=1), "departure_source 1 does not fit"),
    "departure without source": (ev_body(departure=9, source=0), "departure_source 0 does not fit"),
}


@pytest.mark.parametrize("name", BAD_EV)
def test_bad_ev_status_bodies_are_record_errors(name):
    body, message = BAD_EV[name]
    with pytest.raises(RecordError, match=re.escape(message)):
        decode(FrameType.EV_STATUS, body)


@pytest.mark.parametrize("changes,message", [
    ({"soc_percent": 100.1}, "soc_percent must be 0..100"),
    ({"soc_percent": -0.1}, "soc_percent must be 0..100"),
    ({"power_w": -(2**31)}, "power_w must fit an i32"),
    ({"power_w": 2**31}, "power_w must fit an i32"),
    ({"battery_capacity_wh": 0}, "battery_capacity_wh must be 1.."),
    ({"departure_time_us": 0}, "NONE exactly when"),
    ({"departure_source": DepartureSource.NONE}, "NONE exactly when"),
    ({"departure_time_us": None}, "NONE exactly when"),
    ({"evse_id": 256}, "EV_STATUS: "),
])
def test_encoding_refuses_what_the_wire_cannot_carry(changes, message):
    record = dataclasses.replace(EV_VECTOR[0], **changes)
    with pytest.raises(ValueError, match=re.escape(message)):
        records.encode(record, 1)


def test_soc_is_carried_in_tenths():
    record = round_trip(EvStatusRecord(1, 1, T, 45.34, 0, None, None))
    assert record.soc_percent == 45.3
    assert encode_frame(FrameType.EV_STATUS, 1, ev_body()) == records.encode(
        EvStatusRecord(1, 1, T, 45.3, 7400, 60000, 9, DepartureSource.EV), 1)
