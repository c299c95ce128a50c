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


def build_command(out: Path, arches: tuple[str, ...]) -> list[str]:
    """What `make deb` runs, with the wheel cache `make deb` uses."""
    args = [sys.executable, str(BUILD), "build", "--out", str(out), "--cache", str(CACHE)]
    for arch in arches:
        args += ["--arch", arch]
    return args


def build_debs(out: Path, arches: tuple[str, ...]) -> dict[str, Path]:
    done = subprocess.run(build_command(out, arches), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return {arch: Path(line) for arch, line in zip(arches, done.stdout.split())}
