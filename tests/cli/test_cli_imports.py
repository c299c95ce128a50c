"""What a technician's command costs before it does anything: its imports. On a small ARM board each
needless module is felt at every `josev-bridge status`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def modules_after(code: str) -> set[str]:
    script = f"import sys; {code}; import json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_building_the_parser_does_not_import_the_simulator_the_daemon_or_mqtt():
    loaded = modules_after("from josev_bridge.cli import parser_for_docs; parser_for_docs().parse_args(['status'])")
    assert {"josev_bridge.sim.app", "josev_bridge.sim.mcu", "josev_bridge.daemon", "paho"}.isdisjoint(loaded)


def test_the_sim_command_still_reaches_the_simulator():
    loaded = modules_after("from josev_bridge.cli import parser_for_docs; "
                           "args = parser_for_docs().parse_args(['sim', '--pty-link', '/nonexistent/x']); "
                           "args.func.__module__ == 'josev_bridge.cli' or sys.exit(3)")
    assert "josev_bridge.sim.options" in loaded and "josev_bridge.sim.app" not in loaded  # imported when run
