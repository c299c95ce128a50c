"""The .deb files `make deb` builds, checked as a Debian maintainer would: control fields, file list,
conffiles, the ARM builds' shared objects, lintian, byte-for-byte reproducibility, sizes, the sdist."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
from debtools import ARCHES, ROOT, need

pytestmark = pytest.mark.e2e  # builds and runs the .deb: not a unit test

VERSION = re.match(r"josev-bridge \(([^)]+)\)", (ROOT / "packaging/deb/changelog").read_text()).group(1)
# (e_machine as readelf names it, the extension suffix Debian's python3.11 loads on that architecture)
ELF = {"amd64": ("Advanced Micro Devices X86-64", "x86_64-linux-gnu"),
       "arm64": ("AArch64", "aarch64-linux-gnu"),
       "armhf": ("ARM", "arm-linux-gnueabihf")}
MB = 1024 * 1024


def field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True).stdout.strip()


def control_member(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-I", str(deb), name], capture_output=True, text=True, check=True).stdout


def members(deb: Path) -> dict[str, tarfile.TarInfo]:
    """path (without ./) -> tar header of the data archive."""
    tar_bytes = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    import io

    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return {m.name.removeprefix("./").rstrip("/"): m for m in tar.getmembers() if m.name not in ("./", ".")}


@pytest.mark.parametrize("arch", ARCHES)
def test_control_fields(debs, arch):
    deb = debs[arch]
    assert deb.name == f"josev-bridge_{VERSION}_{arch}.deb"
    assert (field(deb, "Package"), field(deb, "Version"), field(deb, "Architecture")) == ("josev-bridge", VERSION, arch)
    depends = [d.strip() for d in field(deb, "Depends").split(",")]
    # the bundled rpds-py is built for CPython 3.11's ABI: bookworm's python3, nothing newer
    assert {"python3 (>= 3.11~)", "python3 (<< 3.12)", "libgcc-s1"} <= set(depends)
    assert "systemd | systemd-standalone-sysusers" in depends  # postinst runs systemd-sysusers
    assert any(re.fullmatch(r"libc6 \(>= 2\.\d+\)", d) for d in depends)
    assert field(deb, "Recommends") == "mosquitto"
    assert re.fullmatch(r".+ <[^@ ]+@[^@ ]+>", field(deb, "Maintainer"))
    assert field(deb, "Section") and field(deb, "Priority") == "optional"
    assert 1024 < int(field(deb, "Installed-Size")) < 8 * 1024  # KiB, without the byte-code postinst adds
    assert "edit /etc/josev-bridge/config.toml" in field(deb, "Description")


def test_file_list(debs):
    files = members(debs["amd64"])
    expected = {
        "usr/bin/josev-bridge": 0o755,
        "lib/systemd/system/josev-bridge.service": 0o644,
        "lib/systemd/system/josev-bridge-sim.service": 0o644,
        "usr/lib/sysusers.d/josev-bridge.conf": 0o644,
        "etc/josev-bridge/config.toml": 0o644,
        "usr/share/doc/josev-bridge/README.md": 0o644,  # the units' Documentation=
        "usr/share/doc/josev-bridge/README.Debian": 0o644,
        "usr/share/doc/josev-bridge/copyright": 0o644,
        "usr/share/doc/josev-bridge/changelog.Debian.gz": 0o644,
        "usr/share/doc/josev-bridge/examples/mosquitto-josev-bridge.conf": 0o644,
        "usr/share/doc/josev-bridge/docs/serial-protocol.md": 0o644,
        "usr/share/man/man1/josev-bridge.1.gz": 0o644,
        "usr/share/bash-completion/completions/josev-bridge": 0o644,
        "usr/share/lintian/overrides/josev-bridge": 0o644,
        "opt/josev-bridge/lib/josev_bridge/cli/__init__.py": 0o644,
        "opt/josev-bridge/lib/josev_bridge/schema_files/envelope.schema.json": 0o644,
        "opt/josev-bridge/lib/josev_bridge/device_model_files/JOSEV_CTRLR.json": 0o644,
        "opt/josev-bridge/lib/rpds/rpds.cpython-311-x86_64-linux-gnu.so": 0o644,
    }
    for path, mode in expected.items():
        assert path in files, path
        assert files[path].mode == mode, f"{path}: {oct(files[path].mode)}"
    assert {(m.uname, m.gname) for m in files.values()} == {("root", "root")}
    assert all(m.mode == 0o755 for m in files.values() if m.isdir())
    # the state directory is systemd's (StateDirectory=); byte-code is postinst's; no installer at run time
    assert not [p for p in files if p.startswith(("var/", "run/"))]
    assert not [p for p in files if p.endswith((".pyc", ".pyo")) or "__pycache__" in p]
    top = {p.split("/")[3] for p in files if p.startswith("opt/josev-bridge/lib/") and p.count("/") >= 3}
    assert not top & {"pip", "setuptools", "pkg_resources", "_distutils_hack", "wheel"}
    assert not [p for p in files if "/tests/" in p and "josev_bridge" not in p]  # dependencies' tests pruned
    # the pinned distributions, exactly: the lock file's names
    lock = (ROOT / "packaging/requirements.lock").read_text()
    locked = {re.sub(r"[-_.]+", "_", m).lower() for m in re.findall(r"^([A-Za-z0-9_.-]+)==", lock, re.M)}
    shipped = {re.sub(r"-[^-]+\.dist-info$", "", p.split("/")[3]).lower() for p in files
               if p.startswith("opt/josev-bridge/lib/") and p.endswith(".dist-info")}
    assert shipped == locked | {"josev_bridge"}


def test_conffile_and_md5sums(debs, tmp_path):
    deb = debs["amd64"]
    assert control_member(deb, "conffiles") == "/etc/josev-bridge/config.toml\n"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    assert (tmp_path / "etc/josev-bridge/config.toml").read_bytes() == (ROOT / "packaging/config.toml").read_bytes()
    sums = dict(reversed(line.split("  ", 1)) for line in control_member(deb, "md5sums").splitlines())
    regular = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert set(sums) == regular - {"etc/josev-bridge/config.toml"}  # dpkg keeps conffiles' sums itself
    for path in ("usr/bin/josev-bridge", "opt/josev-bridge/lib/josev_bridge/daemon.py"):
        assert hashlib.md5((tmp_path / path).read_bytes()).hexdigest() == sums[path]
    for script in ("postinst", "prerm", "postrm"):
        assert control_member(deb, script).startswith("#!/bin/sh\n")


@pytest.mark.parametrize("arch", ARCHES)
def test_shared_objects_are_for_the_architecture(debs, arch, tmp_path):
    """The arm64 and armhf packages are built on any machine from the target's wheels: their one
    compiled module must be an ARM object, named as bookworm's python3.11 looks for it there."""
    need("readelf")
    subprocess.run(["dpkg-deb", "-x", str(debs[arch]), str(tmp_path)], check=True)
    objects = sorted(tmp_path.rglob("*.so"))
    machine, suffix = ELF[arch]
    assert [p.name for p in objects] == [f"rpds.cpython-311-{suffix}.so"]
    header = subprocess.run(["readelf", "-h", str(objects[0])], capture_output=True, text=True, check=True).stdout
    assert re.search(rf"Machine:\s+{re.escape(machine)}$", header, re.M), header
    if arch == "armhf":  # Debian's armhf is ARMv7 hard-float (gnueabihf)
        assert "hard-float ABI" in header and "Version5 EABI" in header


