"""The man page and the bash completion, generated from the parser `josev-bridge --help` uses.

    python -m josev_bridge.cli.docgen docs/     # writes docs/josev-bridge.1, docs/josev-bridge.bash-completion

Both come from the same argparse parser as `--help` (commands, options, choices, descriptions,
examples, exit codes), and the completion's component and variable names from the device-model
definitions, so none of the three can say something the others do not. tests/cli/test_docgen.py
fails when the copies in docs/ are stale. No dependency: roff and bash are short to write.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from .. import __version__
from .parser import DESCRIPTION, ENV_CONFIG, PROG

MAN_PAGE = "josev-bridge.1"
COMPLETION = "josev-bridge.bash-completion"
NAME = "bridge between Josev's OCPP service (MQTT) and a charge-controller MCU (serial)"
FILE_OPTIONS = {"--config", "--pty-link", "--token-file"}  # complete file names


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                                             argparse.ArgumentParser]]:
    """Every command and subcommand, depth first, with its parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from commands(sub, (*path, name))


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    return [name for a in parser._actions if isinstance(a, argparse._SubParsersAction) for name in a.choices]


def _summaries(parser: argparse.ArgumentParser) -> dict[str, str]:
    return {c.dest: c.help or "" for a in parser._actions if isinstance(a, argparse._SubParsersAction)
            for c in a._choices_actions}


# -- man page ---------------------------------------------------------------------------------------
def _roff(text: str) -> str:
    """Text for roff: backslashes and a leading dot or quote escaped, hyphens as minus signs."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.split("\n"))


def _options(parser: argparse.ArgumentParser) -> list[str]:
    lines = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            metavar = "" if action.nargs == 0 else " " + _metavar(action)
            flags = ", ".join(f"\\fB{_roff(o)}\\fR{_roff(metavar)}" for o in action.option_strings)
        else:
            flags = f"\\fI{_roff(_metavar(action))}\\fR"
        lines += [".TP", flags, _roff(action.help or "")]
    return lines


def _metavar(action: argparse.Action) -> str:
    """The name help shows for an option's value (a tuple metavar, for several values, joined)."""
    metavar = action.metavar or action.dest.upper()
    return metavar if isinstance(metavar, str) else " ".join(metavar)


def _epilog(text: str | None) -> list[str]:
    """The examples and exit codes of a command, kept as written (.nf)."""
    if not text:
        return []
    out = []
    for block in text.split("\n\n"):
        title, _, body = block.partition("\n")
        out += [f".PP\n\\fB{_roff(title.rstrip(':').capitalize())}\\fR", ".RS 2", ".nf", _roff(body.rstrip()), ".fi",
                ".RE"]
    return out


def man_page(parser: argparse.ArgumentParser) -> str:
    """The whole manual page, in roff (man(7) macros)."""
    lines = [f'.TH JOSEV\\-BRIDGE 1 "" "{PROG} {__version__}" "User Commands"',
             ".SH NAME", f"{PROG} \\- {_roff(NAME)}",
             ".SH SYNOPSIS", f"\\fB{PROG}\\fR \\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
             ".SH DESCRIPTION", _roff(DESCRIPTION),
             ".PP", "Every command that reads the bridge's files takes \\fB\\-\\-config\\fR "
             f"(default \\fB${ENV_CONFIG}\\fR, else /etc/josev\\-bridge/config.toml).",
             ".SH COMMANDS"]
    for path, sub in commands(parser):
        usage = " ".join(sub.format_usage().removeprefix("usage: ").split())
        summary = _summaries(_parent(parser, path)).get(path[-1], "")
        lines += [f'.SS "{_roff(" ".join(path))}"', f"\\fB{_roff(usage)}\\fR", ".PP", _roff(sub.description or summary)]
        lines += _options(sub) + _epilog(sub.epilog)
    lines += [".SH EXIT STATUS", ".nf", _roff(_epilog_block(parser.epilog, "exit codes")), ".fi",
              ".SH ENVIRONMENT",
              ".TP", f"\\fB{ENV_CONFIG}\\fR", "The configuration file when \\fB\\-\\-config\\fR is not given.",
              ".TP", "\\fBJOURNAL_STREAM\\fR", "Set by systemd: the daemon then starts each log line with its syslog "
              "priority (\\fBjournalctl \\-p warning \\-u josev\\-bridge\\fR works); without it, with the UTC time.",
              ".TP", "\\fBCOLUMNS\\fR", "The width tables fit (default: the terminal's, 80 in a pipe).",
              ".SH FILES",
              ".TP", "/etc/josev\\-bridge/config.toml", "The configuration (README: Running on a board).",
              ".TP", "/var/lib/josev\\-bridge/", "[paths] state_dir: device_model.sqlite, journal.sqlite, "
              "alerts.sqlite, edges.json, api\\-token.",
              ".TP", "/run/josev\\-bridge/status.json", "[paths] runtime_dir: the running daemon's status, read by "
              "\\fBstatus\\fR and \\fBrequest\\fR.",
              ".SH SEE ALSO", "\\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1), /usr/share/doc/josev\\-bridge/README.md"]
    return "\n".join(lines) + "\n"


