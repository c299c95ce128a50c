#!/usr/bin/env python3
"""Build josev-bridge_<version>_<arch>.deb for Debian 12 (bookworm): amd64, arm64, armhf.

    python packaging/build_deb.py lock                     # packaging/*.lock from pyproject.toml (network)
    python packaging/build_deb.py build [--arch A ...] [--out DIR] [--cache DIR]

`build` is what `make deb` runs. Layout of the package:

    /usr/bin/josev-bridge                      launcher: Debian's python3 -I -S on /opt/josev-bridge/lib
    /opt/josev-bridge/lib/                     the bridge and its pinned dependencies (unpacked wheels)
    /lib/systemd/system/josev-bridge{,-sim}.service
    /usr/lib/sysusers.d/josev-bridge.conf      user and group josev-bridge, member of dialout
    /etc/josev-bridge/config.toml              conffile: the example, every key with its default
    /usr/share/doc/josev-bridge/               README.md (the unit's Documentation=), docs/, copyright,
                                               changelog.Debian.gz, examples/mosquitto-josev-bridge.conf

Inputs: the source tree, packaging/requirements.lock (runtime wheels, every platform's hash) and
packaging/build-requirements.lock (setuptools, which builds the bridge's own wheel). The same inputs
give the same bytes: the sdist and the wheel are built from a copy of the tree with the locked
setuptools, wheels are unpacked by this script (no installer-written files), modes and owners are
normalised, every mtime is SOURCE_DATE_EPOCH (default: the last commit's time), dpkg-deb sorts the
members and compresses with a fixed thread count. Nothing is byte-compiled here: postinst does it on
the board (py3compile, as dh_python3 packages do) and prerm removes it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import email.parser
import email.utils
import gzip
import hashlib
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEB = ROOT / "packaging" / "deb"
LOCK = ROOT / "packaging" / "requirements.lock"
BUILD_LOCK = ROOT / "packaging" / "build-requirements.lock"
INDEX_URL = os.environ.get("JOSEV_BRIDGE_INDEX_URL", "https://pypi.org/simple")
PACKAGE = "josev-bridge"
OPT_LIB = "opt/josev-bridge/lib"
DOC = "usr/share/doc/josev-bridge"

# Debian 12: python3 3.11 (the ABI of the compiled wheels), glibc 2.36 (the newest manylinux tag).
PYTHON = "3.11"
GLIBC = (2, 36)


@dataclass(frozen=True)
class Arch:
    debian: str  # dpkg's name
    wheel: str  # the manylinux platform suffix
    elf_machine: int  # e_machine of its shared objects
    elf_note: str

    def platforms(self) -> list[str]:
        """pip's --platform values: every manylinux_2_X up to bookworm's glibc (pip expands none itself)."""
        tags = [f"manylinux_2_{minor}_{self.wheel}" for minor in range(GLIBC[1], 16, -1)]
        return [*tags, f"manylinux2014_{self.wheel}"]


ARCHES = {a.debian: a for a in (
    Arch("amd64", "x86_64", 62, "x86-64"),
    Arch("arm64", "aarch64", 183, "AArch64"),
    Arch("armhf", "armv7l", 40, "ARM EABI5 hard-float"),
)}
EF_ARM_ABI_FLOAT_HARD = 0x400

# Shared libraries the manylinux policy lets a wheel link against, and the bookworm package of each.
SONAME_PACKAGES = {
    "libc.so.6": "libc6", "libm.so.6": "libc6", "libpthread.so.0": "libc6", "libdl.so.2": "libc6",
    "librt.so.1": "libc6", "libutil.so.1": "libc6", "ld-linux-x86-64.so.2": "libc6",
    "ld-linux-aarch64.so.1": "libc6", "ld-linux-armhf.so.3": "libc6",
    "libgcc_s.so.1": "libgcc-s1", "libstdc++.so.6": "libstdc++6",
}


def log(msg: str) -> None:
    print(f"build_deb: {msg}", file=sys.stderr, flush=True)


# --- pip, isolated from the machine's configuration ---------------------------------------------

def pip_env() -> dict[str, str]:
    """pip sees PyPI (or JOSEV_BRIDGE_INDEX_URL) only: no pip.conf, no PIP_* source options, so a
    developer's extra index or local wheel directory cannot slip another file in (the hashes would
    refuse it anyway, but with a confusing message)."""
    keep = {"PIP_CERT", "PIP_CLIENT_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_PROXY", "PIP_RETRIES", "PIP_TRUSTED_HOST"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in keep}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], env=pip_env(), check=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def target_options(arch: Arch) -> list[str]:
    opts = ["--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp", "--abi", "cp311"]
    for platform in arch.platforms():
        opts += ["--platform", platform]
    return opts


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def wheel_name_version(filename: str) -> tuple[str, str]:
    name, version = filename.split("-")[:2]
    return re.sub(r"[-_.]+", "-", name).lower(), version


# --- lock ---------------------------------------------------------------------------------------

def lock() -> None:
    """Resolve the runtime dependencies for each architecture, the build backend once, and write both
    lock files with the sha256 of every wheel (pure ones once, rpds-py once per architecture)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        found: dict[tuple[str, str], dict[str, str]] = {}  # (name, version) -> {filename: sha256}
        versions: dict[str, set[tuple[str, str]]] = {}
        for arch in ARCHES.values():
            dest = Path(tmp) / arch.debian
            log(f"resolving for {arch.debian}")
            pip("download", "--quiet", "--index-url", INDEX_URL, "--dest", str(dest), *target_options(arch),
                *project["project"]["dependencies"])
            versions[arch.debian] = set()
            for wheel in sorted(dest.glob("*.whl")):
                key = wheel_name_version(wheel.name)
                versions[arch.debian].add(key)
                found.setdefault(key, {})[wheel.name] = sha256(wheel)
        if len({frozenset(v) for v in versions.values()}) != 1:
            raise SystemExit(f"the architectures resolved to different versions: {versions}")
        write_lock(LOCK, found, "runtime dependencies of josev-bridge for Debian 12 (cp311; "
                                "manylinux x86_64, aarch64, armv7l)")
        build_dest = Path(tmp) / "build"
        log("resolving the build backend")
        pip("download", "--quiet", "--index-url", INDEX_URL, "--dest", str(build_dest), "--only-binary=:all:",
            *project["build-system"]["requires"])
        write_lock(BUILD_LOCK, {wheel_name_version(w.name): {w.name: sha256(w)} for w in build_dest.glob("*.whl")},
                   "the build backend that builds josev-bridge's own wheel for the .deb")
    log(f"wrote {LOCK.relative_to(ROOT)} and {BUILD_LOCK.relative_to(ROOT)}")


