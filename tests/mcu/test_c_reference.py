"""The C reference implementation of the MCU side (mcu/) against the document and the host's decoder.

gcc compiles mcu/josev_link.c and the test driver mcu/tools/jl_cli.c once per session; the driver
runs as one long-lived process fed one command per line (see the comment at the top of jl_cli.c).
The document's test vectors are read from docs/serial-protocol.md itself, so the document, the C
code and the Python decoder cannot drift apart silently.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import warnings
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from josev_bridge.core.alert_inputs import DepartureSource, EvStatusRecord, FaultRecord
from josev_bridge.core.conditions import LevelRecord, Signal, SignalRecord
from josev_bridge.core.link_sequence import SequenceTracker
from josev_bridge.protocol import records
from josev_bridge.protocol.framing import (
    MAX_FRAME,
    PROTOCOL_VERSION,
    CobsError,
    Frame,
    FrameDecoder,
    FrameTooLarge,
    cobs_decode,
    cobs_encode,
    encode_frame,
)
from josev_bridge.protocol.records import (
    FAULT_TEXT_MAX,
    Ack,
    ClockProbe,
    ClockReply,
    FrameType,
    Hello,
    HostHello,
    KeepAlive,
    RecordError,
    Unknown,
    fit_fault_info,
)

pytestmark = pytest.mark.slow  # compiles the C reference: `make test-fast` leaves it out

ROOT = Path(__file__).resolve().parents[2]
MCU = ROOT / "mcu"
DOC = ROOT / "docs" / "serial-protocol.md"
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-O1"]
SANITIZER_ENV = {**os.environ, "ASAN_OPTIONS": "detect_leaks=0", "UBSAN_OPTIONS": "print_stacktrace=1"}

I64_MIN, I64_MAX, U32_MAX = -(2**63), 2**63 - 1, 2**32 - 1
V = PROTOCOL_VERSION  # what the C reference's HELLO says (JL_PROTOCOL_VERSION)
# The fixtures a fuzz test gets reset the driver once per test; no example leaves state another needs.
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# ---- building and driving the C code -----------------------------------------------------------

def _gcc() -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is not installed: the C reference implementation in mcu/ cannot be checked "
                    "against the protocol document (install it: apt-get install gcc)", pytrace=False)
    return gcc


def _build(jobs: dict[str, list[str]]) -> dict[str, subprocess.CompletedProcess]:
    """Run several gcc commands at once (compiling is most of this file's run time)."""
    gcc = _gcc()
    procs = {name: subprocess.Popen([gcc, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, args in jobs.items()}
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate()
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


class CDriver:
    """mcu/tools/jl_cli as a subprocess: one command in, one line out."""

    def __init__(self, exe: Path, env: dict | None = None):
        self.exe = exe
        self.stderr_path = exe.with_suffix(".stderr")
        self._stderr = open(self.stderr_path, "w")  # noqa: SIM115 - the child's stderr until close()
        self.proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, text=True, env=env)

    def __call__(self, command: str) -> str:
        assert "\n" not in command
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        line = self.proc.stdout.readline()
        if not line.endswith("\n"):
            self.proc.wait(timeout=5)
            pytest.fail(f"{self.exe.name} died (exit {self.proc.returncode}) on {command[:200]!r}:\n"
                        f"{self.stderr_path.read_text()[-4000:]}", pytrace=False)
        return line[:-1]

    def ok(self, command: str) -> str:
        reply = self(command)
        assert not reply.startswith("ERR"), f"{command[:200]!r} -> {reply}"
        return reply

    def line(self, command: str) -> bytes:
        return bytes.fromhex(self.ok(command))

    def decode(self, data: bytes) -> list[CFrame]:
        count, *tokens = self.ok(f"decode {data.hex()}").split(" ")
        assert int(count) == len(tokens)
        return [CFrame.parse(t) for t in tokens]

    def counters(self) -> dict[str, int]:
        return {k: int(v) for k, v in (kv.split("=") for kv in self.ok("counters").split())}

    def stat(self, command: str) -> dict[str, int]:
        return {k: int(v) for k, v in (kv.split("=") for kv in self.ok(command).split())}

    def reset(self) -> None:
        """The driver's defaults: whatever an earlier (perhaps failed) test left is forgotten."""
        for command in ("cap 4096", "decoder 512", "ring 16 1", "fw jl_cli 1.0"):
            self.ok(command)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
        self._stderr.close()


@dataclass(frozen=True)
class CFrame:
    type: int
    seq: int
    body: bytes
    parsed: str  # what jl_parse_* made of it: "ack=b,s", "host_hello=v", "keepalive=t", "clock_probe=i",
    #              "bad" (a host->MCU type with a wrong body size) or "-"

    @classmethod
    def parse(cls, token: str) -> CFrame:
        frame_type, seq, body, parsed = token.split(":")
        return cls(int(frame_type), int(seq), bytes.fromhex(body), parsed)


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mcu-build")


@pytest.fixture(scope="session")
def builds(build_dir) -> dict[str, Path | None]:
    """josev_link.o with the strict flags, the driver, and the driver under ASan/UBSan (None if the
    toolchain lacks the sanitizer runtimes: the fuzz tests then use the plain driver)."""
    sources = ["-I", str(MCU), str(MCU / "tools" / "jl_cli.c"), str(MCU / "josev_link.c")]
    paths = {"object": build_dir / "josev_link.o", "driver": build_dir / "jl_cli",
             "sanitized": build_dir / "jl_cli_sanitized"}
    results = _build({
        "object": [*CFLAGS, "-c", str(MCU / "josev_link.c"), "-o", str(paths["object"])],
        "driver": [*CFLAGS, *sources, "-o", str(paths["driver"])],
        "sanitized": [*CFLAGS, *SANITIZE, *sources, "-o", str(paths["sanitized"])],
    })
    for name in ("object", "driver"):
        if results[name].returncode != 0:
            pytest.fail(f"compiling mcu/ ({name}) failed:\n{' '.join(results[name].args)}\n{results[name].stderr}",
                        pytrace=False)
    sanitized = results["sanitized"].returncode == 0 and subprocess.run(
        [str(paths["sanitized"])], input="crc 00\n", capture_output=True, text=True,
        env=SANITIZER_ENV).stdout == "d202ef8d\n"
    if not sanitized:
        warnings.warn("sanitizer runtime unavailable; fuzzing the plain build of jl_cli instead", stacklevel=2)
        paths["sanitized"] = None
    return paths


@pytest.fixture(scope="session")
def link_object(builds) -> Path:
    return builds["object"]


@pytest.fixture(scope="session")
def plain_driver(builds):
    driver = CDriver(builds["driver"])
    yield driver
    driver.close()


@pytest.fixture(scope="session")
def sanitized_driver(builds, plain_driver):
    if builds["sanitized"] is None:
        yield plain_driver
        return
    driver = CDriver(builds["sanitized"], SANITIZER_ENV)
    yield driver
    driver.close()


@pytest.fixture
def cli(plain_driver) -> CDriver:
    plain_driver.reset()
    return plain_driver


@pytest.fixture
def asan_cli(sanitized_driver) -> CDriver:
    """For the fuzz tests and the ones that hand the C code buffers of exact sizes."""
    sanitized_driver.reset()
    return sanitized_driver


# ---- the document's test vectors -----------------------------------------------------------------

def _doc_hex(pattern: str) -> bytes:
    match = re.search(pattern, DOC.read_text(encoding="utf-8"), re.S)
    assert match, f"docs/serial-protocol.md no longer contains {pattern!r}"
    return bytes.fromhex(match.group(1).replace("|", " "))


def doc_signal_vector() -> tuple[SignalRecord, int, bytes, bytes, int]:
    text = DOC.read_text(encoding="utf-8")
    m = re.search(r"SIGNAL record, seq (\d+), EVSE (\d+), connector (\d+), signal (\d+) \([^)]*\), state (\d+),"
                  r"\s+time (\d+) µs", text)
    assert m, "docs/serial-protocol.md: the SIGNAL test vector's description changed"
    seq, evse, connector, signal, state, time_us = map(int, m.groups())
    raw = _doc_hex(r"before COBS: ([0-9a-f |]+)\n")
    line = _doc_hex(r"on the line: ([0-9a-f ]+)\n")
    crc = int(re.search(r"crc32 LE \(0x([0-9a-f]{8})\)", text).group(1), 16)
    return SignalRecord(evse, connector, Signal(signal), bool(state), time_us), seq, raw, line, crc


def test_doc_signal_vector_comes_out_of_the_c_encoder(cli):
    rec, seq, raw, line, crc = doc_signal_vector()
    c_line = cli.line(f"signal {seq} {rec.evse_id} {rec.connector_id} {int(rec.signal)} {int(rec.state)} {rec.time_us}")
    assert c_line.hex(" ") == line.hex(" ")
    assert cli.line(f"uncobs {line[:-1].hex()}") == raw
    assert cli.ok(f"crc {raw[:-4].hex()}") == f"{crc:08x}" and raw[-4:] == crc.to_bytes(4, "little")
    assert records.encode(rec, seq) == line  # and the host agrees
    (frame,) = FrameDecoder().feed(c_line)
    assert (frame.seq, records.decode(frame)) == (seq, rec)


def test_doc_host_hello_vector_decodes_in_c(cli):
    line = _doc_hex(r"Host HELLO \(host seq 1, protocol version 2\): `([0-9a-f ]+)`")
    assert cli.decode(line) == [CFrame(FrameType.HOST_HELLO, 1, bytes([V]), f"host_hello={V}")]
    assert cli.line(f"frame {FrameType.HOST_HELLO} 1 {V:02x}") == line == records.encode(HostHello(V), 1)


@pytest.mark.parametrize("label,command,record,seq", [
    ("LEVEL", "level 4 1 1 1 1 1771323630123456 7200000000",
     LevelRecord(1, 1, Signal.EV_CONNECTED, True, 1771323630123456, 7_200_000_000), 4),
    ("KEEPALIVE", "keepalive 1771323630123456 3735928559 5", KeepAlive(1771323630123456, 0xDEADBEEF, 5), 0),
])
def test_doc_version_2_vectors_come_out_of_the_c_encoder(cli, label, command, record, seq):
    """The records protocol version 2 added: the document, the C encoder and the host agree."""
    raw = _doc_hex(rf"\n{label} before COBS: ([0-9a-f |]+)\n")
    line = _doc_hex(rf"\n{label} on the line: ([0-9a-f ]+)\n")
    assert cli.line(command) == line == records.encode(record, seq)
    assert cli.line(f"uncobs {line[:-1].hex()}") == raw
    (frame,) = FrameDecoder().feed(line)
    assert (frame.seq, records.decode(frame)) == (seq, record)
    assert line.hex() in (MCU / "README.md").read_text(encoding="utf-8")  # the README's driver example


def test_readme_reproduces_the_doc_vector():
    *_, line, _ = doc_signal_vector()
    assert line.hex(" ") in (MCU / "README.md").read_text(encoding="utf-8")


def _c_function(source: str, name: str) -> str:
    """The text of a C function definition at the start of a line, up to its closing brace."""
    match = re.search(rf"^static void {name}\(.*?^}}$", source, re.M | re.S)
    assert match, f"no function {name} found"
    return match.group(0)


@pytest.mark.parametrize("name", ["tx_pump", "handle_host_frame", "send_keepalive"])
def test_readme_integration_example_is_the_tested_code(name):
    readme = (MCU / "README.md").read_text(encoding="utf-8")
    cli_source = (MCU / "tools" / "jl_cli.c").read_text(encoding="utf-8")
    assert _c_function(readme, name) == _c_function(cli_source, name)


def test_crc_check_value(cli):
    text = DOC.read_text(encoding="utf-8")
    check = int(re.search(r"CRC of ASCII `123456789` is `0x([0-9A-Fa-f]{8})`", text).group(1), 16)
    assert check == 0xCBF43926
    assert cli.ok(f"crc {b'123456789'.hex()}") == "cbf43926"
    assert cli.ok("crc -") == "00000000"


# ---- the library itself --------------------------------------------------------------------------

def test_library_compiles_cleanly_and_calls_no_library_functions(link_object):
    for source in ("josev_link.c", "josev_link.h"):
        includes = set(re.findall(r"#include\s+[<\"]([^>\"]+)[>\"]", (MCU / source).read_text()))
        assert includes <= {"stdint.h", "stddef.h", "stdbool.h", "josev_link.h"}, (source, includes)
    nm = shutil.which("nm")
    if nm:
        undefined = subprocess.run([nm, "-u", str(link_object)], capture_output=True, text=True,
                                   check=True).stdout.split()
        # a compiler may turn a struct copy into memcpy; anything else would be a real dependency
        assert set(undefined[1::2]) <= {"memcpy", "memset", "memmove"}, undefined


def test_size_macros(cli):
    sizes = cli.stat("sizes")

    def worst(body_len: int) -> int:
        return len(cobs_encode(b"\x01" * (10 + body_len))) + 1  # no zero byte: most overhead

    assert sizes["signal_line"] == worst(12)
    assert sizes["ev_status_line"] == worst(29)
    assert sizes["fault_line"] == sizes["record_line"] == worst(MAX_FRAME - 10)  # a FAULT may fill a frame
    assert sizes["fault_text"] == FAULT_TEXT_MAX == MAX_FRAME - 10 - 11 - 4
    assert sizes["keepalive_line"] == worst(16) == len(records.encode(KeepAlive(-1, U32_MAX, U32_MAX), 0))
    assert sizes["level_line"] == worst(20)
    assert sizes["clock_reply_line"] == worst(12) == len(records.encode(ClockReply(U32_MAX, -1), 0))
    assert sizes["hello_line_0"] == worst(6 + 0 + 8)  # the ring fields follow the firmware string
    assert sizes["hello_line_255"] == worst(6 + 255 + 8)
    assert sizes["max_frame"] == MAX_FRAME and sizes["max_body"] == MAX_FRAME - 10
    assert sizes["cobs_max_512"] == len(cobs_encode(b"\x01" * 512))
    # JL_HOST_FRAME_MAX: the largest host->MCU frame of every type the host sends
    host_frame_sizes = {type(r): len(cobs_decode(records.encode(r, 1)[:-1]))
                        for r in (Ack(1, 1), HostHello(1), KeepAlive(1), ClockProbe(1))}  # the host's 8-byte KEEPALIVE
    assert set(host_frame_sizes) == set(HOST_TYPES)
    assert sizes["host_frame"] == max(host_frame_sizes.values())


COBS_CASES = [b"", b"\x00", b"\x00\x00", b"\x01", b"\x11\x00\x22", b"\x01" * 253, b"\x01" * 254, b"\x01" * 255,
              b"\x01" * 254 + b"\x00", b"\x00" + b"\x01" * 254, b"\x01" * 508, b"\x01" * 509, bytes(range(256)) * 3]


@pytest.mark.parametrize("data", COBS_CASES, ids=lambda d: f"{len(d)}B")
def test_cobs_matches_the_host(asan_cli, data):
    expected = cobs_encode(data)
    assert asan_cli.line(f"cobs {data.hex()}") == expected
    assert asan_cli.line(f"uncobs {expected.hex()}") == data
    asan_cli.ok(f"cap {len(expected)}")
    assert asan_cli.line(f"cobs {data.hex()}") == expected  # an exact-size buffer is enough...
    asan_cli.ok(f"cap {len(expected) - 1}")
    assert asan_cli(f"cobs {data.hex()}") == "ERR encode"  # ...one byte less is not
    if data:
        asan_cli.ok(f"cap {len(data) - 1}")
        assert asan_cli(f"uncobs {expected.hex()}") == "ERR room"


@pytest.mark.parametrize("encoded", ["00", "0500", "0501", "05010101", "ff01", "020100", "0101000101"])
def test_cobs_decode_rejects_malformed_input(cli, encoded):
    assert cli(f"uncobs {encoded}") == "ERR malformed"
    with pytest.raises(CobsError):
        cobs_decode(bytes.fromhex(encoded))


# ---- MCU -> host: encoded in C, decoded by the host ----------------------------------------------

def _signal_cmd(seq: int, rec: SignalRecord, state: int | None = None) -> str:
    return (f"signal {seq} {rec.evse_id} {rec.connector_id} {int(rec.signal)} "
            f"{int(rec.state) if state is None else state} {rec.time_us}")


def _hex(text: str | None) -> str:
    return (text or "").encode().hex() or "-"


def _fault_args(rec: FaultRecord) -> str:
    return (f"{rec.evse_id} {rec.connector_id} {int(rec.active)} {rec.time_us} {_hex(rec.error_code)} "
            f"{_hex(rec.vendor_error_code)} {_hex(rec.info)}")


def _ev_args(rec: EvStatusRecord) -> str:
    soc = 0xFFFF if rec.soc_percent is None else round(rec.soc_percent * 10)
    power = -(2**31) if rec.power_w is None else rec.power_w
    return (f"{rec.evse_id} {rec.connector_id} {rec.time_us} {soc} {power} {rec.battery_capacity_wh or 0} "
            f"{rec.departure_time_us or 0} {int(rec.departure_source)}")


def _level_args(rec: LevelRecord) -> str:
    return f"{rec.evse_id} {rec.connector_id} {int(rec.signal)} {int(rec.state)} {rec.time_us} {rec.age_us or 0}"


def _c_encode(cli: CDriver, record, seq: int) -> bytes:
    if isinstance(record, SignalRecord):
        return cli.line(_signal_cmd(seq, record))
    if isinstance(record, LevelRecord):
        return cli.line(f"level {seq} {_level_args(record)}")
    if isinstance(record, FaultRecord):
        return cli.line(f"fault {seq} {_fault_args(record)}")
    if isinstance(record, EvStatusRecord):
        return cli.line(f"ev_status {seq} {_ev_args(record)}")
    if isinstance(record, Hello):  # the C reference always reports its ring
        assert record.oldest_seq is not None and record.next_seq is not None, record
        return cli.line(f"hello {record.boot_id} {record.oldest_seq} {record.next_seq} {record.firmware}")
    if isinstance(record, KeepAlive):  # the MCU's: with its boot and how far it has sent
        assert record.boot_id is not None and record.next_seq is not None, record
        return cli.line(f"keepalive {record.time_us} {record.boot_id} {record.next_seq}")
    if isinstance(record, ClockReply):
        return cli.line(f"clock_reply {record.probe_id} {record.mcu_time_us}")
    raise TypeError(record)


MCU_RECORDS = [
    *[(SignalRecord(1, 1, signal, state, 1771323630123456), 1) for signal in Signal for state in (True, False)],
    (SignalRecord(0, 0, Signal.DATA_SIGNED, True, 0), U32_MAX),
    (SignalRecord(255, 255, Signal.RELAY_CLOSED, False, -1), 0x01000000),
    (SignalRecord(2, 1, Signal.ENERGY_FLOWING, True, I64_MAX), 7),
    (SignalRecord(2, 1, Signal.ENERGY_FLOWING, True, I64_MIN), 8),
    (Hello(V, 0xDEADBEEF, "fw 1.2", 1, 1), 0),  # a fresh boot: nothing held, the first record gets 1
    (Hello(V, 1, "", 0, 0), 0),
    (Hello(V, U32_MAX, "x" * 255, U32_MAX, U32_MAX), 0),
    (Hello(V, 0x00FF00FF, "  spaces, punctuation: ~!@#$%^&*() ", 0x01000000, 0x01000100), 0),
    (Hello(V, 7, "fw", 3, 7), 0),
    (ClockReply(0, 0), 0),
    (ClockReply(1, 1771323630123456), 0),
    (ClockReply(U32_MAX, -1), 0),
    (ClockReply(0x80000000, I64_MIN), 0),
    (ClockReply(0x7FFFFFFF, I64_MAX), 0),
    (ClockReply(42, -1771323630123456), 0),
    (ClockReply(0x01000000, 0x00FF00FF00FF00FF), 0),
    (KeepAlive(0, 1, 1), 0),
    (KeepAlive(-1, U32_MAX, 0), 0),
    (KeepAlive(I64_MIN, 0, U32_MAX), 0),
    (KeepAlive(I64_MAX, 0x01000000, 0x00FF00FF), 0),
    (KeepAlive(1771323630123456, 0xDEADBEEF, 5), 0),
    (LevelRecord(1, 1, Signal.EV_CONNECTED, True, 1771323630123456, 7_200_000_000), 4),
    (LevelRecord(1, 1, Signal.DATA_SIGNED, False, 1771323630123456, None), 1),
    (LevelRecord(255, 255, Signal.RELAY_CLOSED, True, I64_MIN, I64_MAX), U32_MAX),
    (LevelRecord(0, 0, Signal.BAY_OCCUPIED, True, 0, 1), 0x01000000),
    (FaultRecord(1, 1, True, "GroundFailure", "GF-12", "31 mA", 1771323630123456), 2),
    (FaultRecord(0, 0, False, "X", None, None, 0), 1),
    (FaultRecord(255, 255, True, "E" * 50, "V" * 50, "i" * (FAULT_TEXT_MAX - 100), I64_MIN), U32_MAX),  # 512 bytes
    (FaultRecord(2, 1, True, "OverVoltage", "ü€😀", "Überspannung 265 V – L1", -1), 0x01000000),
    (EvStatusRecord(1, 1, 1771323630123456, 45.3, 7400, 60000, 1771330830000000, DepartureSource.EV), 3),
    (EvStatusRecord(0, 0, 0, None, None, None, None), 1),
    (EvStatusRecord(255, 255, I64_MAX, 100.0, 2**31 - 1, U32_MAX, I64_MIN, DepartureSource.OPERATOR), U32_MAX),
    (EvStatusRecord(1, 2, -5, 0.0, -(2**31) + 1, 1, -1, DepartureSource.EV), 7),
]


@pytest.mark.parametrize("record,seq", MCU_RECORDS, ids=lambda v: type(v).__name__ if not isinstance(v, int) else "")
def test_mcu_records_encoded_in_c_decode_on_the_host(asan_cli, record, seq):
    line = _c_encode(asan_cli, record, seq)
    assert line == records.encode(record, seq)  # byte-identical, not merely equivalent
    decoder = FrameDecoder()
    (frame,) = decoder.feed(line)
    assert records.decode(frame) == record and frame.seq == seq
    assert decoder.counters.errors() == 0
    asan_cli.ok(f"cap {len(line)}")
    assert _c_encode(asan_cli, record, seq) == line
    asan_cli.ok(f"cap {len(line) - 1}")
    with pytest.raises(AssertionError, match="ERR encode"):
        _c_encode(asan_cli, record, seq)


def test_hello_firmware_is_truncated_to_255_bytes_like_the_host(cli):
    firmware = "".join(chr(33 + i % 90) for i in range(300))
    line = cli.line(f"hello 42 5 9 {firmware}")
    assert line == records.encode(Hello(V, 42, firmware, 5, 9), 0)
    (frame,) = FrameDecoder().feed(line)
    assert records.decode(frame) == Hello(V, 42, firmware[:255], 5, 9)


def test_c_hello_carries_the_ring_after_the_firmware_string(cli):
    line = cli.line("hello 3735928559 258 772 fw 1.2")
    (frame,) = FrameDecoder().feed(line)
    assert frame.body == bytes([V]) + (0xDEADBEEF).to_bytes(4, "little") + bytes([6]) + b"fw 1.2" \
        + (258).to_bytes(4, "little") + (772).to_bytes(4, "little")
    hello = records.decode(frame)
    assert hello == Hello(V, 0xDEADBEEF, "fw 1.2", oldest_seq=258, next_seq=772)
    assert line == records.encode(hello, 0) and frame.seq == 0


def test_c_clock_reply_carries_probe_id_and_signed_time(cli):
    line = cli.line(f"clock_reply {U32_MAX} {I64_MIN}")
    (frame,) = FrameDecoder().feed(line)
    assert (frame.type, frame.seq) == (FrameType.CLOCK_REPLY, 0)
    assert frame.body == b"\xff\xff\xff\xff" + b"\x00" * 7 + b"\x80"  # u32 LE, then i64 LE two's complement
    assert records.decode(frame) == ClockReply(probe_id=U32_MAX, mcu_time_us=I64_MIN)
    assert cli(f"clock_reply {U32_MAX + 1} 0") == "ERR bad command"  # the driver checks its ranges
    assert cli(f"clock_reply 1 {I64_MAX + 1}") == "ERR bad command"


def test_signal_state_is_sent_as_0_or_1(cli):
    rec = SignalRecord(1, 1, Signal.AUTHORIZED, True, 5)
    line = cli.line(_signal_cmd(3, rec, state=7))  # any non-zero state means 1: the host rejects others
    assert line == records.encode(rec, 3)


def test_frame_size_limit(cli):
    body = bytes(range(1, 256)) * 2
    line = cli.line(f"frame 127 9 {body[:502].hex()}")  # 512 bytes decoded: the maximum
    assert line == encode_frame(127, 9, body[:502])
    (frame,) = FrameDecoder().feed(line)
    assert (frame.type, frame.seq, frame.body) == (127, 9, body[:502])
    assert cli(f"frame 127 9 {body[:503].hex()}") == "ERR encode"


# ---- host -> MCU: encoded by the host, decoded in C ----------------------------------------------

HOST_RECORDS = [Ack(0, 0), Ack(U32_MAX, U32_MAX), Ack(0x12345678, 42), HostHello(1), HostHello(255),
                KeepAlive(0), KeepAlive(-1), KeepAlive(I64_MIN), KeepAlive(I64_MAX), KeepAlive(1771323630123456),
                ClockProbe(0), ClockProbe(1), ClockProbe(U32_MAX), ClockProbe(0x01020304)]


HOST_TYPES = {Ack: FrameType.ACK, HostHello: FrameType.HOST_HELLO, KeepAlive: FrameType.KEEPALIVE,
              ClockProbe: FrameType.CLOCK_PROBE}


def _parsed(record) -> str:
    if isinstance(record, Ack):
        return f"ack={record.boot_id},{record.seq}"
    if isinstance(record, HostHello):
        return f"host_hello={record.protocol_version}"
    if isinstance(record, ClockProbe):
        return f"clock_probe={record.probe_id}"
    return f"keepalive={record.time_us}"


@pytest.mark.parametrize("buf_cap", [512, 18])  # the whole protocol, and JL_HOST_FRAME_MAX
def test_host_records_decode_in_c(asan_cli, buf_cap):
    asan_cli.ok(f"decoder {buf_cap}")
    seqs = (1, U32_MAX, 0, 77, *range(5, len(HOST_RECORDS) + 1))
    assert len(seqs) == len(HOST_RECORDS)
    for seq, record in zip(seqs, HOST_RECORDS):
        line = records.encode(record, seq)
        (frame,) = asan_cli.decode(line)
        assert frame == CFrame(HOST_TYPES[type(record)], seq, frame.body, _parsed(record))
        assert frame.body == FrameDecoder().feed(line)[0].body
    # all of them in one stream, split at every possible point across two feeds
    stream = b"\x00" + b"".join(records.encode(r, i) for i, r in enumerate(HOST_RECORDS, 1))
    for cut in range(len(stream) + 1):
        got = asan_cli.decode(stream[:cut]) + asan_cli.decode(stream[cut:])
        assert [f.parsed for f in got] == [_parsed(r) for r in HOST_RECORDS]
        assert [f.seq for f in got] == list(range(1, len(HOST_RECORDS) + 1))
    assert asan_cli.counters() == {"frames": len(HOST_RECORDS) * (2 + len(stream)),
                              "crc": 0, "cobs": 0, "oversize": 0, "runt": 0, "version": 0}


def test_bad_bodies_and_unknown_types_reach_the_caller_unparsed(cli):
    frames = cli.decode(encode_frame(FrameType.ACK, 1, bytes(7)) + encode_frame(FrameType.HOST_HELLO, 2, b"")
                        + encode_frame(FrameType.KEEPALIVE, 3, bytes(9))
                        + encode_frame(FrameType.CLOCK_PROBE, 5, bytes(3))
                        + encode_frame(FrameType.CLOCK_PROBE, 6, bytes(5))
                        + records.encode(ClockReply(1, 2), 7)  # MCU->host types are not the MCU's to parse
                        + encode_frame(0x7F, 4, b"future"))
    assert [(f.type, f.parsed) for f in frames] == [(4, "bad"), (5, "bad"), (3, "bad"), (6, "bad"), (6, "bad"),
                                                    (7, "-"), (0x7F, "-")]
    assert frames[-1].body == b"future"
    for f in frames[:5]:  # the host calls these peer bugs too
        with pytest.raises(RecordError):
            records.decode(FrameDecoder().feed(encode_frame(f.type, f.seq, f.body))[0])
    assert records.decode(FrameDecoder().feed(encode_frame(0x7F, 4, b"future"))[0]) == Unknown(0x7F)


def _format2_frame() -> bytes:
    """A frame whose first byte (the frame format, 1 in protocol versions 1 and 2) is 2."""
    raw = bytes([2, FrameType.KEEPALIVE, 1, 0, 0, 0]) + bytes(8)
    return cobs_encode(raw + zlib.crc32(raw).to_bytes(4, "little")) + b"\x00"


def test_decoder_counts_errors_like_the_host(cli):
    bad_crc = bytearray(records.encode(KeepAlive(2), 2))
    bad_crc[3] ^= 0x55
    stream = b"".join([
        b"\x00\x00\x00",                       # resync bytes: not errors
        bytes(bad_crc),                        # crc
        cobs_encode(bytes(range(1, 10))) + b"\x00",  # runt: 9 bytes, one short of header + CRC
        b"\x05\x01\x02\x00",                   # cobs: the block runs past the delimiter
        _format2_frame(),                      # version (the frame format)
        bytes(range(1, 256)) * 3 + b"\x00",    # oversize: 765 bytes without a delimiter
        records.encode(Ack(3, 4), 9),          # and the next good frame still comes through
    ])
    frames = cli.decode(stream)
    assert [f.parsed for f in frames] == ["ack=3,4"]
    py = FrameDecoder()
    assert len(py.feed(stream)) == 1
    c = py.counters
    expected = {"frames": c.frames, "crc": c.crc_errors, "cobs": c.cobs_errors, "oversize": c.oversize,
                "runt": c.runt, "version": c.bad_version}
    assert cli.counters() == expected == {"frames": 1, "crc": 1, "cobs": 1, "oversize": 1, "runt": 1, "version": 1}


@pytest.mark.parametrize("body_len", [243, 244, 245, 253, 254, 255, 497, 498, 499, 502])
def test_long_frames_with_full_cobs_blocks_decode_in_c(asan_cli, body_len):
    # no zero in version..body: 0xFF blocks (254 bytes, no implied zero) at the edges of the frame
    body = bytes(1 + i % 255 for i in range(body_len))
    line = encode_frame(0x7F, 0x01010101, body)
    assert asan_cli.decode(line) == [CFrame(0x7F, 0x01010101, body, "-")]
    asan_cli.ok(f"decoder {body_len + 9}")  # one byte short
    assert asan_cli.decode(line) == [] and asan_cli.counters()["oversize"] == 1


def test_small_decoder_buffer_counts_oversize_and_resynchronises(asan_cli):
    asan_cli.ok("decoder 18")
    frames = asan_cli.decode(encode_frame(0x7F, 1, bytes(100)) + encode_frame(0x7F, 2, bytes(9))
                        + records.encode(Ack(1, 2), 3))
    assert [f.parsed for f in frames] == ["ack=1,2"]
    assert asan_cli.counters()["oversize"] == 2


def oversized_line(body_len: int) -> bytes:
    """A well-formed frame the encoders refuse to build: over the 512-byte decoded maximum."""
    raw = bytes([1, 0x7F]) + (1).to_bytes(4, "little") + bytes(body_len)
    return cobs_encode(raw + zlib.crc32(raw).to_bytes(4, "little")) + b"\x00"


def test_c_rejects_decoded_frames_over_512_bytes(cli):
    for body_len in (503, 504, 505):  # 513..515 bytes decoded, 514..516 encoded
        assert cli.decode(oversized_line(body_len)) == []
    assert cli.counters()["oversize"] == 3
    assert len(cli.decode(encode_frame(0x7F, 1, bytes(502)))) == 1


def test_host_decoder_enforces_the_512_byte_maximum():
    line = oversized_line(503)  # 513 bytes decoded with the CRC
    decoder = FrameDecoder()
    assert decoder.feed(line) == [] and decoder.counters.oversize == 1
    with pytest.raises(FrameTooLarge):
        encode_frame(0x7F, 1, bytes(503))


# ---- fuzzing ----------------------------------------------------------------------------------

@FUZZ
@given(frame_type=st.integers(0, 255), seq=st.integers(0, U32_MAX), body=st.binary(max_size=502))
def test_fuzz_c_frames_decode_identically_on_the_host(asan_cli, frame_type, seq, body):
    line = asan_cli.line(f"frame {frame_type} {seq} {body.hex() or '-'}")
    assert line == encode_frame(frame_type, seq, body)
    (frame,) = FrameDecoder().feed(line)
    assert (frame.type, frame.seq, frame.body) == (frame_type, seq, body)
    assert asan_cli.ok(f"crc {body.hex() or '-'}") == f"{zlib.crc32(body):08x}"
    assert asan_cli.line(f"uncobs {line[:-1].hex()}")[:-4] == bytes([1, frame_type]) + seq.to_bytes(4, "little") + body


signal_records = st.builds(SignalRecord, st.integers(0, 255), st.integers(0, 255), st.sampled_from(Signal),
                           st.booleans(), st.integers(I64_MIN, I64_MAX))
firmware = st.text(st.characters(min_codepoint=1, max_codepoint=127, blacklist_characters="\r\n"), max_size=255)


@FUZZ
@given(record=st.one_of(signal_records,
                        st.builds(Hello, st.just(V), st.integers(0, U32_MAX), firmware,
                                  st.integers(0, U32_MAX), st.integers(0, U32_MAX)),
                        st.builds(KeepAlive, st.integers(I64_MIN, I64_MAX), st.integers(0, U32_MAX),
                                  st.integers(0, U32_MAX)),
                        st.builds(LevelRecord, st.integers(0, 255), st.integers(0, 255), st.sampled_from(Signal),
                                  st.booleans(), st.integers(I64_MIN, I64_MAX),
                                  st.one_of(st.none(), st.integers(1, I64_MAX))),
                        st.builds(ClockReply, st.integers(0, U32_MAX), st.integers(I64_MIN, I64_MAX))),
       seq=st.integers(1, U32_MAX))
def test_fuzz_c_records_decode_identically_on_the_host(asan_cli, record, seq):
    if not isinstance(record, (SignalRecord, LevelRecord)):
        seq = 0
    line = _c_encode(asan_cli, record, seq)
    assert line == records.encode(record, seq)
    (frame,) = FrameDecoder().feed(line)
    assert records.decode(frame) == record and frame.seq == seq
    if isinstance(record, (SignalRecord, ClockReply)):
        assert len(line) <= 24  # JL_SIGNAL_LINE_MAX, JL_CLOCK_REPLY_LINE_MAX
    if isinstance(record, (LevelRecord, KeepAlive)):
        assert len(line) <= (32 if isinstance(record, LevelRecord) else 28)  # JL_LEVEL_LINE_MAX, JL_KEEPALIVE_LINE_MAX
    if isinstance(record, Hello):
        assert len(line) <= len(record.firmware) + 26 + (len(record.firmware) >= 230)  # JL_HELLO_LINE_MAX(n)


host_frames = st.one_of(
    st.builds(lambda r, s: records.encode(r, s),
              st.one_of(st.builds(Ack, st.integers(0, U32_MAX), st.integers(0, U32_MAX)),
                        st.builds(HostHello, st.integers(0, 255)), st.builds(KeepAlive, st.integers(I64_MIN, I64_MAX)),
                        st.builds(ClockProbe, st.integers(0, U32_MAX))),
              st.integers(0, U32_MAX)),
    st.builds(encode_frame, st.integers(0, 255), st.integers(0, U32_MAX), st.binary(max_size=40)),
    st.builds(encode_frame, st.integers(0, 255), st.integers(0, U32_MAX),  # long runs: 0xFF COBS blocks
              st.binary(min_size=240, max_size=502).map(lambda b: b.replace(b"\x00", b"\x07"))),
)


@st.composite
def corrupted(draw, frames=host_frames):
    line = bytearray(draw(frames))
    i = draw(st.integers(0, len(line) - 1))
    line[i] ^= draw(st.integers(1, 255))
    return bytes(line)


line_noise = st.lists(st.one_of(
    st.binary(max_size=64),
    host_frames,
    corrupted(),
    st.just(b"\x00"),
    st.binary(min_size=500, max_size=700).map(lambda b: b.replace(b"\x00", b"\x01")),  # no delimiter for long
), max_size=30)


@pytest.mark.slow
@FUZZ
@given(chunks=line_noise, cuts=st.lists(st.integers(0, 20000), max_size=6))
def test_fuzz_c_decoder_on_line_noise_agrees_with_the_host(asan_cli, chunks, cuts):
    stream = b"".join(chunks) + b"\x00"  # the final delimiter closes whatever is open on both sides
    asan_cli.ok("decoder 512")
    bounds = [0, *sorted(c % (len(stream) + 1) for c in cuts), len(stream)]
    c_frames = []
    py = FrameDecoder()
    py_frames = []
    for a, b in zip(bounds, bounds[1:]):  # the same arbitrary split for both decoders
        c_frames += asan_cli.decode(stream[a:b])
        py_frames += py.feed(stream[a:b])
    # Every frame C returns passed the host's CRC check too, and C finds every frame the host finds.
    assert [(f.type, f.seq, f.body) for f in c_frames] == [(f.type, f.seq, f.body) for f in py_frames]
    for c_frame, py_frame in zip(c_frames, py_frames):  # and jl_parse_* agree with records.decode
        if py_frame.type not in HOST_TYPES.values():
            assert c_frame.parsed == "-"  # HELLO, SIGNAL and unknown types are not the MCU's to parse
            continue
        try:
            assert c_frame.parsed == _parsed(records.decode(py_frame))
        except RecordError:
            assert c_frame.parsed == "bad"
    counters = asan_cli.counters()
    # each non-empty run between two 0x00 is either a frame or exactly one error, on both sides
    assert counters["frames"] + sum(v for k, v in counters.items() if k != "frames") \
        == py.counters.frames + py.counters.errors()


# ---- the ring of unacknowledged records ----------------------------------------------------------

def _replayed(cli: CDriver) -> list[tuple[int, SignalRecord]]:
    frames = FrameDecoder().feed(cli.line("replay"))
    return [(f.seq, records.decode(f)) for f in frames]


def _push(cli: CDriver, rec: SignalRecord) -> int:
    return int(cli.ok(f"push {rec.evse_id} {rec.connector_id} {int(rec.signal)} {int(rec.state)} {rec.time_us}"))


def _rec(i: int) -> SignalRecord:
    return SignalRecord(1 + i % 2, 1, Signal(1 + i % 6), bool(i % 3), 1771323630123456 + i)


def test_ring_overflow_keeps_the_newest_and_counts(cli):
    cli.ok("ring 4 7")
    assert [_push(cli, _rec(i)) for i in range(6)] == [1, 2, 3, 4, 5, 6]
    stat = cli.stat("rstat")
    assert (stat["count"], stat["next"], stat["overflowed"]) == (4, 7, 2)
    assert _replayed(cli) == [(seq, _rec(seq - 1)) for seq in (3, 4, 5, 6)]


def test_ring_ack_frees_and_replay_keeps_seq_order(cli):
    cli.ok("ring 4 7")
    for i in range(6):
        _push(cli, _rec(i))
    assert cli.ok("ack 7 4") == "1"
    assert [seq for seq, _ in _replayed(cli)] == [5, 6]
    assert cli.ok("ack 8 6") == "0"  # another boot's ACK changes nothing
    assert cli.ok("ack 7 2") == "1" and cli.stat("rstat")["count"] == 2  # a late ACK neither
    assert _push(cli, _rec(6)) == 7
    assert [seq for seq, _ in _replayed(cli)] == [5, 6, 7]
    assert [cli.ok(f"next {after}") for after in (0, 4, 5, 6, 7, U32_MAX)] == ["5", "5", "6", "7", "none", "none"]
    assert cli.ok("ack 7 100") == "1"  # beyond the last seq: everything
    assert cli.stat("rstat")["count"] == 0 and cli.ok("replay") == "" and cli.ok("next 0") == "none"
    assert _push(cli, _rec(7)) == 8  # numbering goes on within the boot


def test_ring_of_capacity_zero_only_counts(cli):
    cli.ok("ring 0 1")
    assert _push(cli, _rec(0)) == 1 and _push(cli, _rec(1)) == 2
    assert cli.stat("rstat")["overflowed"] == 2 and cli.ok("replay") == "" and cli.ok("ack 1 2") == "1"


@FUZZ
@given(capacity=st.integers(1, 6),
       ops=st.lists(st.one_of(st.just("push"), st.integers(-2, 8)), max_size=40))  # int: ack last_seq + n
def test_ring_matches_the_simulators_model(asan_cli, capacity, ops):
    """The same deque-with-maxlen behaviour as josev_bridge/sim/mcu.py, with slot wrap-around."""
    asan_cli.ok(f"ring {capacity} 99")
    model: deque[tuple[int, SignalRecord]] = deque(maxlen=capacity)
    next_seq, overflowed = 1, 0
    for i, op in enumerate(ops):
        if op == "push":
            rec = _rec(i)
            assert _push(asan_cli, rec) == next_seq
            overflowed += len(model) == capacity
            model.append((next_seq, rec))
            next_seq += 1
        else:
            seq = max(0, next_seq - 1 + op)
            assert asan_cli.ok(f"ack 99 {seq}") == "1"
            while model and model[0][0] <= seq:
                model.popleft()
    assert _replayed(asan_cli) == list(model)
    stat = asan_cli.stat("rstat")
    assert (stat["count"], stat["next"], stat["overflowed"]) == (len(model), next_seq, overflowed)
    # a HOST_HELLO gets HELLO with the ring's bounds (the simulator's oldest_seq), then the replay
    hello, *replay = _frames(asan_cli.line(f"rx {records.encode(HostHello(1), 1).hex()}"))
    assert hello == (0, Hello(V, 99, "jl_cli 1.0", model[0][0] if model else next_seq, next_seq))
    assert replay == list(model)


def _frames(line: bytes) -> list[tuple[int, object]]:
    decoder = FrameDecoder()
    frames = [(f.seq, records.decode(f)) for f in decoder.feed(line)]
    assert decoder.counters.errors() == 0
    return frames


def _rx(cli: CDriver, *host_records) -> list[tuple[int, object]]:
    """Host frames through the example firmware's handler (after a 0x00): what it sends back."""
    return _frames(cli.line(f"rx {_host_line(*host_records).hex()}"))


def _host_line(*host_records) -> bytes:
    return b"\x00" + b"".join(records.encode(r, i) for i, r in enumerate(host_records, 1))


def test_hello_reports_the_ring_and_the_host_counts_exactly_the_overwritten_records(cli):
    """Doc section 4.3: the host declares records lost only when HELLO's oldest_seq says they are gone."""
    cli.ok("ring 4 7")
    assert _rx(cli, HostHello(1)) == [(0, Hello(V, 7, "jl_cli 1.0", 1, 1))]  # empty: oldest == next
    tracker: SequenceTracker = SequenceTracker()
    new_boot, outcome = tracker.hello(7, 1)
    assert new_boot and outcome.lost == 0 and tracker.last_seq == 0
    pushed = [_rec(i) for i in range(6)]
    for rec in pushed[:2]:
        _push(cli, rec)
    for seq, rec in _frames(cli.line("pump")):  # the host stores 1 and 2, its ACK is lost on the way
        tracker.accept(seq, rec)
    for rec in pushed[2:]:
        _push(cli, rec)  # 3..6 in a ring of 4: 1 and 2 are overwritten, which the host does not miss...
    assert cli.ok("pump") != ""  # ...and 3..6 are sent into a dead link
    hello, *replay = _rx(cli, HostHello(1))
    assert hello == (0, Hello(V, 7, "jl_cli 1.0", 3, 7))
    _, outcome = tracker.hello(hello[1].boot_id, hello[1].oldest_seq)
    assert outcome.lost == 0  # 1 and 2 were stored before they were overwritten
    assert [tracker.accept(seq, rec).verdict.value for seq, rec in replay] == ["new"] * 4
    assert tracker.last_seq == 6

    cli.ok("ring 4 8")  # a reboot: this time the host stored only seq 1 before 2 and 3 were overwritten
    tracker = SequenceTracker()
    tracker.hello(8, 1)
    for rec in pushed:
        _push(cli, rec)
    tracker.accept(1, pushed[0])
    hello, *replay = _rx(cli, HostHello(1))
    assert hello == (0, Hello(V, 8, "jl_cli 1.0", 3, 7)) and [seq for seq, _ in replay] == [3, 4, 5, 6]
    _, outcome = tracker.hello(8, hello[1].oldest_seq)
    assert outcome.lost == 1 and tracker.last_seq == 2  # seq 2 is gone for good, and reported
    assert [tracker.accept(seq, rec).verdict.value for seq, rec in replay] == ["new"] * 4


def test_hello_from_a_ring_of_capacity_zero(cli):
    cli.ok("ring 0 5")
    _push(cli, _rec(0))
    _push(cli, _rec(1))
    assert _rx(cli, HostHello(1)) == [(0, Hello(V, 5, "jl_cli 1.0", 3, 3))]  # nothing held: both gone


# ---- the link behaviour of doc section 4, as the README's integration example does it ----------

def test_host_hello_gets_hello_and_replay_ack_frees(cli):
    boot = 0xC0FFEE
    cli.ok(f"ring 16 {boot}")
    cli.ok("fw test fw 2")
    cli.ok("decoder 18")
    pushed = [_rec(i) for i in range(4)]

    def hello(oldest_seq: int, next_seq: int) -> tuple[int, Hello]:
        return 0, Hello(V, boot, "test fw 2", oldest_seq, next_seq)

    def rx(*host_records) -> list:
        return _rx(cli, *host_records)

    for rec in pushed[:3]:
        _push(cli, rec)
    assert _frames(cli.line("pump")) == [(1, pushed[0]), (2, pushed[1]), (3, pushed[2])]  # live sending
    assert cli.ok("pump") == ""  # each once
    assert rx(HostHello(1)) == [hello(1, 4), (1, pushed[0]), (2, pushed[1]), (3, pushed[2])]  # all unacked again
    _push(cli, pushed[3])
    assert _frames(cli.line("pump")) == [(4, pushed[3])]  # one cursor: a replay and live records never repeat
    assert rx(Ack(boot, 2)) == []
    assert rx(HostHello(1)) == [hello(3, 5), (3, pushed[2]), (4, pushed[3])]
    assert rx(Ack(boot + 1, 4), KeepAlive(1771323630123456)) == []  # another boot's ACK is ignored
    stat = cli.stat("rstat")
    assert (stat["count"], stat["tx_after"], stat["host_time"]) == (2, 4, 1771323630123456)
    assert rx(Ack(boot, 4), HostHello(1)) == [hello(5, 5)]  # all acknowledged: oldest == next
    assert cli.stat("rstat")["host_heard"] == stat["host_heard"] + 2  # every verified frame counts as heard


def test_keepalive_says_how_far_the_example_firmware_has_sent(cli):
    """Doc section 4.6: next_seq is one more than the last record handed to the UART, not the ring's
    next_seq: a record waiting for room in the UART has not been lost, and must not look lost."""
    cli.ok("ring 8 77")
    cli.ok("clock 5000")
    assert _frames(cli.line("tick")) == [(0, KeepAlive(5000, 77, 1))]  # nothing sent yet
    _push(cli, _rec(0))
    assert _frames(cli.line("tick")) == [(0, KeepAlive(5000, 77, 1))]  # pushed, but not handed to the UART
    assert [seq for seq, _ in _frames(cli.line("pump"))] == [1]
    _push(cli, _rec(1))
    cli.ok("pump")
    assert _frames(cli.line("tick")) == [(0, KeepAlive(5000, 77, 3))]
    assert int(cli.ok(f"pushlevel {_level_args(LevelRecord(1, 1, Signal.AUTHORIZED, True, 9, 60_000_000))}")) == 3
    assert cli.ok("pushlevel 1 1 2 1 9 -1") == "0" and cli.stat("rstat")["next"] == 4  # refused: a negative age
    assert cli("level 3 1 1 2 1 9 -1") == "ERR encode"
    with pytest.raises(RecordError):  # as the host would refuse it
        records.decode(Frame(FrameType.LEVEL, 3, struct.pack("<BBBBqq", 1, 1, 2, 1, 9, -1)))
    cli.ok("pump")
    assert _frames(cli.line("tick")) == [(0, KeepAlive(5000, 77, 4))]


BYTE_US = 87  # jl_cli's clock advances this much per byte rx feeds (one byte at 115200 baud)


@pytest.mark.parametrize("start_us", [1771323630123456, 0, -5_000_000, I64_MIN, I64_MAX - 100_000])
def test_clock_probe_is_answered_with_the_clock_at_receipt_ahead_of_queued_records(cli, start_us):
    """Doc section 5: CLOCK_REPLY carries the MCU clock when the probe's 0x00 arrived and overtakes
    the records queued before it, but not the HELLO: the host must learn of a new boot before it
    gets a sample of that boot's clock."""
    cli.ok("ring 16 9")
    pushed = [_rec(i) for i in range(3)]
    for rec in pushed:
        _push(cli, rec)
    host = [HostHello(1), ClockProbe(0xFEEDF00D), Ack(9, 1), ClockProbe(1), KeepAlive(3)]
    data = _host_line(*host)
    # the offset of each frame's closing 0x00: byte k arrives at start + BYTE_US * (k + 1)
    ends = [i for i, b in enumerate(data) if b == 0][1:]
    cli.ok(f"clock {start_us}")
    got = _rx(cli, *host)
    at = [start_us + BYTE_US * (end + 1) for end in ends]
    assert got == [(0, Hello(V, 9, "jl_cli 1.0", 1, 4)), (0, ClockReply(0xFEEDF00D, at[1])),
                   (0, ClockReply(1, at[3])), *[(i + 1, r) for i, r in enumerate(pushed)]]
    # again: the clock went on counting, and the reply is byte-identical to the host's encoder
    again_us = start_us + BYTE_US * len(data) + BYTE_US * (ends[1] + 1)
    hello = records.encode(Hello(V, 9, "jl_cli 1.0", 2, 4), 0)
    assert cli.line(f"rx {data.hex()}").startswith(hello + records.encode(ClockReply(0xFEEDF00D, again_us), 0))


def test_clock_probe_with_a_bad_body_gets_no_reply(cli):
    cli.ok("clock 1000")
    line = b"\x00" + encode_frame(FrameType.CLOCK_PROBE, 1, bytes(3)) + encode_frame(FrameType.CLOCK_PROBE, 2, bytes(5))
    assert cli.ok(f"rx {line.hex()}") == ""
    at_us = 1000 + BYTE_US * (len(line) + len(_host_line(ClockProbe(5))))  # its 0x00 is the last byte
    assert _rx(cli, ClockProbe(5)) == [(0, ClockReply(5, at_us))]


# ---- FAULT and EV_STATUS records ------------------------------------------------------------------

def _doc_alert_vector(label: str) -> tuple[bytes, bytes]:
    raw = _doc_hex(rf"\n{label} before COBS: ([0-9a-f |]+)\n")
    line = _doc_hex(rf"\n{label} on the line: ([0-9a-f ]+)\n")
    return raw, line


@pytest.mark.parametrize("label,command", [
    ("FAULT", "fault 2 1 1 1 1771323630123456 47726f756e644661696c757265 47462d3132 3331206d41"),
    ("EV_STATUS", "ev_status 3 1 1 1771323630223456 453 7400 60000 1771330830000000 1"),
])
def test_doc_alert_vectors_come_out_of_the_c_encoder(cli, label, command):
    raw, line = _doc_alert_vector(label)
    assert cli.line(command) == line
    assert cli.line(f"uncobs {line[:-1].hex()}") == raw
    assert line.hex() in (MCU / "README.md").read_text(encoding="utf-8")  # the README's driver example


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _host_view_of_c_fault(ec: bytes, vc: bytes, info: bytes) -> tuple[bytes, bytes, bytes] | None:
    """What the C side should send for these strings (info cut to fit), or None if it must refuse:
    the rules of docs/serial-protocol.md, written independently of the C code."""
    if not 1 <= len(ec) <= 50 or len(vc) > 50:
        return None
    room = FAULT_TEXT_MAX - len(ec) - len(vc)
    if len(info) > room:
        cut = room
        while cut > 0 and info[cut] & 0xC0 == 0x80:  # never split a character
            cut -= 1
        info = info[:cut]
    if not all(_valid_utf8(s) for s in (ec, vc, info)):
        return None
    return ec, vc, info


unicode_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=60)


@FUZZ
@given(error_code=unicode_text.filter(lambda t: 1 <= len(t.encode()) <= 50),
       vendor=unicode_text.filter(lambda t: len(t.encode()) <= 50),
       info=st.one_of(unicode_text, st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                                            min_size=150, max_size=500)),
       active=st.booleans(), time_us=st.integers(I64_MIN, I64_MAX), seq=st.integers(1, U32_MAX))
