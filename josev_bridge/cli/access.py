"""Permission checks before a command opens a file: one line naming the file, its group and the fix.

Checked up front (os.access, with this user's real ids) rather than read off a failure: SQLite's
"unable to open database file" names neither the file nor the reason, and a directory the user may
not enter makes the file itself look absent. The check walks the path from the root, so the
message names the first directory or file that stops this user, which is the one to fix.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
from pathlib import Path

NEEDS = {"read": os.R_OK, "write": os.W_OK, "search": os.X_OK}
# The permission bits that let a group member (not the owner) do each thing.
GROUP_BITS = {"read": stat.S_IRGRP, "write": stat.S_IWGRP, "search": stat.S_IXGRP}


class AccessDenied(Exception):
    """This user may not read or write a file the command needs; the message says which and what to do.
    The CLI exits 3 (EXIT_DENIED) on it, never with a traceback."""


def require(path: str | Path, need: str, what: str) -> None:
    """Raise AccessDenied unless this user may `need` ("read" or "write") `path`, and enter every
    directory above it. A file that does not exist passes (the caller says "no such file" better);
    for "write", a missing file needs write access to its directory instead.

    `what` is what the command was doing, for the message ("reading the journal").
    """
    p = Path(os.path.abspath(path))
    for directory in reversed(p.parents):  # "/" first
        if not os.path.lexists(directory):
            return  # missing, not denied: the caller's own check names it
        if not os.access(directory, os.X_OK):
            raise AccessDenied(denial(directory, "search", what))
    if os.path.lexists(p):
        if not os.access(p, NEEDS[need]):
            raise AccessDenied(denial(p, need, what))
        if need == "write" and not os.access(p.parent, os.W_OK):  # SQLite writes its journal beside the file
            raise AccessDenied(denial(p.parent, "write", what))
    elif need == "write" and not os.access(p.parent, os.W_OK):
        raise AccessDenied(denial(p.parent, "write", what))


def denial(path: Path, need: str, what: str) -> str:
    """`permission denied: <what> needs <need> access to <path> (owner, group, mode); <the fix>`."""
    try:
        st = path.stat()
    except OSError:
        return f"permission denied: {what} needs {need} access to {path}; run it with sudo"
    owner, group = _name(pwd.getpwuid, st.st_uid), _name(grp.getgrgid, st.st_gid)
    mode = st.st_mode & 0o7777
    where = f"{path} (owner {owner}, group {group}, mode {mode:04o})"
    if mode & GROUP_BITS[need]:
        fix = (f"run it with sudo, or as a member of group {group} "
               f"(sudo adduser $USER {group}, then log in again)")
    else:
        fix = f"run it with sudo (members of group {group} may not {need} it either)"
    return f"permission denied: {what} needs {need} access to {where}; {fix}"


def from_os_error(exc: OSError, what: str) -> AccessDenied | None:
    """An EACCES/EPERM that got past the checks (a file replaced meanwhile), in the same words;
    None for any other error."""
    if exc.errno not in (errno.EACCES, errno.EPERM) or not exc.filename:
        return None
    path = Path(os.path.abspath(exc.filename))
    for directory in reversed(path.parents):
        if not os.access(directory, os.X_OK):
            return AccessDenied(denial(directory, "search", what))
    return AccessDenied(denial(path, "write" if os.access(path, os.R_OK) else "read", what))


def _name(lookup, ident: int) -> str:
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)
