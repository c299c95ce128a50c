"""`josev-bridge dm`: read and change device-model variables in the daemon's store (works while it is down)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
from typing import TYPE_CHECKING

from ..config import Config, ConfigError
from ..core.device_model import DeviceModelError, Source
from .access import AccessDenied, require

if TYPE_CHECKING:
    from ..adapters.device_model_store import DeviceModelStore

from .common import EXIT_DENIED, EXIT_FAIL, EXIT_OK, Printer, asdict, error, load_config, table, terminal_width


def _store(config: Config, need: str = "read") -> DeviceModelStore:
    """The store, after checking this user may `need` ("read" or "write") it: a user outside the
    service's group learns which file and which group, not SQLite's "unable to open database file"."""
    from ..adapters.device_model_store import DB_NAME, DeviceModelStore, load_definitions

    doing = "reading device-model values" if need == "read" else "changing device-model values"
    require(config.state_dir / DB_NAME, need, doing)
    if not config.state_dir.is_dir():
        raise ConfigError(f"[paths] state_dir: {config.state_dir} does not exist (has the daemon run yet?)")
    if not (config.state_dir / DB_NAME).exists():  # the CLI creates it (below) only where it may write
        require(config.state_dir / DB_NAME, "write", doing)
    store = DeviceModelStore(config.state_dir, load_definitions(config.paths.device_model_dir or None))
    if store.writable() is None:
        store.seed_defaults()  # the daemon does this too; here so the CLI works before its first start
    return store


def _user() -> str:
    """The Unix user making a change, with the sudo caller when there is one."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = str(os.getuid())
    sudo = os.environ.get("SUDO_USER")
    return f"{name} (sudo by {sudo})" if sudo and sudo != name else name


def _dm_rows(store, component: str | None) -> list[dict]:
    """One row per defined variable attribute, with its value (hidden for WriteOnly) and source."""
    from ..core.device_model import Mutability

    rows = []
    for var in sorted(store.definitions.values(), key=lambda v: (v.component, v.name)):
        if component and var.component != component:
            continue
        for attr in var.attributes.values():
            stored = store.get(var.component, var.name, attr.type)
            hidden = attr.mutability is Mutability.WRITE_ONLY
            rows.append({"component": var.component, "variable": var.name, "attribute": attr.type,
                         "value": None if stored is None or hidden else stored.value,
                         "source": stored.source if stored else None,
                         "updated_at": stored.updated_at if stored else None,
                         "data_type": var.data_type.value, "mutability": attr.mutability.value,
                         "allowed": var.allowed()})
    return rows


def dm_list(args: argparse.Namespace) -> int:
    store = _store(load_config(args.config))
    rows = _dm_rows(store, args.component)
    if args.component and not rows:
        known = sorted({c for c, _ in store.definitions})
        error(f"no component {args.component!r} in the device model (known: {', '.join(known)})")
        return EXIT_FAIL
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    wide = args.wide
    header = ["COMPONENT", "VARIABLE", "VALUE", "SOURCE", "MUTABILITY"] + (["TYPE", "UPDATED"] if wide else [])
    table(header, [[r["component"], r["variable"] + ("" if r["attribute"] == "Actual" else f" ({r['attribute']})"),
                    "-" if r["value"] is None else r["value"], r["source"] or "-", r["mutability"]]
                   + ([r["data_type"], r["updated_at"] or "-"] if wide else []) for r in rows],
          width=terminal_width(wide), keep=(0, 1))  # names whole; a long value (a list) is cut
    return EXIT_OK


def dm_get(args: argparse.Namespace) -> int:
    store = _store(load_config(args.config))
    try:
        store.definition(args.component, args.variable)
    except DeviceModelError as exc:
        error(str(exc))
        return EXIT_FAIL
    row = next(r for r in _dm_rows(store, args.component) if r["variable"] == args.variable)
    if row["value"] is None:
        error(f"{args.component}.{args.variable} has no readable value ({row['mutability']})")
        return EXIT_FAIL
    print(json.dumps(row) if args.json else row["value"])
    return EXIT_OK


def _dm_change(args: argparse.Namespace, change_fn) -> int:
    import sqlite3

    from ..adapters.damage import describe, storage_error
    from ..adapters.device_model_store import PermissionDenied

    try:
        store = _store(load_config(args.config), "write")
    except AccessDenied as exc:
        error(f"{exc}; nothing changed")
        return EXIT_DENIED
    try:
        store.definition(args.component, args.variable)
        store.require_writable()
        change = change_fn(store)
    except PermissionDenied as exc:
        error(f"{exc}; nothing changed")
        return EXIT_DENIED
    except DeviceModelError as exc:
        error(f"{exc}; nothing changed")
        return EXIT_FAIL
    except sqlite3.Error as exc:  # the disk is full, or turned read-only, under the CLI
        error(f"{describe(storage_error(store.path, exc))}; nothing changed")
        return EXIT_FAIL
    if change.unchanged:
        print(f"{change.component}.{change.variable}: unchanged (already {change.new_value}, source "
              f"{change.source}); nothing recorded")
        return EXIT_OK
    print(f"{change.component}.{change.variable}: {change.old_value} -> {change.new_value} "
          f"(source {change.source}, by {change.user}); the running bridge applies it at its next use")
    return EXIT_OK


def dm_set(args: argparse.Namespace) -> int:
    return _dm_change(args, lambda store: store.set(args.component, args.variable, args.value,
                                                    source=Source.LOCAL, user=_user(), unchanged_ok=True))


def dm_reset(args: argparse.Namespace) -> int:
    return _dm_change(args, lambda store: store.reset(args.component, args.variable, user=_user(), unchanged_ok=True))


def dm_history(args: argparse.Namespace) -> int:
    store = _store(load_config(args.config))
    rows = store.history(args.component, args.variable, args.limit)
    if args.json:
        for change in rows:
            print(json.dumps(asdict(change)))
        return EXIT_OK
    if args.wide:
        table(["AT (UTC)", "COMPONENT", "VARIABLE", "OLD", "NEW", "SOURCE", "USER"],
              [[c.at, c.component, c.variable, c.old_value or "-", c.new_value, c.source, c.user] for c in rows],
              width=None)
        return EXIT_OK
    # 80 columns: the time of day under a date line, the variable without its component (--wide has both)
    printer = Printer(["TIME", "VARIABLE", "CHANGE", "SOURCE", "USER"], terminal_width(False), keep=(0,))
    printer.rows([(c.at[:10], [c.at[11:19], c.variable, f"{c.old_value or '-'} -> {c.new_value}", c.source, c.user])
                  for c in rows])
    return EXIT_OK
