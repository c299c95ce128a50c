"""Where the daemon's log lines go, and in what form: the system journal with priorities, or a terminal.

Under systemd, stderr is a stream to journald (`JOURNAL_STREAM` holds that stream's device and
inode). journald stamps each line with the time and the unit, and reads a `<N>` prefix (sd-daemon(3),
syslog priorities) as the line's priority: without it every line is priority 6 (info), and
`journalctl -p warning -u josev-bridge` shows nothing. So there each line, and each line of a
multi-line record (a stack trace), starts with its priority. Anywhere else (a terminal, a file, a
test harness) there is nobody to add the time: each record starts with it, in UTC, like every
time the bridge prints.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TextIO

# logging level -> syslog priority (sd-daemon.h: SD_ERR 3, SD_WARNING 4, SD_INFO 6, SD_DEBUG 7)
PRIORITIES = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def priority(levelno: int) -> int:
    """The syslog priority of a logging level (a custom level takes the next standard one above it)."""
    for level in sorted(PRIORITIES):
        if levelno <= level:
            return PRIORITIES[level]
    return PRIORITIES[logging.CRITICAL]


def journal_stream(stream: TextIO | None = None, environ: dict[str, str] | None = None) -> bool:
    """True when `stream` (stderr) is the journald stream systemd gave this process: JOURNAL_STREAM
    is `<device>:<inode>` of it. A child whose stderr was redirected inherits the variable but not
    the stream, hence the comparison."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    stream = sys.stderr if stream is None else stream
    try:
        device, inode = (int(part) for part in value.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


class JournalFormatter(logging.Formatter):
    """`<4>WARNING josev_bridge.serial: ...`, the prefix on every line of the record."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


class TerminalFormatter(logging.Formatter):
    """`2026-02-17T10:20:30.123Z WARNING josev_bridge.serial: ...` (UTC, never local time)."""

    def converter(self, seconds: float | None) -> time.struct_time:
        """UTC, never the board's local time (logging's default is time.localtime)."""
        return time.gmtime(seconds)

    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%dT%H:%M:%S")


def configure_logging(level: str) -> None:
    """One handler on stderr, formatted for journald or for a person; the level applies to all."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JournalFormatter() if journal_stream(handler.stream) else TerminalFormatter())
        root.addHandler(handler)
    root.setLevel(level)


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def level_of(line: str) -> str | None:
    """The level name of a log line in either form (or the bare `LEVEL name: ...` of older versions),
    None for anything else (a continuation line): for tests and benches that pick out the errors."""
    words = line.split(" ", 2)
    first = words[0].lstrip("<01234567>") if words[0].startswith("<") else words[0]
    if first in LEVELS:
        return first
    return words[1] if len(words) > 1 and words[0].endswith("Z") and words[1] in LEVELS else None