def write_lock(path: Path, found: dict[tuple[str, str], dict[str, str]], what: str) -> None:
    lines = [f"# {what}.", "# Generated by `make lock` (packaging/build_deb.py lock) from pyproject.toml; do not edit.",
             "# `make deb` installs exactly these files (pip --require-hashes).", ""]
    for (name, version), files in sorted(found.items()):
        lines += [f"# {filename}" for filename in sorted(files)]
        hashes = sorted(set(files.values()))
        lines.append(f"{name}=={version} \\")
        lines += [f"    --hash=sha256:{h}" + (" \\" if i < len(hashes) - 1 else "") for i, h in enumerate(hashes)]
    path.write_text("\n".join(lines) + "\n")


def locked_hashes(path: Path) -> dict[str, tuple[str, set[str]]]:
    """name -> (version, sha256 set) from a lock file."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            spec, *rest = line.split()
            name, version = spec.split("==")
            out[name] = (version, {h.split(":", 1)[1] for h in rest if h.startswith("--hash=sha256:")})
    return out


# --- wheels -------------------------------------------------------------------------------------

def fetch_wheels(arch: Arch, cache: Path) -> list[Path]:
    """The locked wheels for `arch`: the cache's, when it holds a file with a locked hash for every
    distribution (pip put them there for this architecture), else downloaded by pip (hash-checked)."""
    dest = cache / "wheels" / arch.debian
    locked = locked_hashes(LOCK)
    chosen = cached_wheels(dest, locked, arch)
    if set(chosen) != set(locked):
        log(f"downloading the {arch.debian} wheels")
        try:
            pip("download", "--quiet", "--no-deps", "--require-hashes", "-r", str(LOCK), "--dest", str(dest),
                "--index-url", INDEX_URL, *target_options(arch))
        except subprocess.CalledProcessError as exc:
            raise SystemExit(f"pip download for {arch.debian} failed:\n{exc.stdout}") from None
        chosen = cached_wheels(dest, locked, arch)
    missing = set(locked) - set(chosen)
    if missing:
        raise SystemExit(f"no locked wheel for {arch.debian}: {sorted(missing)}")
    return [chosen[n] for n in sorted(chosen)]


def cached_wheels(dest: Path, locked: dict[str, tuple[str, set[str]]], arch: Arch) -> dict[str, Path]:
    chosen: dict[str, Path] = {}
    for wheel in sorted(dest.glob("*.whl")):
        name, version = wheel_name_version(wheel.name)
        if name in locked and locked[name][0] == version and sha256(wheel) in locked[name][1]:
            if name in chosen:
                raise SystemExit(f"two locked wheels of {name} for {arch.debian}: {chosen[name].name}, {wheel.name}")
            chosen[name] = wheel
    return chosen


def build_tools(cache: Path) -> Path:
    """The locked setuptools, installed once into the cache (keyed by the lock file's hash)."""
    tools = cache / "tools"
    stamp = tools / ".lock-sha256"
    want = sha256(BUILD_LOCK)
    if not (stamp.exists() and stamp.read_text() == want):
        shutil.rmtree(tools, ignore_errors=True)
        log("installing the locked build backend")
        pip("install", "--quiet", "--no-deps", "--require-hashes", "--only-binary=:all:", "--no-compile",
            "--index-url", INDEX_URL, "--target", str(tools), "-r", str(BUILD_LOCK))
        stamp.write_text(want)
    return tools


def copy_tree(dest: Path) -> Path:
    """The source tree without VCS, venv, build output and caches: what an sdist is built from."""
    skip = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache",
            ".ruff_cache", "run"}

    def ignore(directory: str, names: list[str]) -> set[str]:
        return {n for n in names if n in skip or n.endswith((".egg-info", ".pyc"))}

    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True)
    return dest