def test_fuzz_c_faults_are_the_hosts_with_info_cut_to_fit(asan_cli, error_code, vendor, info, active, time_us, seq):
    record = FaultRecord(7, 3, active, error_code, vendor or None, fit_fault_info(error_code, vendor, info), time_us)
    line = asan_cli.line(f"fault {seq} 7 3 {int(active)} {time_us} {_hex(error_code)} {_hex(vendor)} {_hex(info)}")
    assert line == records.encode(record, seq)
    (frame,) = FrameDecoder().feed(line)
    assert records.decode(frame) == record and len(line) <= 516  # JL_FAULT_LINE_MAX


no_nul = st.binary(max_size=60).map(lambda b: b.replace(b"\x00", b"\x01"))


@FUZZ
@given(ec=no_nul, vc=no_nul, info=st.one_of(no_nul, st.binary(min_size=380, max_size=600).map(
    lambda b: b.replace(b"\x00", b"\xa9"))))
def test_fuzz_c_refuses_exactly_the_faults_the_host_would_refuse(asan_cli, ec, vc, info):
    expected = _host_view_of_c_fault(ec, vc, info)
    args = f"1 1 1 5 {ec.hex() or '-'} {vc.hex() or '-'} {info.hex() or '-'}"
    asan_cli.ok("ring 4 1")
    seq = asan_cli.ok(f"pushfault {args}")
    if expected is None:
        assert seq == "0" and asan_cli(f"fault 1 {args}") == "ERR encode"
        assert asan_cli.stat("rstat")["next"] == 1  # nothing entered the ring
        return
    assert seq == "1"
    (frame,) = FrameDecoder().feed(asan_cli.line(f"fault 1 {args}"))
    sent = records.decode(frame)  # never a RecordError: C sends only what the host accepts
    assert (sent.error_code, sent.vendor_error_code or "", sent.info or "") == tuple(s.decode() for s in expected)
    assert _replayed(asan_cli) == [(1, sent)]


