"""The `josev-bridge` command line: every command with a description, examples and exit codes.

One parser serves `--help`, the man page and the bash completion (cli/docgen.py writes both from
it), so the three cannot say different things. Defaults that documents repeat (the 2 ms within which
the daemon applies a `dm set`, the journal's 24 h and 50 rows, the alerts' 7 days) come from the
constants the code runs on; tests/cli/test_docs_agree.py holds the README and the OpenAPI documents
to the same numbers.
"""

from __future__ import annotations

import argparse
import os
import textwrap
from collections.abc import Callable

from ..config import DEFAULT_CONFIG
from ..core.alerts import AlertType
from ..core.conditions import TRIGGER_REASONS, EventType
from ..core.journal_query import DEFAULT_LIMIT
from .common import EXIT_CODES

PROG = "josev-bridge"
DESCRIPTION = ("The bridge between Josev's OCPP service (MQTT) and the charge-controller MCU (serial): the daemon "
               "(run), the technician's tools (status, request, dm, messages, alerts) and a simulated MCU (sim).")
DM_APPLIED_WITHIN = "2 ms"  # adapters/device_model_store.STAT_INTERVAL_S (a test holds them equal)
MESSAGES_SINCE = "24h"  # the API's startTimestamp default (core/journal_query.DEFAULT_RANGE_US)
ALERTS_SINCE = "7d"
REQUEST_TIMEOUT_S = 5.0
ENV_CONFIG = "JOSEV_BRIDGE_CONFIG"

Handler = Callable[[argparse.Namespace], int]


def epilog(examples: list[tuple[str, str]], codes: list[tuple[int, str]] | None = None) -> str:
    """`examples:` and `exit codes:` blocks, as man pages have them; a comment beside its command
    when both fit in 80 columns, above it otherwise."""
    short = [cmd for cmd, why in examples if why and len(cmd) <= 46]
    width = max(map(len, short), default=0)
    lines = ["examples:"]
    for cmd, why in examples:
        if not why:
            lines += _continued(cmd)
        elif len(cmd) <= 46 and width + len(why) + 6 <= 80:
            lines.append(f"  {cmd.ljust(width)}  # {why}")
        else:
            lines += [f"  # {why}", *_continued(cmd)]
    lines += ["", "exit codes:"]
    for code, text in codes or list(EXIT_CODES):
        lines += textwrap.wrap(f"{code}  {text}", 76, initial_indent="  ", subsequent_indent="     ")
    return "\n".join(lines)


def _continued(cmd: str, width: int = 78) -> list[str]:
    """A long command over several lines, broken before an option with a shell continuation."""
    lines, current = [], "  "
    for i, word in enumerate(cmd.split(" ")):
        if i and word.startswith("-") and len(current) + 1 + len(word) > width - 2:
            lines.append(current + " \\")
            current = "      " + word
        else:
            current += ("" if i == 0 else " ") + word
    return lines + [current]