def backend(hook: str, source: Path, out: Path, tools: Path, epoch: int) -> Path:
    """Call the PEP 517 hook `hook` (build_sdist or build_wheel) of the locked setuptools in `source`."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(tools), "SOURCE_DATE_EPOCH": str(epoch), "PYTHONDONTWRITEBYTECODE": "1"}
    code = f"import sys, setuptools.build_meta as b; print(b.{hook}(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=source, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"setuptools {hook} failed:\n{done.stdout}")
    return out / done.stdout.strip().splitlines()[-1]


def build_own_wheel(work: Path, out: Path, tools: Path, epoch: int) -> tuple[Path, Path]:
    """sdist from a copy of the tree, then the wheel from the unpacked sdist (as `python -m build`)."""
    sdist = backend("build_sdist", copy_tree(work / "src"), out, tools, epoch)
    with tarfile.open(sdist) as tar:
        tar.extractall(work / "sdist", filter="data")
    (unpacked,) = (work / "sdist").iterdir()
    wheel = backend("build_wheel", unpacked, work / "wheel", tools, epoch)
    return sdist, wheel


# Directories of a dependency's own test suite and benchmarks: never imported at run time, a fifth of
# the installed size (jsonschema's tests alone are 0.5 MB, twice that with their byte-code).
PRUNED_DIRS = {"tests", "benchmarks"}


def unpack_wheel(wheel: Path, lib: Path, prune: bool) -> None:
    """Unpack into lib as an installer would, without writing anything of an installer's own: no
    RECORD (dpkg owns these files; pip must not think it may uninstall them), no INSTALLER,
    no scripts (the bridge's one entry point is /usr/bin/josev-bridge). `prune`: leave out
    PRUNED_DIRS (for dependencies; the bridge's own wheel is installed whole)."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            name = info.filename
            if info.is_dir():
                continue
            parts = name.split("/")
            if parts[0].endswith(".data"):
                if parts[1] not in ("purelib", "platlib"):
                    if parts[1] == "scripts":
                        continue
                    raise SystemExit(f"{wheel.name}: {parts[1]} data is not handled: {name}")
                parts = parts[2:]
            if parts[0].endswith(".dist-info") and parts[-1] in ("RECORD", "INSTALLER", "REQUESTED",
                                                                 "direct_url.json"):
                continue
            if "__pycache__" in parts or name.endswith((".pyc", ".pyo")):
                continue
            if prune and not parts[0].endswith(".dist-info") and PRUNED_DIRS & set(parts[1:-1]):
                continue
            target = lib.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))


# --- ELF ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Elf:
    machine: int
    flags: int
    needed: tuple[str, ...]