@pytest.mark.parametrize("ec,vc,info", [
    ("-", "-", "-"),                                   # error_code empty
    ("45" * 51, "-", "-"),                             # 51 bytes
    ("45", "56" * 51, "-"),                            # vendor 51 bytes
    ("c328", "-", "-"),                                # not UTF-8
    ("45", "eda080", "-"),                             # a surrogate
    ("45", "-", "f4908080"),                           # beyond U+10FFFF
    ("45", "-", "c0af"),                               # overlong
    ("45", "-", "e282"),                               # a character cut short (not by the frame limit)
])
def test_c_refuses_bad_faults_at_push(cli, ec, vc, info):
    cli.ok("ring 4 1")
    assert cli.ok(f"pushfault 1 1 1 5 {ec} {vc} {info}") == "0"
    assert cli.stat("rstat")["next"] == 1 and cli.ok("replay") == ""


ev_records = st.builds(
    lambda evse, connector, time_us, soc, power, capacity, departure, source: EvStatusRecord(
        evse, connector, time_us, soc, power, capacity, departure,
        DepartureSource.NONE if departure is None else source),
    st.integers(0, 255), st.integers(0, 255), st.integers(I64_MIN, I64_MAX),
    st.one_of(st.none(), st.integers(0, 1000).map(lambda tenths: tenths / 10)),
    st.one_of(st.none(), st.integers(-(2**31) + 1, 2**31 - 1)), st.one_of(st.none(), st.integers(1, U32_MAX)),
    st.one_of(st.none(), st.integers(I64_MIN, I64_MAX).filter(bool)),
    st.sampled_from([DepartureSource.EV, DepartureSource.OPERATOR]))


