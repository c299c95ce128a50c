"""Every command run by a user who may not read or write a file says which file, which group and
what to do, and exits 3: never a traceback, never SQLite's "unable to open database file".

The CLI runs as `nobody` (setpriv), against files owned by root: a real permission check by the
kernel, not a mocked os.access. Skipped, with the reason, where that cannot be arranged."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
from importlib import metadata
from pathlib import Path

import pytest

import josev_bridge
from josev_bridge.adapters.alert_store import AlertStore
from josev_bridge.adapters.journal_store import JournalStore
from josev_bridge.harness.bridge_process import write_config

ROOT = Path(josev_bridge.__file__).resolve().parents[1]
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
CODE = ("import site, sys; site.addsitedir({site!r}); sys.path.insert(0, {root!r}); "
        "from josev_bridge.cli import main; sys.exit(main())")


def _runner(readable_copy: Path) -> list[str]:
    """argv that runs `josev-bridge` as nobody, or a pytest skip saying why it cannot be done here.
    The checkout and its venv are tried first; where nobody may not enter them (a clone under a 0700
    directory, such as `mktemp -d`'s), a copy of the package and its runtime dependencies that every
    user may read, run by the system's Python."""
    if os.geteuid() != 0:
        pytest.skip("running a command as another user needs root (setpriv)")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    tries = [(python, sysconfig.get_paths()["purelib"], str(ROOT)) for python in (sys.executable, "/usr/bin/python3")]
    tries.append(("/usr/bin/python3", str(readable_copy), str(readable_copy)))
    for python, site, root in tries:
        if root == str(readable_copy) and not any(readable_copy.iterdir()):
            _install_readable_copy(readable_copy)
        argv = [*AS_NOBODY, python, "-c", CODE.format(site=site, root=root)]
        probe = subprocess.run([*argv, "--version"], capture_output=True, text=True, cwd="/", timeout=30)
        if probe.returncode == 0:
            return argv
    pytest.skip(f"no Python that user nobody may run with this checkout ({ROOT}) and its packages: "
                f"{probe.stderr.strip()[-200:]}")


def _runtime_closure(name: str, seen: set[str]) -> set[str]:
    """The distribution `name` and what it requires, recursively (no extras)."""
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
        return seen
    seen.add(key)
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return seen
    for requirement in dist.requires or []:
        if "extra ==" not in requirement:
            _runtime_closure(re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0], seen)
    return seen


def _install_readable_copy(target: Path) -> None:
    """The package as installed (package data where setuptools maps it) and its runtime dependencies'
    files, in `target`, readable by everyone."""
    shutil.copytree(ROOT / "josev_bridge", target / "josev_bridge", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "schemas", target / "josev_bridge" / "schema_files", dirs_exist_ok=True)
    shutil.copytree(ROOT / "device_model", target / "josev_bridge" / "device_model_files", dirs_exist_ok=True)
    for name in _runtime_closure("josev-bridge", set()) - {"josev-bridge"}:
        dist = metadata.distribution(name)
        for file in dist.files or []:
            source = Path(dist.locate_file(file))
            if source.is_file() and "__pycache__" not in file.parts and not str(file).startswith(".."):
                (target / file).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / file)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.fixture(scope="module")
def readable_copy():
    base = Path(tempfile.mkdtemp(prefix="josev-perm-lib-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base)


@pytest.fixture(scope="module")
def as_nobody(readable_copy):
    argv = _runner(readable_copy)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*argv, *args], capture_output=True, text=True, cwd="/", timeout=30)
    return run


@pytest.fixture
def board():
    """A directory everyone may enter (pytest's tmp_path is root's 0700), with a config all may read."""
    base = Path(tempfile.mkdtemp(prefix="josev-perm-"))
    base.chmod(0o755)
    state, run = base / "state", base / "run"
    state.mkdir()
    run.mkdir()
    config = write_config(base / "c.toml", {"serial": {"url": "/dev/null"},
                                            "paths": {"state_dir": str(state), "runtime_dir": str(run)}})
    config.chmod(0o644)
    JournalStore(state / "journal.sqlite").close()
    AlertStore(state / "alerts.sqlite").close()
    sqlite3.connect(state / "device_model.sqlite").close()
    (run / "status.json").write_text("{}")
    yield base
    shutil.rmtree(base)


def assert_denied(r: subprocess.CompletedProcess, path: Path, need: str, fix: str) -> None:
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "unable to open" not in r.stderr
    assert f"needs {need} access to {path} (owner root, group root, mode " in r.stderr, r.stderr
    assert fix in r.stderr, r.stderr


@pytest.mark.parametrize("command", [("dm", "get", "JOSEV_CTRLR", "EnableGetEventTimestampRequest"), ("dm", "list"),
                                     ("dm", "history"), ("dm", "set", "JOSEV_CTRLR", "EnableGetEventTimestampRequest",
                                                         "false"), ("messages",), ("alerts",)])
def test_a_user_outside_the_group_is_told_which_directory_and_group(as_nobody, board, command):
    (board / "state").chmod(0o770)  # as the unit makes it (2770, group josev-bridge); nobody is not in the group
    r = as_nobody(*command, "--config", str(board / "c.toml"))
    assert_denied(r, board / "state", "search", "run it with sudo, or as a member of group root "
                                                "(sudo adduser $USER root, then log in again)")


@pytest.mark.parametrize("command,name,need", [(("dm", "get", "JOSEV_CTRLR", "EnableGetEventTimestampRequest"),
                                                "device_model.sqlite", "read"),
                                               (("dm", "set", "JOSEV_CTRLR", "EnableGetEventTimestampRequest", "false"),
                                                "device_model.sqlite", "write"),
                                               (("messages",), "journal.sqlite", "read"),
                                               (("alerts", "--follow"), "alerts.sqlite", "read")])
def test_a_file_only_its_owner_may_read_is_named_and_sudo_is_the_fix(as_nobody, board, command, name, need):
    (board / "state").chmod(0o755)
    path = board / "state" / name
    path.chmod(0o600)
    r = as_nobody(*command, "--config", str(board / "c.toml"))
    assert_denied(r, path, need, "run it with sudo (members of group root may not")


@pytest.mark.slow
def test_status_and_the_configuration_itself(as_nobody, board):
    (board / "run" / "status.json").chmod(0o600)
    assert_denied(as_nobody("status", "--config", str(board / "c.toml")), board / "run" / "status.json", "read",
                  "run it with sudo")
    (board / "c.toml").chmod(0o640)
    assert_denied(as_nobody("check-config", "--config", str(board / "c.toml")), board / "c.toml", "read",
                  "run it with sudo, or as a member of group root")