def read_elf(path: Path) -> Elf | None:
    """e_machine, e_flags and DT_NEEDED of an ELF file (None if it is not one)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF":
        return None
    is64, end = data[4] == 2, "<" if data[5] == 1 else ">"
    machine, = struct.unpack_from(end + "H", data, 18)
    if is64:
        flags, shentsize, shnum = struct.unpack_from(end + "I", data, 48)[0], *struct.unpack_from(end + "HH", data, 58)
        shoff, = struct.unpack_from(end + "Q", data, 40)
        sh_fmt, dyn_fmt = end + "IIQQQQIIQQ", end + "qQ"
    else:
        flags, shentsize, shnum = struct.unpack_from(end + "I", data, 36)[0], *struct.unpack_from(end + "HH", data, 46)
        shoff, = struct.unpack_from(end + "I", data, 32)
        sh_fmt, dyn_fmt = end + "IIIIIIIIII", end + "iI"
    sections = [struct.unpack_from(sh_fmt, data, shoff + i * shentsize) for i in range(shnum)]
    needed = []
    for sh in sections:
        if sh[1] == 6:  # SHT_DYNAMIC; sh_link is its string table
            strtab_off = sections[sh[6]][4]
            size = struct.calcsize(dyn_fmt)
            for off in range(sh[4], sh[4] + sh[5], size):
                tag, val = struct.unpack_from(dyn_fmt, data, off)
                if tag == 0:
                    break
                if tag == 1:  # DT_NEEDED
                    start = strtab_off + val
                    needed.append(data[start:data.index(b"\0", start)].decode())
    return Elf(machine, flags, tuple(needed))


def shared_objects(root: Path) -> dict[Path, Elf]:
    return {p: elf for p in sorted(root.rglob("*.so*")) if p.is_file() and (elf := read_elf(p)) is not None}


def glibc_floor(wheels: list[Path]) -> tuple[int, int]:
    """The glibc a set of manylinux wheels needs: per wheel the lowest of its tags, then the highest."""
    floor = (2, 17)
    for wheel in wheels:
        tags = wheel.name[:-4].split("-")[-1].split(".")
        mins = [(2, 17) if t.startswith("manylinux2014") else (int(m[1]), int(m[2]))
                for t in tags if (m := re.match(r"manylinux_(\d+)_(\d+)_", t)) or t.startswith("manylinux2014")]
        if mins:
            floor = max(floor, min(mins))
    return floor


# --- the package --------------------------------------------------------------------------------

def changelog_version() -> tuple[str, int]:
    """The package version from packaging/deb/changelog (as dpkg-buildpackage takes it) and its date."""
    text = (DEB / "changelog").read_text()
    version = re.match(r"josev-bridge \(([^)]+)\)", text).group(1)
    date = re.search(r"^ -- .*>  (.+)$", text, re.M).group(1)
    upstream = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    if version.rsplit("-", 1)[0] != upstream:
        raise SystemExit(f"packaging/deb/changelog is at {version}, pyproject.toml at {upstream}: "
                         "add a changelog entry")
    return version, int(email.utils.parsedate_to_datetime(date).timestamp())


def source_date_epoch() -> int:
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return int(out.stdout.strip())
    except FileNotFoundError:
        pass
    return changelog_version()[1]  # an unpacked sdist: the changelog's date


def maintainer() -> str:
    return re.search(r"^ -- (.+>)  ", (DEB / "changelog").read_text(), re.M).group(1)


def stage(arch: Arch, wheels: list[Path], own_wheel: Path, root: Path, version: str, epoch: int) -> None:
    lib = root / OPT_LIB
    lib.mkdir(parents=True)
    for wheel in wheels:
        unpack_wheel(wheel, lib, prune=True)
    unpack_wheel(own_wheel, lib, prune=False)
    for forbidden in ("pip", "setuptools", "pkg_resources", "_distutils_hack"):
        if (lib / forbidden).exists():
            raise SystemExit(f"{forbidden} must not be installed under /{OPT_LIB}")

    def put(src: Path | bytes, dest: str, mode: int = 0o644) -> None:
        path = root / dest
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(src if isinstance(src, bytes) else src.read_bytes())
        path.chmod(mode)

    put(DEB / "josev-bridge", "usr/bin/josev-bridge", 0o755)
    for unit in ("josev-bridge.service", "josev-bridge-sim.service"):
        put(ROOT / "systemd" / unit, f"lib/systemd/system/{unit}")
    put(DEB / "sysusers.conf", "usr/lib/sysusers.d/josev-bridge.conf")
    put(ROOT / "packaging" / "config.toml", "etc/josev-bridge/config.toml")
    doc = DOC
    put(ROOT / "README.md", f"{doc}/README.md")
    put(DEB / "README.Debian", f"{doc}/README.Debian")
    generated = {"josev-bridge.1", "josev-bridge.bash-completion"}  # installed where man and bash look, below
    for path in sorted((ROOT / "docs").iterdir()):
        if path.name not in generated:
            put(path, f"{doc}/docs/{path.name}")
    put(ROOT / "systemd" / "mosquitto-josev-bridge.conf", f"{doc}/examples/mosquitto-josev-bridge.conf")
    put(gzip_n((DEB / "changelog").read_bytes()), f"{doc}/changelog.Debian.gz")
    put(copyright_text(lib).encode(), f"{doc}/copyright")
    for text in sorted((DEB / "licenses").iterdir()):
        put(text, f"{doc}/licenses/{text.name}")
    put(DEB / "lintian-overrides", "usr/share/lintian/overrides/josev-bridge")
    # both generated from the command's parser (python -m josev_bridge.cli.docgen docs/; a test keeps them current)
    put(gzip_n((ROOT / "docs" / "josev-bridge.1").read_bytes()), "usr/share/man/man1/josev-bridge.1.gz")
    put(ROOT / "docs" / "josev-bridge.bash-completion", "usr/share/bash-completion/completions/josev-bridge")

    objects = shared_objects(root)
    depends = ["python3 (>= 3.11~)", "python3 (<< 3.12)", "systemd | systemd-standalone-sysusers"]
    libs = set()
    for path, elf in objects.items():
        if elf.machine != arch.elf_machine:
            raise SystemExit(f"{path.relative_to(root)} is for ELF machine {elf.machine}, not {arch.debian}")
        for soname in elf.needed:
            if soname not in SONAME_PACKAGES:
                raise SystemExit(f"{path.relative_to(root)} needs {soname}, which no bookworm package is known for")
            libs.add(SONAME_PACKAGES[soname])
    floor = glibc_floor([w for w in wheels if "manylinux" in w.name])
    depends += [f"libc6 (>= {floor[0]}.{floor[1]})" if p == "libc6" else p for p in sorted(libs)]

    control = root / "DEBIAN"
    control.mkdir()
    for script in ("postinst", "prerm", "postrm"):
        put(DEB / script, f"DEBIAN/{script}", 0o755)
    conffiles = ["/etc/josev-bridge/config.toml"]
    (control / "conffiles").write_text("".join(f"{c}\n" for c in conffiles))
    normalise(root)
    (control / "md5sums").write_text(md5sums(root, conffiles))
    fields = {"VERSION": version, "ARCH": arch.debian, "MAINTAINER": maintainer(),
              "INSTALLED_SIZE": str(installed_size(root)), "DEPENDS": ", ".join(depends)}
    text = (DEB / "control").read_text()
    for key, value in fields.items():
        text = text.replace(f"@{key}@", value)
    (control / "control").write_text(text)
    normalise(root)
    for path in [root, *root.rglob("*")]:
        os.utime(path, (epoch, epoch), follow_symlinks=False)


def gzip_n(data: bytes) -> bytes:
    """gzip -9n: no name, no timestamp."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0, filename="") as gz:
        gz.write(data)
    return buf.getvalue()


