"""`josev-bridge`: the daemon, the technician's tools and the simulator behind one command."""

from __future__ import annotations

import argparse
import sqlite3

from ..config import ConfigError, check_files
from ..core.device_model import DeviceModelError
from . import dm as dm_cmd, history as history_cmd, request as request_cmd, status as status_cmd
from .access import AccessDenied, from_os_error
from .common import EXIT_DENIED, EXIT_FAIL, EXIT_OK, EXIT_USAGE, error, load_config  # noqa: F401 (exit codes)
from .parser import build


def main(argv: list[str] | None = None) -> int:
    parser = parser_for_docs()
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


def parser_for_docs() -> argparse.ArgumentParser:
    """The parser with every handler wired (also what cli/docgen.py renders)."""
    return build({"run": _run, "check-config": _check_config, "status": status_cmd.status,
                  "request get-event-timestamp": request_cmd.get_event_timestamp,
                  "dm list": dm_cmd.dm_list, "dm get": dm_cmd.dm_get, "dm set": dm_cmd.dm_set,
                  "dm reset": dm_cmd.dm_reset, "dm history": dm_cmd.dm_history,
                  "messages": history_cmd.messages, "alerts": history_cmd.alerts, "sim": _sim})


def _sim(args: argparse.Namespace) -> int:
    from ..sim import app  # only for this command: the simulator is most of the CLI's imports

    return app.main(args)


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
