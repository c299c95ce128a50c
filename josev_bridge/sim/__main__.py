"""`python -m josev_bridge.sim`: the sim without the josev-bridge CLI."""

from __future__ import annotations

import argparse
import logging
import sys

from .app import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m josev_bridge.sim", description="Simulated josev MCU on a pty.")
    add_arguments(parser)
    parser.add_argument("--log-level", default="INFO", help="logging level on stderr (default INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
