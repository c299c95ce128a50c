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
import time
from pathlib import Path

from ..core.status_view import written_age_s
from ..core.timestamps import format_us
from .host_clock import this_boot
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


def stamp() -> dict:
    """What the daemon adds to each document it writes: when, by the wall clock for people and by the
    monotonic clock (with the host boot it belongs to) for `age_s`."""
    return {"written_at": format_us(time.time_ns() // 1000), "written_at_epoch": time.time(),
            "written_at_monotonic": time.monotonic(), "host_boot": this_boot()}


def age_s(status: dict, now_epoch: float | None = None) -> float:
    """Seconds since `status` was written, immune to steps of the board's clock (core/status_view);
    `now_epoch` for the wall clock when the caller has its own (a test's)."""
    return written_age_s(status, now_epoch=time.time() if now_epoch is None else now_epoch,
                         now_monotonic=time.monotonic(), boot_id=this_boot())


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