class Formatter(argparse.HelpFormatter):
    """Descriptions wrapped to the terminal; the examples and exit codes kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _command(sub: argparse._SubParsersAction, name: str, summary: str, description: str,
             examples: list[tuple[str, str]],
             codes: list[tuple[int, str]] | None = None, *, config: bool = True) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=summary, description=description, epilog=epilog(examples, codes),
                            formatter_class=Formatter)
    if config:
        parser.add_argument("--config", default=os.environ.get(ENV_CONFIG, DEFAULT_CONFIG), metavar="FILE",
                            help=f"configuration file (default: ${ENV_CONFIG} or {DEFAULT_CONFIG})")
    return parser


def _wide(parser: argparse.ArgumentParser,
          what: str = "every column, nothing cut (by default a table fits the terminal, 80 columns in a pipe)") -> None:
    parser.add_argument("--wide", "-w", action="store_true", help=what)


def _json(parser: argparse.ArgumentParser, what: str = "JSON for scripts") -> None:
    parser.add_argument("--json", action="store_true", help=what)


def _names(parser: argparse.ArgumentParser, optional: bool = False) -> None:
    """COMPONENT VARIABLE, as `dm list` shows them (bash completion offers the defined ones)."""
    nargs = "?" if optional else None
    parser.add_argument("component", nargs=nargs, help="e.g. JOSEV_CTRLR" + (" (default: all)" if optional else ""))
    parser.add_argument("variable", nargs=nargs, help="e.g. EnableGetEventTimestampRequest"
                                                      + (" (default: all)" if optional else ""))


def _show_help(parser: argparse.ArgumentParser) -> Handler:
    """`josev-bridge dm` without an action: that command's help (exit 2), not the top-level one."""
    def show(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2
    return show


def build(handlers: dict[str, Handler]) -> argparse.ArgumentParser:
    """The whole parser; `handlers` maps a command path ("dm set") to the function that runs it."""
    p = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, formatter_class=Formatter,
                                epilog=epilog([("josev-bridge status", "is it answering, and if not, why"),
                                               ("josev-bridge request get-event-timestamp --event-type TxEventStart "
                                                "--trigger-reason EVConnected", ""),
                                               ("josev-bridge dm set JOSEV_CTRLR EnableGetEventTimestampRequest false",
                                                ""),
                                               ("josev-bridge messages --since 2h", "what it received and answered"),
                                               ("josev-bridge COMMAND --help", "more on one command")]))
    from .. import __version__

    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    run = _command(sub, "run", "run the bridge daemon (what systemd starts)",
                   "Run the bridge in the foreground until SIGTERM: connect to the broker and the MCU, answer "
                   "get_event_timestamp, journal every message. Logs go to stderr (the system journal under "
                   "systemd, with priorities); SIGHUP re-reads the configuration; SIGUSR1 logs every thread's stack.",
                   [("sudo systemctl start josev-bridge", "the usual way, as the service user"),
                    ("josev-bridge run --config ./config.toml", "in the foreground, for a bench")],
                   [(0, "stopped by SIGTERM or SIGINT"),
                    (1, "a start-up fault that may heal (state_dir read-only or full): systemd tries again"),
                    (2, "the configuration must be fixed (the unit stays failed)")])
    run.set_defaults(func=handlers["run"])

    check = _command(sub, "check-config", "validate the configuration without starting",
                     "Read the configuration as the daemon would: unknown keys, bad values, the device-model "
                     "definitions, and the files it reads only when it connects (password and token files: "
                     "present, readable, mode 0600, not empty; TLS files: present). Run it as the service user "
                     "(sudo -u josev-bridge) to check the permissions the daemon will have.",
                     [("josev-bridge check-config --config /etc/josev-bridge/config.toml", ""),
                      ("sudo -u josev-bridge josev-bridge check-config", "with the daemon's permissions")],
                     [(0, "OK (one line: broker, MCU port, state directory, device-model variables)"),
                      (2, "a problem, named with its key and file"),
                      (3, "this user may not read the configuration file")])
    check.set_defaults(func=handlers["check-config"])

    _status(sub, handlers)
    _request(sub, handlers)
    _dm(sub, handlers)
    _history(sub, handlers)
    _sim(sub, handlers)
    return p


def _status(sub: argparse._SubParsersAction, handlers: dict[str, Handler]) -> None:
    status = _command(sub, "status", "is the bridge answering; broker, MCU link and clock, fault counters",
                      "The running bridge's status, first line the verdict: answering, degraded (it answers, but "
                      "the MCU link is down or silent, the MCU clock not mapped yet, device-model values fell back "
                      "to their defaults, the journal or export fails) or not answering (not running, wedged, not "
                      "connected to the broker, or get_event_timestamp turned off), each with its reason. Then "
                      "the MCU link, firmware and boot, the MCU clock against UTC, fault counters, journal, alerts "
                      "and export. Read from [paths] runtime_dir/status.json, which the daemon rewrites at least "
                      "every 2 s: it works while the daemon is wedged or gone, and says so.",
                      [("josev-bridge status", ""),
                       ("josev-bridge status --config ./bench.toml", "the bridge that file configures"),
                       ("josev-bridge status --json | jq .verdict", "for scripts and monitoring")],
                      [(0, "answering"), (1, "degraded or not answering (the first line says why)"),
                       (2, "configuration error"), (3, "this user may not read the status file (group josev-bridge)")])
    _json(status, "the verdict and the whole status document as JSON")
    _wide(status, "long lines as they are (not wrapped to the terminal)")
    status.set_defaults(func=handlers["status"])


