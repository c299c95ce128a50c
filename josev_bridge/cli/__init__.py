"""`josev-bridge`: the daemon, the technician's tools and the simulator behind one command."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys

from .. import __version__
from ..config import DEFAULT_CONFIG, ConfigError, check_files
from ..core.alerts import AlertType
from ..core.conditions import TRIGGER_REASONS, EventType
from ..core.device_model import DeviceModelError
from . import dm as dm_cmd, history as history_cmd, request as request_cmd, status as status_cmd
from .access import AccessDenied, from_os_error
from .common import EXIT_DENIED, EXIT_FAIL, EXIT_OK, EXIT_USAGE, error, load_config  # noqa: F401 (exit codes)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except AccessDenied as exc:
        error(str(exc))
        return EXIT_DENIED
    except ConfigError as exc:
        error(str(exc))
        return EXIT_USAGE
    except OSError as exc:  # a read-only or full disk, a damaged file: one line naming it, no traceback
        from ..adapters.damage import describe

        denied = from_os_error(exc, "this command")
        if denied is not None:
            error(str(denied))
            return EXIT_DENIED
        error(describe(exc))
        return EXIT_FAIL
    except sqlite3.Error as exc:  # what the checks before opening did not foresee: still one line
        error(f"{type(exc).__name__}: {exc}")
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="josev-bridge", description=__doc__)
    p.add_argument("--version", action="version", version=f"josev-bridge {__version__}")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--config", default=os.environ.get("JOSEV_BRIDGE_CONFIG", DEFAULT_CONFIG),
                        help=f"configuration file (default: $JOSEV_BRIDGE_CONFIG or {DEFAULT_CONFIG})")
        return sp

    run = with_config(sub.add_parser("run", help="run the bridge daemon"))
    run.set_defaults(func=_run)

    check = with_config(sub.add_parser("check-config", help="validate the configuration without starting"))
    check.set_defaults(func=_check_config)

    dm = sub.add_parser("dm", help="read and change device-model variables")
    dm_sub = dm.add_subparsers(title="device-model commands", metavar="ACTION")
    dm_list = with_config(dm_sub.add_parser("list", help="list variables and their values"))
    dm_list.add_argument("component", nargs="?")
    dm_list.add_argument("--json", action="store_true", help="JSON for scripts")
    dm_list.add_argument("--wide", "-w", action="store_true", help="every column, nothing cut")
    dm_list.set_defaults(func=dm_cmd.dm_list)
    dm_get = with_config(dm_sub.add_parser("get", help="print one variable's value"))
    dm_get.add_argument("component")
    dm_get.add_argument("variable")
    dm_get.add_argument("--json", action="store_true", help="JSON for scripts")
    dm_get.set_defaults(func=dm_cmd.dm_get)
    dm_set = with_config(dm_sub.add_parser("set", help="change a variable; the running daemon applies it within a second"))
    dm_set.add_argument("component")
    dm_set.add_argument("variable")
    dm_set.add_argument("value")
    dm_set.set_defaults(func=dm_cmd.dm_set)
    dm_reset = with_config(dm_sub.add_parser("reset", help="back to the definitions' default"))
    dm_reset.add_argument("component")
    dm_reset.add_argument("variable")
    dm_reset.set_defaults(func=dm_cmd.dm_reset)
    dm_hist = with_config(dm_sub.add_parser("history", help="who changed what, newest first"))
    dm_hist.add_argument("component", nargs="?")
    dm_hist.add_argument("variable", nargs="?")
    dm_hist.add_argument("--limit", type=int, default=20)
    dm_hist.add_argument("--json", action="store_true", help="JSON lines for scripts")
    dm_hist.add_argument("--wide", "-w", action="store_true", help="every column, nothing cut")
    dm_hist.set_defaults(func=dm_cmd.dm_history)

    msgs = with_config(sub.add_parser("messages", help="what the bridge received and answered (the journal)",
                                      description="Reads the journal database directly: works while the daemon is down."))
    msgs.add_argument("--type", action="append", default=[], metavar="T",
                      help="only this message type (repeatable), e.g. get_event_timestamp, device_model_change, mcu_link")
    msgs.add_argument("--since", default="24h", help="a duration ago (90s, 15m, 2h, 3d) or a date-time (default 24h)")
    msgs.add_argument("--until", default="now", help="a duration ago or a date-time (default now)")
    msgs.add_argument("--limit", type=int, default=50, help="the newest N rows of the range (default 50)")
    msgs.add_argument("--json", action="store_true", help="JSON lines (the API's row shape) for scripts")
    msgs.add_argument("--wide", "-w", action="store_true", help="every column, nothing cut")
    msgs.add_argument("--follow", "-f", action="store_true", help="then keep printing new rows as they arrive")
    msgs.set_defaults(func=history_cmd.messages)

    alerts = with_config(sub.add_parser("alerts", help="alerts raised from the hardware (faults, offline, SoC, late)",
                                        description="Reads the alert store directly: works while the daemon is down."))
    alerts.add_argument("--type", action="append", default=[], metavar="TYPE", choices=[t.value for t in AlertType],
                        help="only this alert type (repeatable): " + ", ".join(t.value for t in AlertType))
    alerts.add_argument("--since", default="7d", help="alerts that started after: a duration ago (2h, 3d) or a date-time "
                                                      "(default 7d)")
    alerts.add_argument("--include-muted", action="store_true", help="also alerts a muting rule kept from delivery")
    alerts.add_argument("--limit", type=int, default=50, help="the newest N (default 50)")
    alerts.add_argument("--json", action="store_true", help="JSON lines in the API's shape (Flipturn's GET /api/alerts)")
    alerts.add_argument("--wide", "-w", action="store_true", help="every column, nothing cut")
    alerts.add_argument("--follow", "-f", action="store_true",
                        help="then keep printing alerts as they are raised and as they end")
    alerts.set_defaults(func=history_cmd.alerts)

    status = with_config(sub.add_parser("status", help="is the bridge answering; broker, MCU link and clock, fault counters"))
    status.add_argument("--json", action="store_true", help="the verdict and the whole status document as JSON")
    status.add_argument("--wide", "-w", action="store_true", help="lines as long as they are (not wrapped)")
    status.set_defaults(func=status_cmd.status)

    req = sub.add_parser("request", help="play the OCPP service once and print the answer")
    req_sub = req.add_subparsers(title="requests", metavar="REQUEST")
    get_ts = with_config(req_sub.add_parser("get-event-timestamp", help="ask get_event_timestamp on ocpp/cs"))
    get_ts.add_argument("--event-type", required=True, choices=[e.value for e in EventType])
    get_ts.add_argument("--trigger-reason", required=True, choices=[c.value for c in TRIGGER_REASONS])
    get_ts.add_argument("--evse-id", type=int)
    get_ts.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer (default 5)")
    get_ts.set_defaults(func=request_cmd.get_event_timestamp)

    from ..sim import app as sim_app

    sim = sub.add_parser("sim", help="run the simulated MCU (pseudo-terminal + OCPPLAB-style control API)")
    sim_app.add_arguments(sim)
    sim.set_defaults(func=sim_app.run)
    return p


# -- daemon ---------------------------------------------------------------------------------------
def _run(args: argparse.Namespace) -> int:
    from ..daemon import run

    return run(args.config)


def _check_config(args: argparse.Namespace) -> int:
    from ..adapters.device_model_store import load_definitions
    from ..schemas import assert_format_checking

    config = load_config(args.config)
    assert_format_checking()
    try:
        defs = load_definitions(config.paths.device_model_dir or None)
    except DeviceModelError as exc:
        raise ConfigError(f"[paths] device_model_dir: {exc}") from None
    check_files(config)
    print(f"{args.config}: OK (broker {config.mqtt.host}:{config.mqtt.port} MQTT {config.mqtt.protocol}, "
          f"MCU {config.serial.url} at {config.serial.baudrate} baud, state in {config.paths.state_dir}, "
          f"{len(defs)} device-model variable(s))")
    return EXIT_OK
