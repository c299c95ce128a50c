"""The stable path (`--pty-link`, e.g. /run/josev-bridge-sim/ttyMCU) that points at the sim's
current pty: the bridge's config names this path, while the pty behind it changes at every start and
every simulated unplug."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("josev_bridge.sim.pty")


class StaleLinkError(RuntimeError):
    """The --pty-link path exists and is not a symlink: refuse to clobber a real file."""


def install_link(link: Path, target: str) -> None:
    """Point `link` at `target`, replacing an old symlink atomically, never a regular file."""
    if link.exists() and not link.is_symlink():
        raise StaleLinkError(f"{link} exists and is not a symlink; not replacing it")
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def remove_link(link: Path, target: str) -> None:
    """Remove `link` only if it still points at our pty (another sim may have taken the path over)."""
    try:
        if link.is_symlink() and os.readlink(link) == target:
            link.unlink()
    except OSError as exc:
        log.warning("could not remove %s: %s", link, exc)
