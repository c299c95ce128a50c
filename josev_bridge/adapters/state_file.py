"""A JSON document replaced atomically: write a temp file, fsync, rename, fsync the directory.

A kill -9 or power loss at any point leaves either the previous or the new document. A file that
does not parse (disk corruption, a hand edit) is moved aside and reported, never fatal.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .damage import aside_path

log = logging.getLogger("josev_bridge.state")


class AtomicJsonFile:
    def __init__(self, path: str | Path, mode: int = 0o600, loses: str = "") -> None:
        """`loses`: what starting without the document loses, for the ERROR line when it is damaged."""
        self.path = Path(path)
        self.mode = mode
        self.loses = loses

    def load(self) -> dict | None:
        """The stored document, or None if there is none (or it was unreadable and moved aside)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw.decode("utf-8"))  # random bytes: UnicodeDecodeError, a ValueError too
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return data
        except ValueError as exc:
            self.quarantine(f"does not parse ({_brief(exc)})")
            return None

    def quarantine(self, why: str) -> Path:
        """Move the damaged document aside and say, in one ERROR line, what starting without it loses.
        Raises OSError when it cannot be moved (a read-only file system: the daemon cannot start)."""
        aside = aside_path(self.path)
        os.replace(self.path, aside)
        lost = f"; lost: {self.loses}" if self.loses else ""
        log.error("state file %s %s; moved aside to %s and starting without it%s", self.path, why, aside, lost)
        return aside

    def save(self, data: dict) -> None:
        """Replace the document atomically. Raises OSError (e.g. disk full); the old document stays."""
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        payload = json.dumps(data, separators=(",", ":")).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.mode)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _brief(exc: ValueError, limit: int = 120) -> str:
    """A decoder's message, short (a UnicodeDecodeError quotes the bytes it choked on)."""
    text = str(exc)
    return text if len(text) <= limit else text[:limit - 1] + "…"