@FUZZ
@given(record=ev_records, seq=st.integers(1, U32_MAX))
def test_fuzz_c_ev_status_decodes_identically_on_the_host(asan_cli, record, seq):
    line = asan_cli.line(f"ev_status {seq} {_ev_args(record)}")
    assert line == records.encode(record, seq) and len(line) <= 41  # JL_EV_STATUS_LINE_MAX
    (frame,) = FrameDecoder().feed(line)
    assert records.decode(frame) == record and frame.seq == seq


@pytest.mark.parametrize("soc,departure,source", [(1001, 0, 0), (0xFFFE, 0, 0), (5, 0, 3), (5, 0, 1), (5, 9, 0)])
def test_c_refuses_bad_ev_status(cli, soc, departure, source):
    cli.ok("ring 4 1")
    assert cli.ok(f"pushev 1 1 5 {soc} 0 0 {departure} {source}") == "0"
    assert cli(f"ev_status 1 1 1 5 {soc} 0 0 {departure} {source}") == "ERR encode"
    assert cli.stat("rstat")["next"] == 1
    with pytest.raises(RecordError):  # and the host would have refused it too
        records.decode(Frame(FrameType.EV_STATUS, 1, struct.pack("<BBqHiIqB", 1, 1, 5, soc, 0, 0, departure, source)))


