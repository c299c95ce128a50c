"""What every bench prints about the machine it ran on: the CPU and the broker's version."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from josev_bridge.harness.broker import mosquitto_binary


def cpu_description() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    return f"{cpu} ({os.cpu_count()} CPUs online, nproc {len(os.sched_getaffinity(0))})"


def mosquitto_version() -> str:
    try:
        mosq = subprocess.run([mosquitto_binary(), "-h"], capture_output=True, text=True, timeout=5).stdout
        return mosq.splitlines()[0].removeprefix("mosquitto version ").strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"
