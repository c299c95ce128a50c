"""The baseline for bench/ingest.py: a bare host that only reads and decodes MCU records.

It opens the port exactly as the bridge does (pyserial, 115200 baud, read timeout 0.2 s, exclusive
lock), sends 0x00 + HOST_HELLO, then loops `read(max(1, in_waiting))` -> FrameDecoder ->
records.decode, and after every read batch that advanced the sequence it writes ACK(boot, last seq)
at once: the bridge's wire behaviour, without persistence, clock mapping, edge store or MQTT.

    python bench/bare_reader.py /path/to/pty-link

Prints one line, READY, once the port is open; on SIGTERM prints its counters as one JSON line.
"""

from __future__ import annotations

import json
import signal
import sys

import serial

import common  # noqa: F401  (bench/common.py: puts this checkout on sys.path)
from josev_bridge.core.conditions import SignalRecord
from josev_bridge.protocol import records
from josev_bridge.protocol.framing import PROTOCOL_VERSION, FrameDecoder
from josev_bridge.protocol.records import Ack, Hello, HostHello, RecordError


def main(argv: list[str]) -> int:
    path = argv[1]
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    port = serial.Serial(path, baudrate=115200, timeout=0.2, write_timeout=1.0, exclusive=True)
    decoder = FrameDecoder()
    tx_seq = 1
    port.write(b"\x00" + records.encode(HostHello(PROTOCOL_VERSION), tx_seq))
    print("READY", flush=True)
    counts = {"records": 0, "out_of_order": 0, "record_errors": 0, "acks": 0, "bytes_in": 0}
    boot_id: int | None = None
    last_seq = 0
    while not stop:
        data = port.read(max(1, port.in_waiting))
        if not data:
            continue
        counts["bytes_in"] += len(data)
        advanced = False
        for frame in decoder.feed(data):
            try:
                record = records.decode(frame)
            except RecordError:
                counts["record_errors"] += 1
                continue
            if isinstance(record, SignalRecord):
                if frame.seq == last_seq + 1:
                    last_seq = frame.seq
                    counts["records"] += 1
                    advanced = True
                elif frame.seq > last_seq:
                    counts["out_of_order"] += 1
            elif isinstance(record, Hello):
                if record.boot_id != boot_id:
                    boot_id, last_seq = record.boot_id, 0
        if advanced and boot_id is not None:
            tx_seq += 1
            port.write(records.encode(Ack(boot_id, last_seq), tx_seq))
            counts["acks"] += 1
    port.close()
    print(json.dumps({**counts, "last_seq": last_seq, "decoder": vars(decoder.counters)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
