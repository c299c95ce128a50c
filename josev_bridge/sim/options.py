"""The simulator's command-line options, apart from the simulator: `josev-bridge --help` builds every
sub-command's parser, and importing the simulator for that cost the CLI ~50 ms of its ~60 ms of
imports (several times that on a small ARM board), for a command the technician did not ask for."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..adapters.log_output import LEVELS
from ..protocol.framing import PROTOCOL_VERSION

DEFAULT_CONTROL = "127.0.0.1:8765"
DEFAULT_CHARGER_ID = "josev-sim"
DEFAULT_RING_SIZE = 4096
DEFAULT_EVSE_COUNT = 2  # `sim --evse-count`; the control API's document states it (tests/cli/test_docs_agree.py)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pty-link", required=True, type=Path, metavar="PATH",
                        help="symlink to create to the pty the bridge opens as its serial port")
    parser.add_argument("--control", default=DEFAULT_CONTROL, metavar="HOST:PORT",
                        help=f"where the control API listens (default {DEFAULT_CONTROL}; port 0 = any free port)")
    parser.add_argument("--charger-id", default=DEFAULT_CHARGER_ID,
                        help=f"target.charger_id the control API answers to (default {DEFAULT_CHARGER_ID})")
    parser.add_argument("--evse-count", type=int, default=DEFAULT_EVSE_COUNT, metavar="N",
                        help=f"number of EVSEs, ids 1..N (default {DEFAULT_EVSE_COUNT})")
    parser.add_argument("--token-file", type=Path, metavar="PATH",
                        help="read the API bearer token from PATH (default: generate one into <pty-link>.token)")
    parser.add_argument("--clock-offset-s", type=float, default=0.0, metavar="SECONDS",
                        help="MCU clock minus the true clock at start, in seconds (default 0)")
    parser.add_argument("--clock-drift-ppm", type=float, default=0.0, metavar="PPM",
                        help="MCU clock rate error in ppm, + runs fast (default 0)")
    parser.add_argument("--ring-size", type=int, default=DEFAULT_RING_SIZE, metavar="N",
                        help=f"unacknowledged records the MCU keeps for replay (default {DEFAULT_RING_SIZE})")
    parser.add_argument("--clock-shift-file", type=Path, metavar="PATH",
                        help="tests: add the seconds in PATH (re-read when it changes) to the TRUE clock, and so "
                             "to the MCU clock; with the bridge's JOSEV_BRIDGE_TEST_CLOCK_SHIFT_FILE naming the "
                             "same file, time passes for both at once (a 10-minute outage in no time)")
    parser.add_argument("--protocol-version", type=int, choices=(1, PROTOCOL_VERSION), default=PROTOCOL_VERSION,
                        help="serial protocol the MCU speaks: 1 emulates a first-version MCU (re-reports its 1s "
                             f"as SIGNALs after a reboot, KEEPALIVE without ring fields; default {PROTOCOL_VERSION})")
    parser.add_argument("--log-level", default="INFO", type=str.upper, choices=LEVELS, metavar="LEVEL",
                        help=f"log lines on stderr from this level up: {', '.join(LEVELS)} (default INFO)")
