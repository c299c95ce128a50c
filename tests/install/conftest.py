"""The Debian packages, built once per session by the same command as `make deb`, and the amd64 one
unpacked into a temporary root (never installed on this machine: no dpkg -i)."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from debtools import ARCHES, build_debs, need


@dataclass(frozen=True)
class Built:
    debs: dict[str, Path]
    seconds: float


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Built:
    need("dpkg-deb")
    start = time.monotonic()
    debs = build_debs(tmp_path_factory.mktemp("debs"), ARCHES)
    return Built(debs, time.monotonic() - start)


@pytest.fixture(scope="session")
def debs(built) -> dict[str, Path]:
    return built.debs


@pytest.fixture(scope="session")
def unpacked(debs, tmp_path_factory) -> Path:
    """The amd64 package's files under a temporary root, as dpkg would lay them out."""
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", str(debs["amd64"]), str(root)], check=True)
    return root


@pytest.fixture(scope="session")
def system_python() -> str:
    """The launcher's interpreter: Debian 12's /usr/bin/python3, 3.11 (the ABI of the bundled wheels)."""
    python = "/usr/bin/python3"
    if not os.access(python, os.X_OK):
        pytest.skip("no /usr/bin/python3: the installed package runs on Debian's python3")
    version = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2] == (3, 11))"],
                             capture_output=True, text=True).stdout.strip()
    if version != "True":
        pytest.skip("/usr/bin/python3 is not 3.11 (Debian 12's): the package targets bookworm")
    return python