def _request(sub: argparse._SubParsersAction, handlers: dict[str, Handler]) -> None:
    req = _command(sub, "request", "play the OCPP service once and print the answer",
                   "Publish one request on the bridge's request topic, as Josev's OCPP service does, and print "
                   "the answer. When none comes, say why: the bridge is not running or not connected to the "
                   "broker, or the journal's reason for that request (the flag is off, the trigger reason is not "
                   "supported, no such edge was recorded, DataSigned has no stop).",
                   [("josev-bridge request get-event-timestamp --event-type TxEventStart --trigger-reason EVConnected",
                     "")], config=False)
    req.set_defaults(func=_show_help(req))
    req_sub = req.add_subparsers(title="requests", metavar="REQUEST")
    get_ts = _command(req_sub, "get-event-timestamp", "ask get_event_timestamp",
                      "Ask when an event happened, as the hardware saw it: TxEventStart is when the trigger "
                      "reason's condition last became true, TxEventStop when it last stopped being true after that.",
                      [("josev-bridge request get-event-timestamp --event-type TxEventStart --trigger-reason "
                        "EVConnected", "when was the EV plugged in"),
                       ("josev-bridge request get-event-timestamp --event-type TxEventStop --trigger-reason "
                        "EnergyTransfer --evse-id 2", "when did energy stop on EVSE 2")],
                      [(0, "answered (the answer on stdout, the round trip on stderr)"),
                       (1, "no answer (the reason on stderr), or the broker cannot be reached"),
                       (2, "usage or configuration error"),
                       (3, "this user may not read a file it needs (the MQTT password file)")])
    get_ts.add_argument("--event-type", required=True, choices=[e.value for e in EventType], metavar="TYPE",
                        help=" or ".join(e.value for e in EventType))
    get_ts.add_argument("--trigger-reason", required=True, choices=[c.value for c in TRIGGER_REASONS],
                        metavar="REASON", help=", ".join(c.value for c in TRIGGER_REASONS))
    get_ts.add_argument("--evse-id", type=int, metavar="N", help="ask about this EVSE (default: the most recent edge)")
    get_ts.add_argument("--timeout", type=float, default=REQUEST_TIMEOUT_S, metavar="SECONDS",
                        help=f"seconds to wait for the answer (default {REQUEST_TIMEOUT_S:g})")
    get_ts.set_defaults(func=handlers["request get-event-timestamp"])


