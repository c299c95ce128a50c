"""The message journal in SQLite: one table, keyset queries, retention in small batches.

WAL with synchronous=NORMAL: a commit is a write to the WAL, no fsync, so a kill -9 loses nothing
committed and a power cut at most the last few commits; the database is always readable. Ids come
from AUTOINCREMENT, never reused, so an id names one row forever (export de-duplication, cursors).
Several processes may open the file: the daemon writes, the CLI and the API read.

Retention (the age bound by clock marks, the size bound) is the store's base class,
adapters/journal_retention.JournalRetention: the same connection, its own tables.
"""

from __future__ import annotations

import functools
import heapq
import json
import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..core.journal_entry import Direction, JournalEntry, NoAnswer
from ..core.journal_query import JournalQuery, Position
from .damage import open_or_set_aside
from .journal_retention import RETENTION_SCHEMA, JournalRetention
from .sqlite_tx import immediate

log = logging.getLogger("josev_bridge.journal")

FILE_NAME = "journal.sqlite"
LOSES = ("its past rows (the API, `josev-bridge messages` and the export see only rows from now on; "
         "the moved file still holds what was readable)")
QUICK_CHECK_MAX_BYTES = 4 * 2**20  # a bigger journal gets the cheap checks only (adapters/damage.py)
SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_us INTEGER NOT NULL,
    direction TEXT NOT NULL,
    message_type TEXT NOT NULL,
    topic TEXT,
    correlation_id TEXT,
    payload TEXT,
    response TEXT,
    latency_us INTEGER,
    note TEXT
);
CREATE INDEX IF NOT EXISTS journal_created ON journal (created_us);
CREATE INDEX IF NOT EXISTS journal_type_created ON journal (message_type, created_us);
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, row_id INTEGER NOT NULL);
"""
def _json_column(index: int) -> str:
    """Element `index` of a json_each row as stored: its JSON text (`->`, so numbers keep the digits
    they arrived with: json_extract would turn a 30-digit integer into a REAL, and one past a double
    into 'Inf', which no JSON reader takes back), or NULL for null."""
    path = f"'$[{index}]'"
    return f"CASE json_type(value, {path}) WHEN 'null' THEN NULL ELSE value -> {path} END"


_INSERT_FROM_JSON = (
    "INSERT INTO journal (created_us, direction, message_type, topic, correlation_id, payload, response, latency_us,"
    " note) SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),"
    " json_extract(value, '$[3]'), json_extract(value, '$[4]'), " + _json_column(5) + ", " + _json_column(6) + ","
    " json_extract(value, '$[7]'), json_extract(value, '$[8]') FROM json_each(?) ORDER BY key")

DUMP_ROWS = 64  # rows per json.dumps call: C code holds the GIL throughout and a
# request arriving meanwhile waits; between calls the answering thread can take the GIL


def _document(rows: list[list], max_bytes: int | None = None) -> tuple[str, int]:
    """One JSON array of the first rows, encoded DUMP_ROWS at a time, and how many rows it holds: as
    many as fit in `max_bytes` (at least one), up to the first row JSON cannot carry (NaN,
    Infinity). Raises ValueError when that is the very first row."""
    parts: list[str] = []
    size, count = 2, 0
    for i in range(0, len(rows), DUMP_ROWS):
        chunk = rows[i:i + DUMP_ROWS]
        try:
            part = json.dumps(chunk, allow_nan=False)[1:-1]
        except ValueError:
            part = None
        if part is None or (max_bytes is not None and size + len(part) + 1 > max_bytes):
            for row in chunk:  # row by row, up to the limit or the row that cannot be JSON
                try:
                    text = json.dumps(row, allow_nan=False)
                except ValueError:
                    break
                if max_bytes is not None and parts and size + len(text) + 1 > max_bytes:
                    break
                parts.append(text)
                size, count = size + len(text) + 1, count + 1
            break
        parts.append(part)
        size, count = size + len(part) + 1, count + len(chunk)
    if not count:
        raise ValueError("the first row cannot be carried in JSON")
    return "[" + ",".join(parts) + "]", count


_CHUNK_SIZES = (64, 16, 4, 1)  # rows per INSERT: four statements only, so SQLite's statement cache
# (128 per connection) does not fill with a compiled statement for every batch size (~10 MB seen)


def _chunks(rows: int):
    """64 + 64 + ... + 16 + 4 + 4 + 1: at most one statement per 64 rows plus nine for the rest."""
    for size in _CHUNK_SIZES:
        while rows >= size:
            yield size
            rows -= size


@functools.lru_cache(maxsize=len(_CHUNK_SIZES))
def _insert_sql(rows: int) -> str:
    return ("INSERT INTO journal (created_us, direction, message_type, topic, correlation_id, payload, response,"
            " latency_us, note) VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows))


_COLUMNS = "id, created_us, direction, message_type, topic, correlation_id, payload, response, latency_us, note"
_NO_ANSWER = {a.value: a for a in NoAnswer}


@dataclass(frozen=True, slots=True)
class StoredEntry:
    id: int
    entry: JournalEntry


class JournalStore(JournalRetention):
    """One connection; not shared between threads (the writer and each reader open their own)."""

    def __init__(self, path: str | Path, *, readonly: bool = False, timeout: float = 5.0,
                 repair: bool = False) -> None:
        """`repair` (the daemon's writer only): move a damaged file aside and start a new one."""
        self.path = Path(path)
        if readonly:
            if not self.path.exists():
                raise FileNotFoundError(f"{self.path}: no journal yet (has the bridge run?)")
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=timeout,
                                       isolation_level=None, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._open_writer(timeout) if repair else self._connect_writer(timeout)
            self.path.chmod(0o640)
        self.bytes_written = 0  # JSON text inserted through this connection: when to check the size bound
        self._start_retention(writer=not readonly)

    def _connect_writer(self, timeout: float) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # effective on a new file only
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA journal_size_limit=1048576")  # the WAL shrinks back to 1 MiB
            db.execute("PRAGMA wal_autocheckpoint=256")  # pages: keeps the WAL small on flash
            db.execute("PRAGMA cache_size=-512")  # KiB: the writer needs little; RSS stays small
            db.executescript(SCHEMA + RETENTION_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _open_writer(self, timeout: float) -> sqlite3.Connection:
        """The daemon's writer: a damaged journal is moved aside and a new one started, because the
        journal is a record of what happened, never a reason to stop answering."""
        return open_or_set_aside(self.path, lambda: self._connect_writer(timeout), what="journal", loses=LOSES,
                                 quick_check_max_bytes=QUICK_CHECK_MAX_BYTES)

    def close(self) -> None:
        self._db.close()

    # -- writing ----------------------------------------------------------------------------------
    def insert(self, entries: Iterable[JournalEntry]) -> int:
        """Insert all of `entries`, in order; returns the last id (0 if nothing). Raises sqlite3.Error.
        One transaction, unless a row JSON cannot carry (NaN) splits the batch around it."""
        entries, last_id = list(entries), 0
        while entries:
            last_id, written = self.insert_some(entries)
            entries = entries[written:]
        return last_id

    def insert_some(self, entries: list[JournalEntry], max_bytes: int | None = None) -> tuple[int, int]:
        """Insert the first entries, as many as fit in `max_bytes` of JSON text (at least one), in one
        transaction; returns (last id, how many). Raises sqlite3.Error.

        The batch goes to SQLite as one JSON document that SQLite itself takes apart (json_each):
        Python pays C-level json.dumps calls, and the insert is one statement, its own transaction.
        Every statement hands the GIL away and has to win it back from the thread answering requests
        (a forced switch there, docs/performance.md), so a batch costs one. `max_bytes` bounds what
        one insert adds, so the size bound, checked between inserts, is never passed. A row JSON
        cannot carry (NaN in a payload) ends the document; alone at its head, it takes the row path
        (with `max_bytes`, that row alone; without, the whole batch).
        """
        if not entries:
            return 0, 0
        self._rows_unmarked()
        try:
            document, count = _document([[e.created_us, e.direction.value, e.message_type, e.topic,
                                          e.correlation_id, _plain(e.payload), _plain(e.response), e.latency_us,
                                          e.note] for e in entries], max_bytes)
        except (ValueError, TypeError):
            document, count = None, (len(entries) if max_bytes is None else 1)
        if document is not None:
            last_id = self._db.execute(_INSERT_FROM_JSON, (document,)).lastrowid
            assert last_id is not None  # an INSERT sets it
            self.bytes_written += len(document)
            return last_id, count
        with immediate(self._db):
            self.bytes_written += self._insert_rows(entries[:count])
        return self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'journal'").fetchone()[0], count

    def _insert_rows(self, entries: list[JournalEntry]) -> int:
        """Row by row (multi-row INSERTs of four fixed shapes: SQLite caches one compiled statement each).
        Returns about how many bytes of text went in."""
        rows = [(e.created_us, e.direction.value, e.message_type, e.topic, e.correlation_id,
                 _dump(e.payload), _dump(e.response), e.latency_us, e.note) for e in entries]
        start = 0
        for size in _chunks(len(rows)):
            chunk = rows[start:start + size]
            self._db.execute(_insert_sql(size), [value for row in chunk for value in row])
            start += size
        return sum(len(r[5] or "") + len(r[6] or "") + len(r[8] or "") + 64 for r in rows)

    def get_cursor(self, name: str) -> int:
        row = self._db.execute("SELECT row_id FROM cursors WHERE name = ?", (name,)).fetchone()
        return row[0] if row else 0

    def set_cursor(self, name: str, row_id: int) -> None:
        with immediate(self._db):
            self._db.execute("INSERT INTO cursors (name, row_id) VALUES (?, ?) "
                             "ON CONFLICT (name) DO UPDATE SET row_id = excluded.row_id", (name, row_id))

    # -- reading ----------------------------------------------------------------------------------
    def query(self, q: JournalQuery) -> tuple[list[StoredEntry], bool]:
        """One page, newest first by (created_us, id); and whether more rows match.

        Each message type is read through its own index in order and the lists merged, so a
        filtered page costs O(limit) whatever the table size.
        """
        streams = [self._page(q, t) for t in (q.message_types or (None,))]
        merged = heapq.merge(*streams, key=lambda s: (s.entry.created_us, s.id), reverse=True)
        page = [s for _, s in zip(range(q.limit + 1), merged)]
        return page[:q.limit], len(page) > q.limit

    def _page(self, q: JournalQuery, message_type: str | None) -> list[StoredEntry]:
        return [_entry(row) for row in self._db.execute(*page_statement(q, message_type))]

    def after_id(self, row_id: int, limit: int = 500) -> list[StoredEntry]:
        """Rows with a greater id, oldest first (export, `--follow`)."""
        return [_entry(r) for r in self._db.execute(
            f"SELECT {_COLUMNS} FROM journal WHERE id > ? ORDER BY id LIMIT ?", (row_id, limit))]

    def last_id(self) -> int:
        return self._db.execute("SELECT COALESCE(MAX(id), 0) FROM journal").fetchone()[0]

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM journal").fetchone()[0]


def page_statement(q: JournalQuery, message_type: str | None) -> tuple[str, list]:
    """The SQL for one message type's part of a page (all types: None), and its arguments.

    After a cursor, the range's upper end is the cursor's time itself (the row value only breaks
    ties within that microsecond). SQLite walks the index down from the upper end of the range
    and cannot tell which of two upper bounds on created_us is the tighter one: given both
    `BETWEEN start AND end` and `(created_us, id) < cursor`, it started at `end` and stepped over
    every row newer than the cursor, so a page deep in a wide range cost O(rows skipped) instead of
    O(limit) (docs/performance.md).
    """
    upper = q.end_us if q.after is None else min(q.end_us, q.after.created_us)
    sql = f"SELECT {_COLUMNS} FROM journal WHERE created_us BETWEEN ? AND ?"
    args: list = [q.start_us, upper]
    if message_type is not None:
        sql += " AND message_type = ?"
        args.append(message_type)
    if q.after is not None:
        sql += " AND (created_us, id) < (?, ?)"
        args += [q.after.created_us, q.after.id]
    sql += " ORDER BY created_us DESC, id DESC LIMIT ?"
    args.append(q.limit + 1)
    return sql, args


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode  # built once: json.dumps with
# options builds an encoder per call, which was a third of the journal's CPU per row


def _plain(value):
    """What json.dumps takes for a payload or response (a NoAnswer is its string)."""
    return value.value if isinstance(value, NoAnswer) else value


def _dump(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, NoAnswer):
        value = value.value
    return _ENCODE(value)


def _entry(row: tuple) -> StoredEntry:
    ident, created_us, direction, message_type, topic, correlation_id, payload, response, latency_us, note = row
    answer = None if response is None else json.loads(response)
    if isinstance(answer, str) and answer in _NO_ANSWER:
        answer = _NO_ANSWER[answer]
    return StoredEntry(ident, JournalEntry(created_us, Direction(direction), message_type, topic, correlation_id,
                                           None if payload is None else json.loads(payload), answer, latency_us, note))


def position_of(stored: StoredEntry) -> Position:
    return Position(stored.entry.created_us, stored.id)
