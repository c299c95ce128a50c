"""The daemon's status document on disk, `runtime_dir/status.json`, for everyone who touches it.

The daemon writes it (`writer`, at least every 2 s, atomically); `josev-bridge status` and
`josev-bridge request` (cli/) and the status page (api/page_api, in the API process) read it
(`read`), and judge it with `core/status_view.verdict`, which needs to know whether the process
that wrote it is still there (`alive`). What the document holds is status_report's business; this
is the file: its name and mode, reading it with every error put into words, and the writer's pid.

A file on tmpfs rather than a socket: the status then works even when the daemon is wedged or
gone, and says how old the information is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .state_file import AtomicJsonFile

STATUS_FILE = "status.json"
MODE = 0o640  # the daemon's group (technicians, `sudo adduser alice josev-bridge`) reads it


def status_path(runtime_dir: str | Path) -> Path:
    return Path(runtime_dir) / STATUS_FILE


def writer(runtime_dir: str | Path) -> AtomicJsonFile:
    """The daemon's side: `save(doc)` replaces the document atomically (a reader sees the old or the new)."""
    return AtomicJsonFile(status_path(runtime_dir), mode=MODE)


def read(runtime_dir: str | Path) -> tuple[dict | None, str | None]:
    """(status, problem): the document, or None and why there is none, in words. Whether the bridge
    that wrote it still runs and keeps it fresh is the verdict's (core/status_view, with `alive`).
    Raises PermissionError when this user may not read the file (the CLI names the group; cli/access)."""
    path = status_path(runtime_dir)
    try:
        status = json.loads(path.read_bytes().decode("utf-8"))  # bad UTF-8 is a ValueError too
    except FileNotFoundError:
        return None, f"the bridge is not running (no {path})"
    except PermissionError:
        raise
    except (OSError, ValueError) as exc:
        return None, f"cannot read {path}: {exc}"
    if not isinstance(status, dict):
        return None, f"cannot read {path}: not a status document"
    return status, None


def alive(pid: object) -> bool:
    """Whether a process with that pid exists (EPERM: it does, another user's). The status file is
    rewritten at least every 2 s, so a live pid with an old file is a wedged bridge, or, after a
    crash, the pid taken by another process; its age tells the two apart from a running bridge."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
