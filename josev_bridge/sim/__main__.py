"""`python -m josev_bridge.sim`: the sim without the josev-bridge CLI."""

from __future__ import annotations

import argparse
import sys

from .app import main as run_sim
from .options import add_arguments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m josev_bridge.sim", description="Simulated josev MCU on a pty.")
    add_arguments(parser)
    return run_sim(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
