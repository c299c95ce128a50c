"""The Debian packages, built once per session by the same command as `make deb`, and the amd64 one
unpacked into a temporary root (never installed on this machine: no dpkg -i)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from debtools import ARCHES, build_command, build_debs, need


@dataclass
class Built:
    debs: dict[str, Path]
    seconds: float
    # Started as soon as the packages exist and collected by their tests, so that these two slow
    # checks run while the others do: a second build (same inputs, another umask, time zone and
    # locale) and lintian. Lintian on the amd64 package only: the ARM ones differ in the one .so and
    # the Architecture field, and cost 2.4 s of CPU each; `make deb` lints all three.
    rebuild: subprocess.Popen
    lintian: subprocess.Popen | None = None


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Iterator[Built]:
    need("dpkg-deb")
    start = time.monotonic()
    debs = build_debs(tmp_path_factory.mktemp("debs"), ARCHES)
    seconds = time.monotonic() - start
    env = {**os.environ, "TZ": "America/Los_Angeles", "LC_ALL": "C.UTF-8"}
    rebuild = subprocess.Popen(build_command(tmp_path_factory.mktemp("rebuild"), ("amd64",)), env=env, umask=0o002,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    result = Built(debs, seconds, rebuild)
    if shutil.which("lintian"):
        result.lintian = subprocess.Popen(["lintian", "--no-cfg", "--fail-on", "error", "--display-info",
                                           str(debs["amd64"])], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True)
    yield result
    for proc in filter(None, [rebuild, result.lintian]):
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


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
