"""What the install tests share: where things are, building the packages, skipping without a tool."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "packaging" / "build_deb.py"
CACHE = ROOT / "build" / "deb-cache"  # wheels and the build backend, shared with `make deb`
ARCHES = ("amd64", "arm64", "armhf")


def need(tool: str) -> str:
    found = shutil.which(tool)
    if not found:
        pytest.skip(f"{tool} is not installed (make test installs it with apt-get)")
    return found


def build_debs(out: Path, arches: tuple[str, ...], env: dict[str, str] | None = None) -> dict[str, Path]:
    args = [sys.executable, str(BUILD), "build", "--out", str(out), "--cache", str(CACHE)]
    for arch in arches:
        args += ["--arch", arch]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return {arch: Path(line) for arch, line in zip(arches, done.stdout.split())}
