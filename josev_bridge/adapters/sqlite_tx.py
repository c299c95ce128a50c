"""One write transaction on an autocommit SQLite connection (isolation_level=None).

BEGIN IMMEDIATE takes the write lock up front, so concurrent writers (the daemon and a technician's
CLI) queue on the busy timeout instead of failing late at COMMIT.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator


@contextlib.contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")  # inside: a COMMIT refused (a full disk) must not leave the transaction open,
    except BaseException:  # or every later BEGIN on this connection fails
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:  # the connection may already have rolled back (e.g. SQLITE_FULL)
            pass
        raise