def normalise(root: Path) -> None:
    """Directories 0755, files 0644, executables (the launcher, maintainer scripts) 0755."""
    executable = {root / "usr/bin/josev-bridge", *(root / "DEBIAN" / s for s in ("postinst", "prerm", "postrm"))}
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        path.chmod(0o755 if path.is_dir() or path in executable else 0o644)


def md5sums(root: Path, conffiles: list[str]) -> str:
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("DEBIAN/") or f"/{rel}" in conffiles:
            continue
        lines.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {rel}\n")
    return "".join(lines)


def installed_size(root: Path) -> int:
    """KiB, as dpkg-gencontrol counts: each file rounded up to 1 KiB, each directory or link 1."""
    total = 0
    for path in root.rglob("*"):
        if path.relative_to(root).parts[0] == "DEBIAN":
            continue
        total += -(-path.stat().st_size // 1024) if path.is_file() and not path.is_symlink() else 1
    return total


def copyright_text(lib: Path) -> str:
    """The package's copyright file: the bridge (Apache-2.0) and each bundled distribution with the
    license its metadata declares and where its license text is installed."""
    parts = [
        "josev-bridge, packaged for Debian 12 (bookworm).",
        "",
        "Copyright (C) 2026 the josev-bridge authors",
        "License: Apache-2.0",
        " On Debian systems the full text of the Apache License, Version 2.0 is in",
        " /usr/share/common-licenses/Apache-2.0.",
        "",
        f"Bundled Python distributions under /{OPT_LIB}, pinned with their hashes in",
        "packaging/requirements.lock of the source. Each one's license, as its metadata declares it, and",
        "where its license text is installed:",
    ]
    for info in sorted(lib.glob("*.dist-info")):
        meta = email.parser.Parser().parsestr((info / "METADATA").read_text(encoding="utf-8"), headersonly=True)
        if meta["Name"] == "josev-bridge":
            continue
        license_ = meta["License-Expression"] or ""
        raw = (meta["License"] or "").strip()
        if not license_ and raw and "\n" not in raw and len(raw) < 80:  # a name, not the whole text
            license_ = raw
        if not license_:
            classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
            license_ = " OR ".join(classifiers)
        texts = sorted(p.relative_to(lib).as_posix() for p in info.rglob("*")
                       if p.is_file() and ("licenses" in p.relative_to(info).parts[:-1]
                                           or re.match(r"(LICEN[CS]E|COPYING|NOTICE)", p.name, re.I)))
        paths = [f"/{OPT_LIB}/{t}" for t in texts]
        extra = DEB / "licenses" / f"{meta['Name']}-{meta['Version']}.txt"  # for a wheel that ships none
        if extra.exists():
            paths.append(f"/{DOC}/licenses/{extra.name}")
        if not license_ or not paths:
            raise SystemExit(f"{info.name}: no license declared or no license text; read its sdist and put the "
                             f"text in packaging/deb/licenses/{extra.name}")
        parts += ["", f"{meta['Name']} {meta['Version']}", f" License: {license_}"]
        parts += [f" Text: {p}" for p in paths]
    return "\n".join(parts) + "\n"


def dpkg_deb(root: Path, out: Path, epoch: int) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    # One compressor thread: xz's multi-threaded output depends on the thread count, so a build on
    # another machine would differ.
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "-z6", "--threads-max=1", "--build", str(root),
                    str(out)], env=env, check=True, stdout=subprocess.DEVNULL)
    return out


