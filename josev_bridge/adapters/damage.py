"""Damaged or unusable storage: tell damage (move it aside, go on) from a disk the operator must fix.

A file that is not a database, is truncated or is malformed is *damage*: it is moved aside as
`<name>.corrupt-<UTC time>` (with its -wal, -shm or -journal, so the copy stays readable with
`sqlite3`) and the caller starts a fresh one. A read-only or full file system is not damage: moving
files would not help and could lose them, so it becomes a `StorageError` naming the path and the
errno, and the daemon exits for systemd to retry.

The check at open is cheap whatever the size: the 100-byte header (magic, and a file that holds
every page its header declares: a truncation), the schema, and the first and last row of each
table (the right-most path of a B-tree: after a truncation, usually the missing part).
`PRAGMA quick_check` runs too when the file is at most `quick_check_max_bytes`: it reads every
page (a large journal takes up to seconds on a board with a cold page cache), too slow before the
first answer for the journal, fine for the others.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

log = logging.getLogger("josev_bridge.storage")

SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26
COMPANIONS = ("-wal", "-shm", "-journal")  # SQLite's files beside a database: they travel with it
MAGIC = b"SQLite format 3\x00"
PROBE_BYTES = 512

T = TypeVar("T")


class Damaged(Exception):
    """The file's content is unusable (found by our own checks, not by SQLite)."""


class StorageError(OSError):
    """Storage the operator must fix (read-only, full, no permission): the message names the path and
    the errno, and says what to do. An OSError, so callers that already handle OSError handle it."""


def is_damage(exc: BaseException) -> bool:
    """SQLite says the content is bad (not a database, malformed), as opposed to the disk refusing."""
    if isinstance(exc, Damaged):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and code is not None and code & 0xFF in (SQLITE_CORRUPT,
                                                                                          SQLITE_NOTADB)


def aside_path(path: Path) -> Path:
    """`<name>.corrupt-<UTC time>`, not yet taken (a second damage in the same second gets `.2`)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside, n = path.with_name(f"{path.name}.corrupt-{stamp}"), 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.corrupt-{stamp}.{n}")
    return aside


def move_aside(path: Path) -> Path:
    """Rename the file and its SQLite companions out of the way; returns the new name.
    Raises OSError (a read-only file system: then nothing can be done here)."""
    aside = aside_path(path)
    os.replace(path, aside)
    for suffix in COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            os.replace(companion, aside.with_name(aside.name + suffix))
    return aside


def header_problem(path: Path) -> str | None:
    """What is wrong with the file's header, or None (also for no file or an empty one: SQLite makes
    those a new database). The size check is skipped while a WAL or rollback journal is beside
    the file: a checkpoint cut short by a power loss may leave the file short, and SQLite completes
    it from there."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    with path.open("rb") as f:
        head = f.read(100)
    if len(head) < 100 or not head.startswith(MAGIC):
        return "file is not a database (no SQLite header)"
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    declared_valid = pages > 0 and head[24:28] == head[92:96]
    pending = any(_nonempty(path.with_name(path.name + s)) for s in ("-wal", "-journal"))
    if declared_valid and not pending and size < pages * page_size:
        return f"truncated: {size} bytes, its header declares {pages * page_size}"
    return None


def _nonempty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def content_problem(db: sqlite3.Connection, path: Path, quick_check_max_bytes: int) -> str | None:
    """What SQLite finds wrong in the content, or None. Raises sqlite3.Error for anything that is not
    damage (locked, I/O error)."""
    try:
        tables = db.execute("SELECT name, sql LIKE '%WITHOUT ROWID%' FROM sqlite_master WHERE type = 'table' "
                            "AND name NOT LIKE 'sqlite_%'").fetchall()
        for table, without_rowid in tables:  # the first and the last leaf of each table's B-tree
            ends = "* FROM (SELECT * FROM \"{0}\" LIMIT 1)" if without_rowid else "min(rowid), max(rowid) FROM \"{0}\""
            db.execute("SELECT " + ends.format(table)).fetchall()
        if path.stat().st_size <= quick_check_max_bytes:
            return _checked(db, "quick_check") and _checked(db, "integrity_check")
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            return str(exc)
        raise
    return None


