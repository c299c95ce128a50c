"""What can be saved from a damaged device_model.sqlite, and an exact account of what could not.

A flag that silently flips back to its default is a field incident (the bridge would answer, or
stop answering, against the CSMS's or a technician's choice), so the daemon copies every value
SQLite can still read, row by row, into the fresh database, checks each against the definitions,
and names every variable that falls back to its default. The account goes into the ERROR line
and into `josev-bridge status`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..core.device_model import Mutability, Source, VariableDef, validate

_VALUE_COLUMNS = "component, variable, attribute, value, source, updated_at"
_AUDIT_COLUMNS = "id, at, component, variable, attribute, old_value, new_value, source, user"


@dataclass
class Salvage:
    """The outcome of one recovery (kept for status for the daemon's life; the audit trail keeps it after)."""

    path: str
    moved_to: str
    why: str
    recovered: list[str] = field(default_factory=list)  # "Component.Variable[ (Attribute)]"
    lost: list[str] = field(default_factory=list)  # no trustworthy value: back to the default (or unset)
    audit_rows: int = 0
    at: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))

    def status(self) -> dict:
        return {"recovered_from": self.moved_to, "why": self.why, "at": self.at, "recovered": self.recovered,
                "lost": self.lost, "audit_rows_recovered": self.audit_rows}

    def summary(self) -> tuple[str, str]:
        """(what was kept, what was lost) for the ERROR line."""
        kept = f"recovered {len(self.recovered)} value(s) and {self.audit_rows} audit row(s)"
        lost = ", ".join(self.lost) + " (back to their defaults)" if self.lost else "no value (every one was recovered)"
        return kept, lost


def _name(component: str, variable: str, attribute: str) -> str:
    return f"{component}.{variable}" + ("" if attribute == "Actual" else f" ({attribute})")


def _rows(db: sqlite3.Connection, sql: str, args: tuple = ()) -> Iterator[tuple]:
    """Rows until the first one SQLite cannot read; sets nothing, raises nothing."""
    try:
        cursor = db.execute(sql, args)
        while (row := cursor.fetchone()) is not None:
            yield row
    except sqlite3.Error:
        return


def _complete(db: sqlite3.Connection, sql: str) -> bool:
    """Whether a whole scan reads without an error (so a missing row was never there)."""
    try:
        db.execute(sql).fetchall()
        return True
    except sqlite3.Error:
        return False


def read_values(aside: Path, definitions: dict[tuple[str, str], VariableDef]) -> tuple[dict, bool, list[tuple]]:
    """Readable value rows by key, whether the table read whole, and the readable audit rows.

    A full scan stops at the first damaged page; a lookup per defined key (through the primary-key
    index) can still reach rows stored beyond it.
    """
    try:
        db = sqlite3.connect(f"file:{aside}?mode=ro", uri=True)
    except sqlite3.Error:
        return {}, False, []
    try:
        found = {(r[0], r[1], r[2]): r for r in _rows(db, f"SELECT {_VALUE_COLUMNS} FROM variable_value")}
        complete = _complete(db, f"SELECT {_VALUE_COLUMNS} FROM variable_value")
        for var in definitions.values():
            for attr in var.attributes:
                if (var.component, var.name, attr) not in found:
                    for r in _rows(db, f"SELECT {_VALUE_COLUMNS} FROM variable_value WHERE component = ? AND "
                                       "variable = ? AND attribute = ?", (var.component, var.name, attr)):
                        found[(r[0], r[1], r[2])] = r
        audit = list(_rows(db, f"SELECT {_AUDIT_COLUMNS} FROM audit ORDER BY id"))
    finally:
        db.close()
    return found, complete, audit


def salvage(aside: Path, fresh: sqlite3.Connection, definitions: dict[tuple[str, str], VariableDef],
            result: Salvage) -> None:
    """Copy every readable, still-valid value and audit row into `fresh`; fill in `result`."""
    found, complete, audit = read_values(aside, definitions)
    sources = {s.value for s in Source}
    kept = []
    for var in sorted(definitions.values(), key=lambda v: (v.component, v.name)):
        for attr in var.attributes.values():
            if attr.mutability is Mutability.READ_ONLY:
                continue  # its value comes from the definitions: nothing to lose
            key = (var.component, var.name, attr.type)
            row = found.get(key)
            if row is not None and row[4] in sources and isinstance(row[3], str) and validate(var, row[3]) is None:
                kept.append(row)
                result.recovered.append(_name(*key))
            elif row is not None or not complete:  # damaged, or unreadable: we cannot know it was default
                result.lost.append(_name(*key))
    fresh.execute("BEGIN IMMEDIATE")
    try:
        fresh.executemany(f"INSERT INTO variable_value ({_VALUE_COLUMNS}) VALUES (?,?,?,?,?,?)", kept)
        fresh.executemany(f"INSERT OR IGNORE INTO audit ({_AUDIT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", audit)
        fresh.execute("COMMIT")
    except sqlite3.Error:
        fresh.execute("ROLLBACK")
        raise
    result.audit_rows = len(audit)
