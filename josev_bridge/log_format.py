"""One log format for every process of the bridge (the daemon and its API process).

Plain lines on stderr: journald adds the time, the unit and the process id; never the local-time
guesswork. Its own module so the API process can use it without importing the daemon (paho, ...).
"""

from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    """`LEVEL logger.name: message` on stderr, at `level`, once per process."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