def build(arches: list[str], out: Path, cache: Path) -> list[Path]:
    version, _ = changelog_version()
    epoch = source_date_epoch()
    out.mkdir(parents=True, exist_ok=True)
    tools = build_tools(cache)
    with tempfile.TemporaryDirectory(prefix="josev-deb-") as tmp:
        work = Path(tmp)
        sdist, own_wheel = build_own_wheel(work, out, tools, epoch)
        log(f"{sdist.name}, {own_wheel.name}")
        wheels = {a: fetch_wheels(ARCHES[a], cache) for a in arches}

        def one(arch_name: str) -> Path:
            arch = ARCHES[arch_name]
            root = work / f"root-{arch_name}"
            stage(arch, wheels[arch_name], own_wheel, root, version, epoch)
            return dpkg_deb(root, out / f"{PACKAGE}_{version}_{arch_name}.deb", epoch)

        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            debs = list(pool.map(one, arches))
    for deb in debs:
        log(f"{deb.relative_to(ROOT) if deb.is_relative_to(ROOT) else deb}: {deb.stat().st_size / 1e6:.2f} MB")
    return debs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("lock", help="regenerate packaging/requirements.lock and packaging/build-requirements.lock")
    b = sub.add_parser("build", help="build the .deb files")
    b.add_argument("--arch", action="append", choices=sorted(ARCHES), help="default: all three")
    b.add_argument("--out", type=Path, default=ROOT / "build" / "deb")
    b.add_argument("--cache", type=Path, default=ROOT / "build" / "deb-cache",
                   help="downloaded wheels and the build backend, kept between builds")
    args = parser.parse_args(argv)
    if args.command == "lock":
        lock()
    else:
        for deb in build(args.arch or list(ARCHES), args.out.resolve(), args.cache.resolve()):
            print(deb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
