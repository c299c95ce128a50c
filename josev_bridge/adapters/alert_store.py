"""Alerts in SQLite (`state_dir/alerts.sqlite`): one row per episode, with the recipients it was for.

An episode's `episode_id` is unique, so recording it twice (a restart between the engine's
snapshot and this write) updates the row instead of duplicating it. Ids are AUTOINCREMENT: an
id names one alert forever, and the API's cursor is the id.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ..core.alerts import Alert, alert_from_dict, alert_to_dict
from .damage import open_or_set_aside
from .sqlite_tx import immediate

FILE_NAME = "alerts.sqlite"
LOSES = ("the recorded alerts (the API and `josev-bridge alerts` list only alerts from now on; episodes "
         "still open go on from alerts-engine.json; the moved file still holds what was readable)")
QUICK_CHECK_MAX_BYTES = 16 * 2**20  # at most MAX_ROWS rows: a few MiB, checked whole in milliseconds
MAX_ROWS = 10_000  # closed alerts beyond this go, oldest first
SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    episode_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    start_us INTEGER NOT NULL,
    end_us INTEGER,
    muted INTEGER NOT NULL,
    alert TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_start ON alerts (start_us);
CREATE TABLE IF NOT EXISTS alert_recipients (
    alert_id INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    recipient_id INTEGER NOT NULL,
    PRIMARY KEY (recipient_id, alert_id)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class StoredAlert:
    id: int
    alert: Alert
    muted: bool
    recipients: tuple[int, ...]


class AlertStore:
    def __init__(self, path: str | Path, *, readonly: bool = False, repair: bool = False) -> None:
        """`repair` (the daemon only): a damaged file is moved aside and a new one started, because
        the alert records are secondary: they must never stop the bridge from answering."""
        self.path = Path(path)
        if readonly:
            if not self.path.exists():
                raise FileNotFoundError(f"{self.path}: no alerts yet (has the bridge run?)")
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5.0,
                                       isolation_level=None, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = open_or_set_aside(self.path, self._connect_writer, what="alert store", loses=LOSES,
                                         quick_check_max_bytes=QUICK_CHECK_MAX_BYTES) if repair \
                else self._connect_writer()
            self.path.chmod(0o640)

    def _connect_writer(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # alerts are few and must survive power loss
            db.execute("PRAGMA foreign_keys=ON")
            db.executescript(SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        self._db.close()

    def record(self, alert: Alert, muted: bool, recipients: tuple[int, ...]) -> int:
        """Insert a new episode, or update the stored one (its end, its current details). Returns the id."""
        body = json.dumps(alert_to_dict(alert), separators=(",", ":"))
        with immediate(self._db):
            row = self._db.execute("SELECT id FROM alerts WHERE episode_id = ?", (alert.episode_id,)).fetchone()
            if row is None:
                ident = self._db.execute(
                    "INSERT INTO alerts (episode_id, type, start_us, end_us, muted, alert) VALUES (?, ?, ?, ?, ?, ?)",
                    (alert.episode_id, alert.type.value, alert.start_us, alert.end_us, int(muted), body)).lastrowid
                assert ident is not None  # an INSERT sets it
                self._db.executemany("INSERT INTO alert_recipients (alert_id, recipient_id) VALUES (?, ?)",
                                     [(ident, r) for r in recipients])
                self._db.execute("DELETE FROM alerts WHERE id IN (SELECT id FROM alerts WHERE end_us IS NOT NULL "
                                 "ORDER BY id LIMIT max(0, (SELECT COUNT(*) FROM alerts) - ?))", (MAX_ROWS,))
            else:
                ident = row[0]
                self._db.execute("UPDATE alerts SET end_us = ?, alert = ? WHERE id = ?", (alert.end_us, body, ident))
        return ident

    def get(self, alert_id: int) -> StoredAlert | None:
        row = self._db.execute("SELECT id, alert, muted FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return None if row is None else StoredAlert(row[0], alert_from_dict(json.loads(row[1])), bool(row[2]),
                                                    self._recipients(row[0]))

    def id_of(self, alert: Alert) -> int | None:
        row = self._db.execute("SELECT id FROM alerts WHERE episode_id = ?", (alert.episode_id,)).fetchone()
        return row[0] if row else None

    def query(self, *, start_after_us: int | None = None, recipient_ids: tuple[int, ...] = (),
              include_muted: bool = False, before_id: int | None = None, limit: int = 50,
              types: tuple[str, ...] = ()) -> tuple[list[StoredAlert], bool]:
        """Newest first (by id); `before_id` is the keyset cursor; `types` (empty: all) the alert types.
        Returns (page, more)."""
        sql = "SELECT id, alert, muted FROM alerts a WHERE 1"
        args: list[str | int] = []
        if types:
            sql += f" AND type IN ({', '.join('?' * len(types))})"
            args += list(types)
        if start_after_us is not None:
            sql += " AND start_us > ?"
            args.append(start_after_us)
        if not include_muted:
            sql += " AND muted = 0"
        if recipient_ids:
            sql += (f" AND EXISTS (SELECT 1 FROM alert_recipients r WHERE r.alert_id = a.id AND r.recipient_id IN "
                    f"({', '.join('?' * len(recipient_ids))}))")
            args += list(recipient_ids)
        if before_id is not None:
            sql += " AND id < ?"
            args.append(before_id)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit + 1)
        rows = self._db.execute(sql, args).fetchall()
        page = [StoredAlert(i, alert_from_dict(json.loads(body)), bool(muted), self._recipients(i))
                for i, body, muted in rows[:limit]]
        return page, len(rows) > limit

    def after_id(self, alert_id: int) -> list[StoredAlert]:
        """Alerts with a greater id, oldest first (`alerts --follow`)."""
        rows = self._db.execute("SELECT id, alert, muted FROM alerts WHERE id > ? ORDER BY id LIMIT 500",
                                (alert_id,)).fetchall()
        return [StoredAlert(i, alert_from_dict(json.loads(b)), bool(m), self._recipients(i)) for i, b, m in rows]

    def open_ids(self) -> list[int]:
        """The alerts not ended yet (`alerts --follow` watches them for their end)."""
        return [i for (i,) in self._db.execute("SELECT id FROM alerts WHERE end_us IS NULL ORDER BY id")]

    def last_id(self) -> int:
        return self._db.execute("SELECT COALESCE(MAX(id), 0) FROM alerts").fetchone()[0]

    def _recipients(self, alert_id: int) -> tuple[int, ...]:
        return tuple(r for (r,) in self._db.execute(
            "SELECT recipient_id FROM alert_recipients WHERE alert_id = ? ORDER BY recipient_id", (alert_id,)))