def test_lintian_reports_no_errors(built):
    """Warnings and info tags are allowed; lintian's overrides ship with the package, each with its reason."""
    need("lintian")
    out, _ = built.lintian.communicate(timeout=120)
    errors = [line for line in out.splitlines() if line.startswith("E:")]
    assert built.lintian.returncode == 0 and not errors, out


def test_same_inputs_same_bytes(built):
    """A second build, with another umask, time zone and locale, gives the same bytes."""
    out, err = built.rebuild.communicate(timeout=300)
    assert built.rebuild.returncode == 0, err
    (again,) = (Path(line) for line in out.split())
    assert again != built.debs["amd64"] and again.name == built.debs["amd64"].name
    assert hashlib.sha256(again.read_bytes()).hexdigest() == hashlib.sha256(
        built.debs["amd64"].read_bytes()).hexdigest()


def test_sizes(debs, unpacked, system_python, record_property):
    """Under 8 MB installed, byte-code included (postinst's py3compile, run here on the unpacked tree)."""
    opt = unpacked / "opt/josev-bridge"
    before = sum(p.stat().st_size for p in opt.rglob("*") if p.is_file())
    compiler = "/usr/bin/py3compile" if os.access("/usr/bin/py3compile", os.X_OK) else None
    if compiler:
        subprocess.run([compiler, str(opt / "lib")], check=True, timeout=120)
    else:
        subprocess.run([system_python, "-m", "compileall", "-q", str(opt / "lib")], check=True, timeout=120)
    after = sum(p.stat().st_size for p in opt.rglob("*") if p.is_file())
    sizes = {arch: deb.stat().st_size for arch, deb in debs.items()}
    record_property("sizes", {"debs": sizes, "opt": before, "opt_with_bytecode": after})
    print(f"\n.deb: {', '.join(f'{a} {s / MB:.2f} MiB' for a, s in sizes.items())}; /opt/josev-bridge: "
          f"{before / MB:.2f} MiB, {after / MB:.2f} MiB with byte-code")
    assert max(sizes.values()) < 2 * MB
    assert after < 8 * MB


def test_sdist_carries_the_project(debs):
    """`make deb` builds the wheel from the sdist, as `python -m build` does; the sdist has what an
    integrator and the tests need."""
    (sdist,) = debs["amd64"].parent.glob("josev_bridge-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for path in ("LICENSE", "pyproject.toml", "README.md", "Makefile", "systemd/josev-bridge.service",
                 "docs/serial-protocol.md", "mcu/josev_link.c", "device_model/JOSEV_CTRLR.json",
                 "schemas/envelope.schema.json", "tests/conftest.py", "tests/e2e/test_get_event_timestamp.py",
                 "packaging/build_deb.py", "packaging/requirements.lock", "packaging/config.toml"):
        assert path in names, path
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith((".git/", ".venv/"))]


def test_changelog_is_compressed_without_a_timestamp(debs, tmp_path):
    subprocess.run(["dpkg-deb", "-x", str(debs["amd64"]), str(tmp_path)], check=True)
    data = (tmp_path / "usr/share/doc/josev-bridge/changelog.Debian.gz").read_bytes()
    assert data[4:8] == b"\0\0\0\0"  # gzip -n: no mtime
    assert gzip.decompress(data) == (ROOT / "packaging/deb/changelog").read_bytes()
