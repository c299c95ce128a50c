#!/usr/bin/env python3
"""Print pip constraints pinning each runtime dependency of pyproject.toml to its declared floor.

`make test-floors` installs the package with them and runs the suite: the floors in pyproject.toml
are versions the suite passed with, not guesses. pip has no lowest-version resolution; pinning the
direct dependencies is uv's `--resolution lowest-direct` (their own dependencies resolve as usual).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def floors() -> list[str]:
    out = []
    for spec in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        m = re.match(r"^([A-Za-z0-9_.-]+)\s*(?:\[[^]]*\])?\s*(.*)$", spec)
        name, constraint = m.group(1), m.group(2)
        low = re.search(r">=\s*([0-9][^,;\s]*)", constraint)
        if not low:
            sys.exit(f"{spec}: no >= floor to test")
        out.append(f"{name}=={low.group(1)}")
    return out


if __name__ == "__main__":
    print("\n".join(floors()))