def _parent(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> argparse.ArgumentParser:
    for parent_path, sub in [((), parser), *commands(parser)]:
        if parent_path == path[:-1]:
            return sub
    return parser


def _epilog_block(epilog: str | None, title: str) -> str:
    for block in (epilog or "").split("\n\n"):
        if block.startswith(title):
            return block.partition("\n")[2]
    return ""


# -- bash completion --------------------------------------------------------------------------------
def _bash_words(words) -> str:
    return " ".join(str(w) for w in words).replace('"', '\\"')


def completion(parser: argparse.ArgumentParser, definitions: dict | None = None) -> str:
    """A bash completion script: commands, options, option values, and device-model component and
    variable names (from the definitions) for `dm`."""
    from ..core.device_model import DataType, Mutability

    # keys are the command path from the program's name (bash's associative arrays take no empty key)
    subs, opts, values, positionals = {PROG: _subcommands(parser)}, {PROG: ["-h", "--help", "--version"]}, {}, {}
    for path, sub in commands(parser):
        key = " ".join((PROG, *path))
        subs[key] = _subcommands(sub)
        opts[key] = [o for a in sub._actions for o in a.option_strings]
        for action in sub._actions:
            for option in action.option_strings:
                if option in FILE_OPTIONS:
                    values[f"{key}|{option}"] = ["@file"]
                elif action.nargs != 0:
                    values[f"{key}|{option}"] = [str(c) for c in action.choices or []] or ["@none"]
        positionals[key] = [a.dest for a in sub._actions if not a.option_strings
                            and not isinstance(a, argparse._SubParsersAction)]
    if f"{PROG} messages|--type" in values:
        from ..core.journal_view import MESSAGE_TYPES

        values[f"{PROG} messages|--type"] = list(MESSAGE_TYPES)
    definitions = definitions or {}
    variables: dict[str, list[str]] = {}
    writable: dict[str, list[str]] = {}
    allowed: dict[str, list[str]] = {}
    for (component, name), var in sorted(definitions.items()):
        variables.setdefault(component, []).append(name)
        if any(a.mutability is not Mutability.READ_ONLY for a in var.attributes.values()):
            writable.setdefault(component, []).append(name)
        if var.data_type is DataType.BOOLEAN:
            allowed[f"{component} {name}"] = ["true", "false"]
        elif var.data_type is DataType.OPTION_LIST and var.values_list:
            allowed[f"{component} {name}"] = list(var.values_list)

    def assoc(name: str, mapping: dict) -> list[str]:
        entries = [f'    ["{k}"]="{_bash_words(v)}"' for k, v in sorted(mapping.items())]
        return [f"declare -gA {name}=(", *entries, ")"]

    data = (assoc("_jb_subs", subs) + assoc("_jb_opts", opts) + assoc("_jb_values", values)
            + assoc("_jb_positionals", positionals) + assoc("_jb_variables", variables)
            + assoc("_jb_writable", writable) + assoc("_jb_allowed", allowed))
    return BASH_HEAD + "\n".join(data) + "\n" + BASH_FUNCTION


BASH_HEAD = f"""# bash completion for {PROG}                                      -*- shell-script -*-
# Generated by `python -m josev_bridge.cli.docgen` from the command's own parser and the device-model
# definitions; do not edit (tests/cli/test_docgen.py fails when this copy is stale).
# Install as /usr/share/bash-completion/completions/{PROG}, or `source` it.

"""

BASH_FUNCTION = r"""
_josev_bridge() {
    local cur=${COMP_WORDS[COMP_CWORD]} path=josev-bridge i w value_of="" args=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if [[ -n $value_of ]]; then value_of=""; continue; fi
        if [[ $w == -* ]]; then
            [[ -n ${_jb_values["$path|$w"]+set} ]] && value_of=$w
            continue
        fi
        if [[ " ${_jb_subs[$path]} " == *" $w "* ]]; then
            path="$path $w"
        else
            args+=("$w")
        fi
    done
    local prev=${COMP_WORDS[COMP_CWORD-1]}
    if ((COMP_CWORD > 1)) && [[ $prev == -* && -n ${_jb_values["$path|$prev"]+set} ]]; then
        case ${_jb_values["$path|$prev"]} in
            @file) COMPREPLY=($(compgen -f -- "$cur")) ;;
            @none) COMPREPLY=() ;;
            *) COMPREPLY=($(compgen -W "${_jb_values["$path|$prev"]}" -- "$cur")) ;;
        esac
        return
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "${_jb_opts[$path]}" -- "$cur"))
        return
    fi
    if [[ -n ${_jb_subs[$path]} ]]; then
        COMPREPLY=($(compgen -W "${_jb_subs[$path]}" -- "$cur"))
        return
    fi
    local positionals=(${_jb_positionals[$path]}) n=${#args[@]}
    case ${positionals[n]} in
        component) COMPREPLY=($(compgen -W "${!_jb_variables[*]}" -- "$cur")) ;;
        variable)
            if [[ $path == "josev-bridge dm set" || $path == "josev-bridge dm reset" ]]; then
                COMPREPLY=($(compgen -W "${_jb_writable[${args[0]}]}" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "${_jb_variables[${args[0]}]}" -- "$cur"))
            fi ;;
        value) COMPREPLY=($(compgen -W "${_jb_allowed["${args[0]} ${args[1]}"]}" -- "$cur")) ;;
        *) COMPREPLY=() ;;
    esac
}
complete -F _josev_bridge josev-bridge
"""


def render() -> dict[str, str]:
    """{file name: content} for docs/."""
    from ..adapters.device_model_store import load_definitions
    from . import parser_for_docs

    parser = parser_for_docs()
    return {MAN_PAGE: man_page(parser), COMPLETION: completion(parser, load_definitions())}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m josev_bridge.cli.docgen DIRECTORY   (writes the man page and the bash completion)",
              file=sys.stderr)
        return 2
    for name, text in render().items():
        (Path(args[0]) / name).write_text(text, encoding="utf-8")
        print(Path(args[0]) / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
