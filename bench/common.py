"""What every bench shares: the checkout on sys.path, the facts of the machine and the code, CPU and
RSS readers, percentiles, helper processes started and stopped, and SIGTERM turned into an exit.

Import it before anything from `josev_bridge`: it puts this checkout first on sys.path, so a
checkout works without `pip install`.
"""

from __future__ import annotations

import math
import os
import platform
import select
import shlex
import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: What the bridge runs: the package and the data installed with it (pyproject.toml's package-dir),
#: the request schemas it validates against and the device-model definitions it loads. A change
#: in any of them changes what a bench measures.
MEASURED_PATHS = ("josev_bridge", "schemas", "device_model")


# -- SIGTERM ----------------------------------------------------------------------------------------
def exit_on_sigterm() -> None:
    """SIGTERM exits through the `finally` blocks and context managers.

    SIGTERM's default ends the process at once, skipping what stops the broker, the simulator and
    the bridge a bench started: `kill` or `timeout` left them running."""
    signal.signal(signal.SIGTERM, _exit)


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


# -- the machine and the code -------------------------------------------------------------------------
def cpu_description() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    return f"{cpu} ({os.cpu_count()} CPUs online, nproc {len(os.sched_getaffinity(0))})"


def mosquitto_version() -> str:
    from josev_bridge.harness.broker import mosquitto_binary
    try:
        mosq = subprocess.run([mosquitto_binary(), "-h"], capture_output=True, text=True, timeout=5).stdout
        return mosq.splitlines()[0].removeprefix("mosquitto version ").strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def code_revision() -> str:
    """The commit the bridge was measured at, and whether the working tree had changes in what it runs."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *MEASURED_PATHS],
                               cwd=REPO, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return f"{head or '?'}" + (f" + uncommitted changes in {'/'.join(MEASURED_PATHS)}" if dirty else "")


def filesystem_of(path: Path) -> str:
    """The file system a path is on: type, device and mount point (the longest mount point above it)."""
    path = path.resolve()
    best = ("?", "?", "?")
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            mount_point = left.split()[4]
            fstype, source = right.split()[:2]
            if (str(path) == mount_point or str(path).startswith(mount_point.rstrip("/") + "/")) \
                    and len(mount_point) >= len(best[0]):
                best = (mount_point, fstype, source)
    except (OSError, IndexError):
        pass
    return f"{best[1]} on {best[2]} (mounted at {best[0]})"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine(**extra: str) -> dict[str, str]:
    """The facts every bench prints, with the bench's own (versions, directories) in the middle."""
    return {
        "cpu": cpu_description(),
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": f"{platform.python_version()} ({sys.executable})",
        **extra,
        "load average": load_average(),
        "code": code_revision(),
    }


def command_line() -> list[str]:
    return getattr(sys, "orig_argv", [sys.executable, *sys.argv])


def print_start(info: dict[str, str], width: int) -> None:
    """The command, the machine facts, and a warning when the machine is already busy."""
    print("command:", shlex.join(command_line()))
    for key, value in info.items():
        print(f"{key + ':':<{width}}{value}")
    if os.getloadavg()[0] > 0.5 * len(os.sched_getaffinity(0)):
        print(f"{'note:':<{width}}the machine is already busy (load average above); expect noisier figures")


# -- measuring a process ------------------------------------------------------------------------------
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process (all its threads) in seconds, from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()  # fields[0] is field 3 (state)
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads)."""
    return sum(cpu_split(pid))


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of /proc/<pid>/status in KiB: VmRSS now, or VmHWM (the peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


# -- helper processes (the baselines) -----------------------------------------------------------------
def start_helper(script: str, *args: str, timeout: float = 10.0) -> subprocess.Popen:
    """Run bench/<script> with this Python; return once it printed READY (or kill it and raise)."""
    proc = subprocess.Popen([sys.executable, str(HERE / script), *args], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if line.strip() != "READY":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{script} did not become ready within {timeout:g} s (got {line!r})")
    return proc


def stop_helper(proc: subprocess.Popen, timeout: float = 5.0) -> str:
    """SIGTERM, then SIGKILL after `timeout`; returns what it printed after READY."""
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


def stop_run(client, helper: subprocess.Popen | None, bridge) -> bool:
    """The end of a bench run: close the bench's MQTT client, stop the bare responder, stop the bridge.
    False (and says why) when the bridge did not exit cleanly: a run that crashed the bridge fails."""
    if client is not None:
        client.close()
    if helper is not None:
        stop_helper(helper)
    rc = bridge.stop()
    if rc not in (0, None):
        print(f"bridge exited with {rc}")
        return False
    return True
