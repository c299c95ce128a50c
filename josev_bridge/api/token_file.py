"""The API's bearer token file: read, or created at first start, by the daemon.

Its own module so the daemon, which loads the token at start (a full disk or a bad file is then the
same one-line refusal as before the API had a process of its own), does not import the HTTP server;
the API process gets the token from the daemon over a pipe, never on a command line or in the
environment (both are readable in /proc by any process of the same user).
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from pathlib import Path

from ..config import API_TOKEN_FIX, DamagedSecret, EmptySecret, read_secret

log = logging.getLogger("josev_bridge.api")

TOKEN_KEY = "[api] token_file"


def load_or_create_token(path: Path) -> str:
    """The bearer token: read from a 0600 file, or created there (random, 0600) at first start.

    A file left empty by a crash between its creation and its write, or garbled, is replaced with a
    new token (one WARNING naming the file): the daemon made it, nobody can hold its token, and an empty token
    must never be the one compared against `Authorization: Bearer `.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            return read_secret(str(path), TOKEN_KEY, fix=API_TOKEN_FIX)
        except DamagedSecret as exc:
            why = "empty (cut short by a crash?)" if isinstance(exc, EmptySecret) else "garbled (corrupted?)"
            log.warning("API token file %s is %s; writing a new token into it", path, why)
            return _replace_token(path)
    except OSError as exc:  # a full or read-only disk, or no permission: the daemon says which, with the path
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    token = secrets.token_urlsafe(32)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:  # e.g. a full disk: the empty file left behind is replaced at the next start
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    log.warning("API token created in %s (mode 0600); send it as 'Authorization: Bearer <token>'", path)
    return token


def _replace_token(path: Path) -> str:
    """A new token written beside `path` (0600), synced, then renamed over it: a crash leaves the old
    file or the new one, never a half-written token."""
    token = secrets.token_urlsafe(32)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp: mode 0600
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(token + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:  # a full or read-only disk: exit 1, systemd tries again (not a config error)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    return token