def _push_any(cli: CDriver, rec) -> int:
    if isinstance(rec, SignalRecord):
        return _push(cli, rec)
    if isinstance(rec, LevelRecord):
        return int(cli.ok(f"pushlevel {_level_args(rec)}"))
    if isinstance(rec, FaultRecord):
        return int(cli.ok(f"pushfault {_fault_args(rec)}"))
    return int(cli.ok(f"pushev {_ev_args(rec)}"))


def _mixed(i: int):
    """A record of each type in turn, all valid, FAULTs sometimes with long (cut) info."""
    if i % 4 == 3:
        return LevelRecord(1 + i % 2, 1, Signal(1 + i % 6), bool(i % 2), 1771323630123456 + i, (i * 1000) or None)
    if i % 3 == 0:
        return _rec(i)
    if i % 3 == 1:
        info = fit_fault_info("GroundFailure", f"V{i}", "ä" * (i * 37 % 300))
        return FaultRecord(1 + i % 2, 1, bool(i % 2), "GroundFailure", f"V{i}", info, 1771323630123456 + i)
    return EvStatusRecord(1, 2, 1771323630123456 + i, i % 1001 / 10, i * 100, 60000, None)


@pytest.mark.slow
@FUZZ
@given(capacity=st.integers(1, 6), ops=st.lists(st.one_of(st.just("push"), st.integers(-2, 8)), max_size=30))
def test_ring_of_mixed_records_matches_the_simulators_model(asan_cli, capacity, ops):
    """Signals, faults and EV status share one numbering, one ring and one replay, as in the sim."""
    asan_cli.ok(f"ring {capacity} 99")
    model: deque = deque(maxlen=capacity)
    next_seq = 1
    for i, op in enumerate(ops):
        if op == "push":
            rec = _mixed(i)
            assert _push_any(asan_cli, rec) == next_seq
            model.append((next_seq, rec))
            next_seq += 1
        else:
            seq = max(0, next_seq - 1 + op)
            asan_cli.ok(f"ack 99 {seq}")
            while model and model[0][0] <= seq:
                model.popleft()
    assert _replayed(asan_cli) == list(model)
    hello, *replay = _frames(asan_cli.line(f"rx {records.encode(HostHello(1), 1).hex()}"))
    assert hello == (0, Hello(V, 99, "jl_cli 1.0", model[0][0] if model else next_seq, next_seq))
    assert replay == list(model)  # tx_pump sends every type through jl_encode_record
