"""A JSON document replaced atomically: write a temp file, fsync, rename, fsync the directory.

A kill -9 or power loss at any point leaves either the previous or the new document. A file that
does not parse (disk corruption, a hand edit) is moved aside and reported, never fatal.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger("josev_bridge.state")


class AtomicJsonFile:
    def __init__(self, path: str | Path, mode: int = 0o600) -> None:
        self.path = Path(path)
        self.mode = mode

    def load(self) -> dict | None:
        """The stored document, or None if there is none (or it was unreadable and moved aside)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return data
        except ValueError as exc:
            self.quarantine(f"does not parse ({exc})")
            return None

    def quarantine(self, why: str) -> Path:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        os.replace(self.path, aside)
        log.error("state file %s %s; moved aside to %s and starting without it", self.path, why, aside)
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