def _checked(db: sqlite3.Connection, pragma: str) -> str | None:
    """The first problem `PRAGMA quick_check` or `integrity_check` reports, or None. A quick_check
    problem is confirmed by integrity_check: SQLite 3.40 (Debian 12's) reports 'NULL value in' for
    every row of a healthy WITHOUT ROWID table (alert_recipients), and that must not cost the
    alerts at every start."""
    result = db.execute(f"PRAGMA {pragma}(1)").fetchone()
    return None if result is not None and result[0] == "ok" else f"{pragma}: {result[0] if result else 'no result'}"


def open_or_set_aside(path: Path, connect: Callable[[], sqlite3.Connection], *, what: str, loses: str = "",
                      quick_check_max_bytes: int,
                      salvage: Callable[[Path, sqlite3.Connection, str], tuple[str, str]] | None = None
                      ) -> sqlite3.Connection:
    """Open `path` with `connect` (which also sets it up: pragmas, schema) and check it; when it is
    damaged, move it aside, log one ERROR line, and open a fresh one.

    `loses` says what starting empty loses. `salvage(aside, fresh, why)`, instead, copies what it can
    from the moved file into the fresh database and returns (what it kept, what is lost) for the
    same line. Any other failure (read-only, full, no permission) is a StorageError naming the path
    and the errno.
    """
    problem = header_problem(path)
    if problem is None:
        db = None
        try:
            db = connect()
            problem = content_problem(db, path, quick_check_max_bytes)
        except sqlite3.Error as exc:
            if not is_damage(exc):
                _close(db)
                raise storage_error(path, exc) from None
            problem = str(exc)
        if problem is None:
            assert db is not None  # connect() returned: only its failure leaves db None, and sets a problem
            return db
        _close(db)
    try:
        aside = move_aside(path)
        db = connect()
        done, lost = salvage(aside, db, problem) if salvage is not None else (carry_sequences(aside, db), loses)
    except sqlite3.Error as exc:
        raise storage_error(path, exc) from None
    log.error("%s %s is damaged (%s); moved aside to %s and started a new one%s; lost: %s",
              what, path, problem, aside, f" ({done})" if done else "", lost)
    return db


def carry_sequences(aside: Path, fresh: sqlite3.Connection) -> str:
    """Continue AUTOINCREMENT ids after the damaged file's, when it still says where it was: an id
    names one row forever (export de-duplication, API cursors). Returns what it did."""
    try:
        old = sqlite3.connect(f"file:{aside}?mode=ro", uri=True)
        try:
            rows = old.execute("SELECT name, seq FROM sqlite_sequence").fetchall()
        finally:
            old.close()
    except sqlite3.Error:
        return "ids start again at 1"
    with fresh:
        for name, seq in rows:
            fresh.execute("DELETE FROM sqlite_sequence WHERE name = ?", (name,))
            fresh.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (name, seq))
    return "ids continue after " + ", ".join(f"{name} {seq}" for name, seq in rows) if rows else ""


def _close(db: sqlite3.Connection | None) -> None:
    if db is not None:
        try:
            db.close()
        except sqlite3.Error:
            pass


def probe_writable(directory: Path) -> None:
    """Write, sync and remove a small file in `directory`: a read-only or full file system shows here
    as an OSError with its errno and the directory's name, rather than as SQLite's vaguer message
    later. Raises StorageError."""
    probe = directory / f".write-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)
    except OSError as exc:
        raise StorageError(exc.errno, f"{exc.strerror}{advice(exc.errno)}", str(directory)) from None


def storage_error(path: Path, exc: sqlite3.Error) -> StorageError:
    """SQLite's refusal (no errno of its own) as a StorageError naming the file, with the directory's
    errno when a write there fails too."""
    try:
        probe_writable(path.parent)
    except StorageError as probed:
        return StorageError(probed.errno, f"{exc} ({probed.strerror})", str(path))
    return StorageError(errno.EIO, f"{exc}{advice(_errno_of(exc))}", str(path))


def _errno_of(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return {13: errno.ENOSPC, 8: errno.EROFS}.get(code)  # SQLITE_FULL, SQLITE_READONLY


def advice(code: int | None) -> str:
    """What the operator does about an errno (appended to the message)."""
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "; make it writable for the bridge's user"
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "; free space on that file system"
    return ""


def describe(exc: OSError) -> str:
    """`path: [Errno N] what; advice` (OSError's own str puts the path last, in quotes)."""
    if exc.filename is None:
        return str(exc)
    if not exc.errno:
        return f"{exc.filename}: {exc.strerror}"
    text = f"{exc.filename}: [Errno {exc.errno}] {exc.strerror}"
    return text if isinstance(exc, StorageError) else text + advice(exc.errno)
