"""The journal's retention: the age and the size bound, enforced in small batches by id range.

Age retention does not trust `created_us` (the board's clock may have stepped since): the writer
keeps `clock_marks` (which host boot and CLOCK_BOOTTIME each id range was written at) and
`host_boots` (each boot's realtime offset while synchronised), and deletes by id range what
core/journal_age says is older than the bound. A file of an older version gains the two tables
when the daemon opens it (CREATE TABLE IF NOT EXISTS: nothing is rewritten); its rows, below the
first mark, age by `created_us` as before, but only while the clock is known right. A version without
marks writing into a file that has them (a downgrade) would add rows this one takes for the newest
mark's: move the journal aside before going back to one.

`JournalRetention` is the base class of adapters/journal_store.JournalStore: the same connection,
the writer's (only it changes the marks and deletes); the store itself writes and reads the rows.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

from ..core.journal_age import UNKNOWN_BOOT, ClockReading, Mark, age_plan, needs_mark, span_for, synced_offset
from .sqlite_tx import immediate

log = logging.getLogger("josev_bridge.journal")

# the two tables of the clock marks: created with the journal's own (journal_store.SCHEMA)
RETENTION_SCHEMA = """
-- core/journal_age.Mark: the rows from first_id up to the next mark's were written in host boot
-- boot_id, at CLOCK_BOOTTIME boottime_us or later and before boottime_us + span_us
CREATE TABLE IF NOT EXISTS clock_marks (
    first_id INTEGER PRIMARY KEY,
    boot_id TEXT NOT NULL,
    boottime_us INTEGER NOT NULL,
    span_us INTEGER NOT NULL
);
-- realtime minus boottime, as last read in that boot while the kernel said the clock was synchronised
CREATE TABLE IF NOT EXISTS host_boots (boot_id TEXT PRIMARY KEY, synced_offset_us INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    max_age_us: int
    max_bytes: int
    batch_rows: int = 500  # rows deleted per statement: short transactions, never a long stall

    @property
    def low_water_bytes(self) -> int:
        """Deleting goes on down to this, so the next inserts have room below the bound."""
        return self.max_bytes * 8 // 10

    @property
    def span_us(self) -> int:
        """How long of writing one clock mark covers (core/journal_age.span_for)."""
        return span_for(self.max_age_us)


class JournalRetention:
    """The age and size bounds of the journal table, and the clock marks age is read from."""

    _db: sqlite3.Connection

    def _start_retention(self, writer: bool) -> None:
        """The writer's copy of clock_marks (in first_id order) and host_boots: only it changes them (a
        reader's stay empty)."""
        self._marks: list[Mark] = []
        self._offsets: dict[str, int] = {}
        self._legacy_left = True  # rows below the first mark may remain (cleared once none do)
        if writer:
            self._marks = [self._checked_mark(*row) for row in self._db.execute(
                "SELECT first_id, boot_id, boottime_us, span_us FROM clock_marks ORDER BY first_id").fetchall()]
            self._offsets = self._checked_offsets()

    def _checked_mark(self, first_id: int, boot_id: object, boottime_us: object, span_us: object) -> Mark:
        """A mark as stored, or, when a value has the wrong type (column affinity lets a damaged or
        hand-edited file hold text there), one of an unknown boot: its rows then age by the size bound
        alone. Dropping it instead would give its rows to the mark before, which was written earlier
        (deleted early); keeping it as is would fail every later write."""
        if type(boot_id) is str and type(boottime_us) is int and type(span_us) is int:
            return Mark(first_id, boot_id, boottime_us, span_us)
        log.warning("journal clock mark at id %d is damaged (%r, %r, %r): its rows age by max_size_mb only",
                    first_id, boot_id, boottime_us, span_us)
        self._repair("UPDATE clock_marks SET boot_id = ?, boottime_us = 0, span_us = 0 WHERE first_id = ?",
                     (UNKNOWN_BOOT, first_id))
        return Mark(first_id, UNKNOWN_BOOT, 0, 0)

    def _checked_offsets(self) -> dict[str, int]:
        """Each host boot's synchronised offset; a damaged one is forgotten (that boot's age unknown)."""
        offsets = {}
        for boot_id, offset in self._db.execute("SELECT boot_id, synced_offset_us FROM host_boots").fetchall():
            if type(boot_id) is str and type(offset) is int:
                offsets[boot_id] = offset
                continue
            log.warning("journal host boot offset %r = %r is damaged: forgotten (that boot's rows age by "
                        "max_size_mb only)", boot_id, offset)
            self._repair("DELETE FROM host_boots WHERE boot_id IS ?", (boot_id,))
        return offsets

    def _repair(self, sql: str, args: tuple) -> None:
        """Write a repair back (once, not at every start); in memory it holds either way (a full disk)."""
        try:
            with immediate(self._db):
                self._db.execute(sql, args)
        except sqlite3.Error as exc:
            log.warning("journal repair not written (%s): done again at the next start", exc)

    def _rows_unmarked(self) -> None:
        """Rows are about to be inserted: without a mark (no clock given: tests, tools) they age by created_us."""
        if not self._marks:
            self._legacy_left = True

    def delete_oldest(self, rows: int) -> int:
        """Delete up to `rows` oldest rows (lowest ids): the size bound."""
        with immediate(self._db):
            return self._db.execute("DELETE FROM journal WHERE id IN "
                                    "(SELECT id FROM journal ORDER BY id LIMIT ?)", (rows,)).rowcount

    def delete_ids(self, first: int, end: int, rows: int) -> int:
        """Delete up to `rows` rows with first <= id < end, lowest first (a primary-key range: O(rows))."""
        with immediate(self._db):
            return self._db.execute("DELETE FROM journal WHERE id IN (SELECT id FROM journal WHERE id >= ? AND id < ? "
                                    "ORDER BY id LIMIT ?)", (first, end, rows)).rowcount

    # -- the clock marks (core/journal_age) ---------------------------------------------------------
    def note_clock(self, now: ClockReading) -> None:
        """Keep this boot's synchronised offset (a write only when it is new or moved: a step)."""
        offset = synced_offset(self._offsets.get(now.boot_id), now)
        if offset is not None:
            with immediate(self._db):
                self._db.execute("INSERT INTO host_boots (boot_id, synced_offset_us) VALUES (?, ?) ON CONFLICT "
                                 "(boot_id) DO UPDATE SET synced_offset_us = excluded.synced_offset_us",
                                 (now.boot_id, offset))
            self._offsets[now.boot_id] = offset

    def mark_writes(self, at: ClockReading, span_us: int) -> None:
        """Before inserting rows read off the queue at `at`: a new mark when the newest one does not
        cover them (another host boot, or `span_us` since it; else no write at all)."""
        self.note_clock(at)
        if not needs_mark(self._marks[-1] if self._marks else None, at):
            return
        seq = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'journal'").fetchone()
        mark = Mark((seq[0] if seq else 0) + 1, at.boot_id, at.boottime_us, span_us)
        with immediate(self._db):  # REPLACE: a mark no row was written under (the insert failed) gives way
            self._db.execute("INSERT OR REPLACE INTO clock_marks (first_id, boot_id, boottime_us, span_us) "
                             "VALUES (?, ?, ?, ?)", (mark.first_id, mark.boot_id, mark.boottime_us, mark.span_us))
        if self._marks and self._marks[-1].first_id == mark.first_id:
            self._marks.pop()
        self._marks.append(mark)

    def _forget_marks(self, first: int, end: int, boot_id: str) -> None:
        """The rows of the marks in [first, end) are all gone: drop the marks, and the offsets of boots
        left without marks (not `boot_id`'s, the running boot's). A row written later gets a new mark
        if the one left newest does not cover it."""
        with immediate(self._db):
            self._db.execute("DELETE FROM clock_marks WHERE first_id >= ? AND first_id < ?", (first, end))
            self._marks = [m for m in self._marks if not first <= m.first_id < end]
            gone = set(self._offsets) - {m.boot_id for m in self._marks} - {boot_id}
            self._db.executemany("DELETE FROM host_boots WHERE boot_id = ?", [(b,) for b in gone])
        for boot in gone:
            del self._offsets[boot]

    def _delete_legacy(self, below: int, cutoff_us: int, rows: int) -> int:
        """Rows of a version without marks (id < `below`): the run of the lowest ids created before
        `cutoff_us`, up to `rows`; it stops at the first younger row."""
        cursor = self._db.execute("SELECT id, created_us FROM journal WHERE id < ? ORDER BY id LIMIT ?", (below, rows))
        last = found = None
        for row_id, created_us in cursor:
            found = row_id
            if created_us >= cutoff_us:
                break
            last = row_id
        cursor.close()
        if found is None:
            self._legacy_left = False
        if last is None:
            return 0
        with immediate(self._db):
            return self._db.execute("DELETE FROM journal WHERE id <= ?", (last,)).rowcount

    # -- the bounds ---------------------------------------------------------------------------------
    def release_free_pages(self, pages: int = 256) -> None:
        """Give free pages back to the file system (incremental vacuum): the file shrinks too."""
        self._db.execute(f"PRAGMA incremental_vacuum({int(pages)})").fetchall()

    def used_bytes(self) -> int:
        """Bytes of pages in use (free pages are reused before the file grows)."""
        page_size, pages, free = (self._db.execute(f"PRAGMA {p}").fetchone()[0]
                                  for p in ("page_size", "page_count", "freelist_count"))
        return (pages - free) * page_size

    def file_bytes(self) -> int:
        page_size, pages = (self._db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_size", "page_count"))
        return pages * page_size

    def enforce_age(self, policy: RetentionPolicy, now: ClockReading) -> int:
        """One bounded step of the age bound: up to `policy.batch_rows` of the rows core/journal_age
        says are older than it, by id range (no scan: the primary key). Returns the rows deleted.
        A range found empty has its marks dropped, so it costs no statement at the next step."""
        self.note_clock(now)
        plan = age_plan(self._marks, self._offsets, now, policy.max_age_us)
        for first, end in plan.ranges:
            deleted = self.delete_ids(first, end, policy.batch_rows)
            if deleted == policy.batch_rows:
                return deleted
            self._forget_marks(first, end, now.boot_id)
            if deleted:
                return deleted
        if plan.legacy_cutoff_us is not None and self._legacy_left:
            return self._delete_legacy(plan.legacy_below, plan.legacy_cutoff_us, policy.batch_rows)
        return 0

    def enforce_size(self, policy: RetentionPolicy) -> int:
        """Above 90 % of the bound, delete the oldest rows in batches down to 80 %. Returns the rows deleted."""
        deleted = 0
        if self.used_bytes() > policy.max_bytes * 9 // 10:
            while self.used_bytes() > policy.low_water_bytes:
                batch = self.delete_oldest(policy.batch_rows)
                deleted += batch
                if not batch:
                    break
        if deleted:
            self._forget_marks_below(self.oldest_id())
        if self.file_bytes() > policy.max_bytes:
            self.release_free_pages()
        return deleted

    def _forget_marks_below(self, oldest_id: int) -> None:
        """Drop the marks whose rows all lie below `oldest_id` (the size bound deleted them); the mark
        holding the oldest row stays, and so does the newest."""
        keep_from = next((i for i, m in enumerate(self._marks[1:]) if m.first_id > oldest_id), len(self._marks) - 1)
        if keep_from > 0:
            self._forget_marks(self._marks[0].first_id, self._marks[keep_from].first_id,
                               self._marks[-1].boot_id)

    def oldest_id(self) -> int:
        """The lowest id left (0: none): how far retention has deleted (export counts rows it never sent)."""
        return self._db.execute("SELECT COALESCE(MIN(id), 0) FROM journal").fetchone()[0]