def _dm(sub: argparse._SubParsersAction, handlers: dict[str, Handler]) -> None:
    dm = _command(sub, "dm", "read and change device-model variables",
                  "The device-model variables the bridge owns (defined in device_model/*.json), read from and "
                  "written to state_dir/device_model.sqlite directly: works while the daemon is stopped. "
                  "Changing values needs membership of group josev-bridge, or sudo.",
                  [("josev-bridge dm list", ""),
                   ("josev-bridge dm set JOSEV_CTRLR EnableGetEventTimestampRequest false", ""),
                   ("josev-bridge dm history", "")], config=False)
    dm.set_defaults(func=_show_help(dm))
    dm_sub = dm.add_subparsers(title="actions", metavar="ACTION")
    var_codes = [(0, "done"), (1, "unknown component or variable, no readable value"), (2, "configuration error"),
                 (3, "this user may not read the device model (group josev-bridge)")]
    dm_list = _command(dm_sub, "list", "list variables: value, source, mutability",
                       "Every defined variable with its value, where the value came from (default: the "
                       "definitions; local: dm set; csms: the CSMS through Josev) and its mutability.",
                       [("josev-bridge dm list", ""), ("josev-bridge dm list JOSEV_CTRLR --json", "")], var_codes)
    dm_list.add_argument("component", nargs="?", help="only this component (default: all)")
    _json(dm_list)
    _wide(dm_list)
    dm_list.set_defaults(func=handlers["dm list"])
    dm_get = _command(dm_sub, "get", "print one variable's value",
                      "Print the value alone (for scripts), or with --json its source, type and allowed values.",
                      [("josev-bridge dm get JOSEV_CTRLR EnableGetEventTimestampRequest", "prints true or false")],
                      var_codes)
    _names(dm_get)
    _json(dm_get)
    dm_get.set_defaults(func=handlers["dm get"])
    change_codes = [(0, "changed, or unchanged (already that value; nothing recorded)"),
                    (1, "a bad value (the message names what is allowed), ReadOnly, unknown variable, disk full"),
                    (2, "configuration error"), (3, "this user may not change values (group josev-bridge)")]
    dm_set = _command(dm_sub, "set", f"change a variable; the running bridge applies it within {DM_APPLIED_WITHIN}",
                      f"Validate and store a value (source local, with your user name in the audit trail). The "
                      f"running bridge applies it within {DM_APPLIED_WITHIN}, without a restart, and logs it; a "
                      f"value it already has is reported unchanged and not recorded. Values survive restarts and "
                      f"upgrades. ReadOnly variables come from the definitions, not from here.",
                      [("josev-bridge dm set JOSEV_CTRLR EnableGetEventTimestampRequest false", "")], change_codes)
    _names(dm_set)
    dm_set.add_argument("value", help="the new value (dm get --json shows what is allowed)")
    dm_set.set_defaults(func=handlers["dm set"])
    dm_reset = _command(dm_sub, "reset", "back to the definitions' default",
                        "Set the variable back to its default (source default, so a later upgrade's default "
                        "applies to it again).",
                        [("josev-bridge dm reset JOSEV_CTRLR EnableGetEventTimestampRequest", "")], change_codes)
    _names(dm_reset)
    dm_reset.set_defaults(func=handlers["dm reset"])
    dm_hist = _command(dm_sub, "history", "who changed what, newest first",
                       "The audit trail: when, which variable, old -> new, source and user.",
                       [("josev-bridge dm history", ""),
                        ("josev-bridge dm history JOSEV_CTRLR EnableGetEventTimestampRequest --json", "JSON lines")],
                       var_codes)
    _names(dm_hist, optional=True)
    dm_hist.add_argument("--limit", type=int, default=20, metavar="N", help="the newest N changes (default 20)")
    _json(dm_hist, "JSON lines for scripts")
    _wide(dm_hist)
    dm_hist.set_defaults(func=handlers["dm history"])


