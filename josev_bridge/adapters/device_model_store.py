"""Device-model definitions from JSON files and values in SQLite, with an audit trail.

SQLite gives atomic commits (a kill -9 mid-change leaves the old or the new value, never a torn
file) and `PRAGMA data_version`, which tells a long-lived reader cheaply that another process
(the technician's CLI) committed a change: the daemon sees it within milliseconds, without a
polling thread.
"""

from __future__ import annotations

import grp
import json
import logging
import os
import pwd
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from .. import schemas
from ..core.device_model import DeviceModelError, Mutability, Source, VariableDef, parse_component, validate
from .damage import StorageError, is_damage, open_or_set_aside, storage_error
from .device_model_salvage import Salvage, salvage
from .sqlite_tx import immediate

log = logging.getLogger("josev_bridge.device_model")

DB_NAME = "device_model.sqlite"
QUICK_CHECK_MAX_BYTES = 64 * 2**20  # always, in practice: a few pages, checked whole in a millisecond
AUTHORITATIVE_CHECK_S = 0.1
STAT_INTERVAL_S = 0.002  # generation() stats the file at most this often: a change by another
# process (the CLI) is seen within 2 ms, or 100 ms when its mtime and size did not move

_SCHEMA = """
CREATE TABLE IF NOT EXISTS variable_value (
    component TEXT NOT NULL, variable TEXT NOT NULL, attribute TEXT NOT NULL,
    value TEXT NOT NULL, source TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (component, variable, attribute)
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,
    component TEXT NOT NULL, variable TEXT NOT NULL, attribute TEXT NOT NULL,
    old_value TEXT, new_value TEXT NOT NULL, source TEXT NOT NULL, user TEXT NOT NULL
);
"""


def load_definitions(directory: str | Path | None = None) -> dict[tuple[str, str], VariableDef]:
    """Read and schema-check every `*.json` in `directory` (default: the packaged definitions)."""
    check = schemas.validator("device_model.component")
    if directory:
        files = sorted(Path(directory).glob("*.json"))
        if not files:
            raise DeviceModelError(f"{directory}: no device-model definitions (*.json)")
        docs = [(str(f), f.read_text(encoding="utf-8")) for f in files]
    else:
        pkg = resources.files("josev_bridge.device_model_files")
        docs = [(e.name, e.read_text(encoding="utf-8")) for e in sorted(pkg.iterdir(), key=lambda e: e.name)
                if e.name.endswith(".json")]
    defs: dict[tuple[str, str], VariableDef] = {}
    for name, text in docs:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise DeviceModelError(f"{name}: not JSON: {exc}") from None
        problem = schemas.first_error(check, doc)
        if problem:
            raise DeviceModelError(f"{name}: {problem}")
        for var in parse_component(doc):
            if var.key in defs:
                raise DeviceModelError(f"{name}: {var.component}.{var.name} is defined twice")
            defs[var.key] = var
    return defs


@dataclass(frozen=True, slots=True)
class StoredValue:
    component: str
    variable: str
    attribute: str
    value: str
    source: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class Change:
    component: str
    variable: str
    attribute: str
    old_value: str | None
    new_value: str
    source: str
    user: str
    at: str
    id: int = 0  # the audit row; 0 until stored

    @property
    def unchanged(self) -> bool:
        """Nothing was written: the value already was this one (`set`/`reset` with unchanged_ok)."""
        return self.id == 0 and self.old_value == self.new_value


