"""SIGTERM for the benches: exit through the `finally` blocks and context managers.

SIGTERM's default ends the process at once, skipping what stops the broker, the simulator and the
bridge a bench started: `kill` or `timeout` left them running. `install()` turns it into SystemExit.
"""

from __future__ import annotations

import signal


def install() -> None:
    signal.signal(signal.SIGTERM, _exit)


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