def _history(sub: argparse._SubParsersAction, handlers: dict[str, Handler]) -> None:
    read_codes = [(0, "done"), (1, "cannot read the file (not there yet, damaged)"),
                  (2, "a bad option, e.g. an unknown --type (the message lists the known ones)"),
                  (3, "this user may not read the file (group josev-bridge)")]
    msgs = _command(sub, "messages", "what the bridge received and answered (the journal)",
                    "Every message the bridge received or sent on its topics, every device-model change and MCU "
                    "link event, from state_dir/journal.sqlite directly: works while the daemon is down. Oldest "
                    "first; the table shows what was asked and what was answered, or why nothing was.",
                    [("josev-bridge messages", f"the last {MESSAGES_SINCE[:-1]} h, newest {DEFAULT_LIMIT} rows"),
                     ("josev-bridge messages --type get_event_timestamp --since 2h --limit 200", ""),
                     ("josev-bridge messages --type device_model_change --type mcu_link --since 7d", ""),
                     ("josev-bridge messages --follow", "new rows as they arrive (Ctrl-C ends)"),
                     ("josev-bridge messages --json --since 15m | jq .", "the API's row shape")], read_codes)
    msgs.add_argument("--type", action="append", default=[], metavar="TYPE",
                      help="only this message type (repeatable): get_event_timestamp, set_variable_validate, "
                           "notify_event, device_model_change, mcu_link, or any name the journal holds")
    msgs.add_argument("--since", default=MESSAGES_SINCE, metavar="WHEN",
                      help=f"a duration ago (90s, 15m, 2h, 3d) or a date-time (default {MESSAGES_SINCE})")
    msgs.add_argument("--until", default="now", metavar="WHEN", help="a duration ago or a date-time (default now)")
    msgs.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar="N",
                      help=f"the newest N rows of the range (default {DEFAULT_LIMIT})")
    _json(msgs, "JSON lines (the API's row shape) for scripts")
    _wide(msgs)
    msgs.add_argument("--follow", "-f", action="store_true", help="then keep printing new rows as they arrive")
    msgs.set_defaults(func=handlers["messages"])

    alerts = _command(sub, "alerts", "alerts raised from the hardware (faults, offline, SoC, late)",
                      "Alerts from state_dir/alerts.sqlite directly: works while the daemon is down. One row per "
                      "episode; with --follow, new alerts and alerts that end, as they happen.",
                      [("josev-bridge alerts", f"the last {ALERTS_SINCE[:-1]} days"),
                       ("josev-bridge alerts --type chargingSessionError --since 30d", ""),
                       ("josev-bridge alerts --include-muted --since 30d", "also what muting rules kept back"),
                       ("josev-bridge alerts --follow --json", "openings and closings as JSON lines")], read_codes)
    alerts.add_argument("--type", action="append", default=[], metavar="TYPE", choices=[t.value for t in AlertType],
                        help="only this alert type (repeatable): " + ", ".join(t.value for t in AlertType))
    alerts.add_argument("--since", default=ALERTS_SINCE, metavar="WHEN",
                        help="alerts that started after: a duration ago (2h, 3d) or a date-time "
                             f"(default {ALERTS_SINCE})")
    alerts.add_argument("--include-muted", action="store_true", help="also alerts a muting rule kept from delivery")
    alerts.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar="N",
                        help=f"the newest N (default {DEFAULT_LIMIT})")
    _json(alerts, "JSON lines in the API's shape (Flipturn's GET /api/alerts)")
    _wide(alerts)
    alerts.add_argument("--follow", "-f", action="store_true",
                        help="then keep printing alerts as they are raised and as they end")
    alerts.set_defaults(func=handlers["alerts"])


def _sim(sub: argparse._SubParsersAction, handlers: dict[str, Handler]) -> None:
    from ..sim import options as sim_options

    sim = _command(sub, "sim", "run the simulated MCU (pseudo-terminal + OCPPLAB-style control API)",
                   "A simulated charge-controller MCU on a pseudo-terminal, for a bench without hardware: point "
                   "[serial] url at --pty-link and drive it over its control API (POST /ocpp/commands/plug-connector, "
                   "...; docs/sim-control-api.openapi.json). Prints one JSON ready line, then runs until SIGTERM.",
                   [("josev-bridge sim --pty-link /tmp/ttyMCU --control 127.0.0.1:8765", ""),
                    ("josev-bridge sim --pty-link /tmp/ttyMCU --clock-offset-s -18000 --clock-drift-ppm 80",
                     "an MCU clock 5 h behind, 80 ppm fast")],
                   [(0, "stopped by SIGTERM or SIGINT"), (1, "could not start (the pty or the port)"),
                    (2, "bad options")], config=False)
    sim_options.add_arguments(sim)
    sim.set_defaults(func=handlers["sim"])