class PermissionDenied(DeviceModelError):
    """The caller may not change values: says who may, and how to get there."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DeviceModelStore:
    """Values of the variables the bridge owns. Thread-safe; one instance per process."""

    def __init__(self, state_dir: str | Path, definitions: dict[tuple[str, str], VariableDef], *,
                 repair: bool = False) -> None:
        """`repair` (the daemon only): a damaged file is moved aside and what SQLite can still read is
        carried over (`salvage` says what was lost). The CLI leaves that to the daemon, so the loss
        is shown by `josev-bridge status`, and gets a StorageError naming the file instead."""
        self.definitions = definitions
        self.path = Path(state_dir) / DB_NAME
        self._path_str = str(self.path)  # os.stat(str) is a third of Path.stat's cost
        self._lock = threading.Lock()
        self.salvage: Salvage | None = None  # set when this process recovered a damaged file
        if repair:
            self._db = open_or_set_aside(self.path, self._connect, what="device model", salvage=self._salvage,
                                         quick_check_max_bytes=QUICK_CHECK_MAX_BYTES)
        else:
            try:
                self._db = self._connect()
            except sqlite3.Error as exc:
                raise _cli_storage_error(self.path, exc) from None
        self._version = -1
        self._signature: tuple[int, int, int] | None = None
        self._generation = 0
        self._next_authoritative = 0.0
        self._next_stat = 0.0
        self._cache: dict[tuple[str, str, str], StoredValue] = {}

    def _connect(self) -> sqlite3.Connection:
        created = not self.path.exists()
        db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA synchronous=FULL")  # rollback journal + FULL: a commit survives power loss
            if created:
                _share_with_group(self.path)
            if self.writable() is None:
                db.executescript(_SCHEMA)
            else:
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # damage shows here, not later
        except BaseException:
            db.close()
            raise
        return db

    def _salvage(self, aside: Path, fresh: sqlite3.Connection, why: str) -> tuple[str, str]:
        self.salvage = Salvage(str(self.path), str(aside), why)
        salvage(aside, fresh, self.definitions, self.salvage)
        return self.salvage.summary()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- definitions vs stored values -------------------------------------------------------------
    def seed_defaults(self, user: str = "josev-bridge") -> list[Change]:
        """Add defaults for new definitions; refresh values still from the defaults. Never touch local/csms."""
        changes = []
        with self._lock, self._transaction():
            for var in self.definitions.values():
                for attr in var.attributes.values():
                    if attr.default is None:
                        continue
                    row = self._row(var.component, var.name, attr.type)
                    if row is None or (row.source == Source.DEFAULT.value and row.value != attr.default):
                        changes.append(self._write(var, attr.type, attr.default, Source.DEFAULT, user,
                                                   None if row is None else row.value))
        return changes

    # -- reading ----------------------------------------------------------------------------------
    def get(self, component: str, variable: str, attribute: str = "Actual") -> StoredValue | None:
        """The stored value, re-read only when another connection committed since the last call."""
        self.definition(component, variable)
        with self._lock:
            self._refresh()
            return self._cache.get((component, variable, attribute))

    def generation(self) -> int:
        """A number that changes whenever the values may have changed (one cheap check per call),
        so a hot path can cache what it derives from them.

        Lock-free while the file is unchanged and the authoritative check is not due: at most one
        stat per STAT_INTERVAL_S. `_refresh` publishes the signature only after the
        generation it belongs to; this process's own writes force the locked path.
        """
        now = time.monotonic()
        if now < self._next_stat:
            return self._generation
        if now < self._next_authoritative and _signature(self._path_str) == self._signature:
            self._next_stat = now + STAT_INTERVAL_S
            return self._generation
        with self._lock:
            self._refresh()
            return self._generation

    def all_values(self) -> list[StoredValue]:
        with self._lock:
            self._refresh()
            return sorted(self._cache.values(), key=lambda v: (v.component, v.variable, v.attribute))

    def history(self, component: str | None = None, variable: str | None = None, limit: int = 100,
                after_id: int = 0) -> list[Change]:
        """Audit rows, newest first (or, with `after_id`, every row after that one, oldest first)."""
        sql = "SELECT component, variable, attribute, old_value, new_value, source, user, at, id FROM audit"
        where: list[str] = ["id > ?"]
        args: list[object] = [after_id]
        if component:
            where.append("component = ?")
            args.append(component)
        if variable:
            where.append("variable = ?")
            args.append(variable)
        sql += " WHERE " + " AND ".join(where)
        sql += (" ORDER BY id ASC" if after_id else " ORDER BY id DESC") + " LIMIT ?"
        args.append(limit)
        with self._lock:
            return [Change(*row) for row in self._db.execute(sql, args)]

    def changed_since_last_read(self) -> bool:
        """True if another process committed since we last looked (cheap: no table read)."""
        with self._lock:
            return self._db.execute("PRAGMA data_version").fetchone()[0] != self._version

    # -- writing ----------------------------------------------------------------------------------
    def set(self, component: str, variable: str, value: str, *, source: Source, user: str,
            attribute: str = "Actual", unchanged_ok: bool = False) -> Change:
        """Validate and store a value with its source, and audit it. Raises DeviceModelError.

        `unchanged_ok` (a technician's `dm set`): a value equal to the stored one is neither written nor
        audited; the Change returned then has id 0 and old == new (`unchanged` is True)."""
        var = self.definition(component, variable)
        attr = var.attributes.get(attribute)
        if attr is None:
            raise DeviceModelError(f"{component}.{variable} has no {attribute} attribute "
                                   f"(it has {', '.join(var.attributes)})")
        if attr.mutability is Mutability.READ_ONLY:
            raise DeviceModelError(f"{component}.{variable} is ReadOnly: its value comes from the definitions "
                                   f"(device_model/{component}.json); change it there")
        problem = validate(var, value)
        if problem:
            raise DeviceModelError(problem)
        with self._lock, self._transaction():
            row = self._row(component, variable, attribute)
            if unchanged_ok and row is not None and row.value == value:
                return Change(component, variable, attribute, row.value, row.value, row.source, user, row.updated_at)
            return self._write(var, attribute, value, source, user, None if row is None else row.value)

    def reset(self, component: str, variable: str, *, user: str, attribute: str = "Actual",
              unchanged_ok: bool = False) -> Change:
        """Back to the definitions' default, with source `default` (so future upgrades update it).
        `unchanged_ok`: as for `set`, when it already is the default from the definitions."""
        var = self.definition(component, variable)
        attr = var.attributes.get(attribute)
        if attr is None or attr.default is None:
            raise DeviceModelError(f"{component}.{variable} has no default to reset to")
        with self._lock, self._transaction():
            row = self._row(component, variable, attribute)
            if unchanged_ok and row is not None and row.value == attr.default and row.source == Source.DEFAULT.value:
                return Change(component, variable, attribute, row.value, row.value, row.source, user, row.updated_at)
            return self._write(var, attribute, attr.default, Source.DEFAULT, user, None if row is None else row.value)

    def writable(self) -> str | None:
        """None if this process may change values, else a message saying who may and how."""
        for target in (self.path, self.path.parent):  # SQLite writes its journal beside the database
            if not os.access(target, os.W_OK):
                st = target.stat()
                return (f"permission denied: changing device-model values needs write access to {target} "
                        f"(owner {_name(pwd.getpwuid, st.st_uid)}, group {_name(grp.getgrgid, st.st_gid)}, "
                        f"mode {st.st_mode & 0o7777:04o}); run it with sudo, or as a member of group "
                        f"{_name(grp.getgrgid, st.st_gid)}")
        return None

    def require_writable(self) -> None:
        problem = self.writable()
        if problem:
            raise PermissionDenied(problem)

    def definition(self, component: str, variable: str) -> VariableDef:
        var = self.definitions.get((component, variable))
        if var is None:
            known = sorted(f"{c}.{v}" for c, v in self.definitions)
            raise DeviceModelError(f"unknown variable {component}.{variable} (known: {', '.join(known)})")
        return var

    # -- internals (lock held) --------------------------------------------------------------------
    def _transaction(self):
        return immediate(self._db)

    def _row(self, component: str, variable: str, attribute: str) -> StoredValue | None:
        row = self._db.execute(
            "SELECT component, variable, attribute, value, source, updated_at FROM variable_value "
            "WHERE component=? AND variable=? AND attribute=?", (component, variable, attribute)).fetchone()
        return None if row is None else StoredValue(*row)

    def _write(self, var: VariableDef, attribute: str, value: str, source: Source, user: str,
               old: str | None) -> Change:
        self._version = -1  # data_version ignores this connection's own commits: re-read next time,
        self._next_authoritative = self._next_stat = 0.0  # and not through generation()'s lock-free path
        at = _now()
        self._db.execute(
            "INSERT INTO variable_value VALUES (?,?,?,?,?,?) ON CONFLICT(component, variable, attribute) "
            "DO UPDATE SET value=excluded.value, source=excluded.source, updated_at=excluded.updated_at",
            (var.component, var.name, attribute, value, source.value, at))
        cursor = self._db.execute(
            "INSERT INTO audit (at, component, variable, attribute, old_value, new_value, source, user) "
            "VALUES (?,?,?,?,?,?,?,?)", (at, var.component, var.name, attribute, old, value, source.value, user))
        return Change(var.component, var.name, attribute, old, value, source.value, user, at, cursor.lastrowid or 0)

    def _refresh(self) -> None:
        """Re-read values if another process committed. A stat of the file (cheap) catches a change
        at the next use; `PRAGMA data_version` (ten times dearer), the authority, runs at least every 100 ms to
        catch two commits that leave the same mtime and size (a coarse file-time tick)."""
        now = time.monotonic()
        signature = _signature(self._path_str)
        if signature == self._signature and now < self._next_authoritative and self._version != -1:
            return
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version:
            rows = self._db.execute(
                "SELECT component, variable, attribute, value, source, updated_at FROM variable_value").fetchall()
            self._cache = {(r[0], r[1], r[2]): StoredValue(*r) for r in rows}
            self._version = version
            self._generation += 1
        self._signature, self._next_authoritative = signature, now + AUTHORITATIVE_CHECK_S
        self._next_stat = now + STAT_INTERVAL_S


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _cli_storage_error(path: Path, exc: sqlite3.Error) -> StorageError:
    """The CLI's one line for a file it cannot use: damage is left to the daemon, which recovers it."""
    if is_damage(exc):
        return StorageError(0, f"{exc}; the bridge moves it aside and recovers what it can when it starts "
                               f"(systemctl restart josev-bridge), then `josev-bridge status` shows what was lost",
                            str(path))
    return storage_error(path, exc)


def _share_with_group(path: Path) -> None:
    """Values are not secret: owner and group (technicians in the service's group) may change them.

    Created by root (a technician's `sudo josev-bridge dm set` before the daemon's first start),
    the file is handed to the state directory's owner, so the daemon can still write it.
    """
    try:
        os.chmod(path, 0o660)
        if os.geteuid() == 0:
            st = path.parent.stat()
            os.chown(path, st.st_uid, st.st_gid)
    except OSError as exc:
        log.debug("cannot set ownership or mode of %s: %s", path, exc)


def _name(lookup, ident: int) -> str:
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)
