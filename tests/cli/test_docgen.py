"""The man page and the bash completion in docs/ are generated from the parser, and current."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from josev_bridge.cli import docgen

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def rendered():
    return docgen.render()


@pytest.mark.parametrize("name", [docgen.MAN_PAGE, docgen.COMPLETION])
def test_the_copies_in_docs_are_current(rendered, name):
    assert (DOCS / name).read_text() == rendered[name], "stale: run `python -m josev_bridge.cli.docgen docs/`"


def test_the_man_page_renders_cleanly_and_has_every_command(rendered):
    page = rendered[docgen.MAN_PAGE]
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "EXIT STATUS", "ENVIRONMENT", "FILES"):
        assert f".SH {section}" in page
    for command in ("run", "check\\-config", "status", "dm set", "request get\\-event\\-timestamp", "sim"):
        assert f'.SS "{command}"' in page
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed: the page's syntax is not checked")
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=page, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def complete(script: Path, *words: str) -> list[str]:
    """What bash offers after `josev-bridge WORDS...` (the last word is the one being completed)."""
    line = ["josev-bridge", *words]
    program = (f"source {script}\nCOMP_WORDS=({' '.join(repr(w) for w in line)})\nCOMP_CWORD={len(line) - 1}\n"
               "_josev_bridge\nprintf '%s\\n' \"${COMPREPLY[@]}\"")
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return [w for w in r.stdout.splitlines() if w]


def test_bash_completes_commands_options_and_the_device_model(tmp_path):
    script = DOCS / docgen.COMPLETION
    assert complete(script, "") == ["run", "check-config", "status", "request", "dm", "messages", "alerts", "sim"]
    assert complete(script, "dm", "") == ["list", "get", "set", "reset", "history"]
    assert complete(script, "dm", "get", "J") == ["JOSEV_CTRLR"]
    assert complete(script, "dm", "get", "JOSEV_CTRLR", "") == ["EnableGetEventTimestampRequest",
                                                                "EventTimestampTriggerReasonsSupported"]
    assert complete(script, "dm", "set", "--config", "x.toml", "JOSEV_CTRLR", "") == ["EnableGetEventTimestampRequest"]
    assert complete(script, "dm", "set", "JOSEV_CTRLR", "EnableGetEventTimestampRequest", "") == ["true", "false"]
    assert complete(script, "alerts", "--type", "charging") == ["chargingCompleted", "chargingSessionError"]
    assert "get_event_timestamp" in complete(script, "messages", "--type", "")
    assert complete(script, "request", "get-event-timestamp", "--event-type", "") == ["TxEventStart", "TxEventStop"]
    assert "--include-muted" in complete(script, "alerts", "--")
    (tmp_path / "bench.toml").write_text("")
    assert complete(script, "status", "--config", str(tmp_path / "ben")) == [str(tmp_path / "bench.toml")]
