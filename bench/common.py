"""Helpers shared by the benchmarks: pinned child processes, /proc readings, quantiles.

Every child is started through :class:`core.procs.ManagedProcess` (its own session,
``PR_SET_PDEATHSIG``, stopped by PID), so a benchmark that crashes leaves nothing behind.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from core.procs import ManagedProcess

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cores() -> tuple[int, int]:
    """Two distinct CPUs this process may run on: (system under test, load generator)."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        # One CPU: everything shares it; the figures are then ratios on a shared core.
        return allowed[0], allowed[0]
    return allowed[0], allowed[1]


def pin_self(core: int) -> None:
    """Run this (load generator) process on one core only."""
    os.sched_setaffinity(0, {core})


def pinned(core: int, argv: Sequence[str]) -> list[str]:
    """``argv`` under ``taskset -c core`` (taskset execs, so the PID is the program's)."""
    taskset = shutil.which("taskset")
    if taskset is None:
        raise SystemExit("taskset not found (Debian package util-linux)")
    return [taskset, "-c", str(core), *argv]


def python(module: str, *args: str) -> list[str]:
    """argv running ``python -m module`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


async def start_ready(name: str, argv: Sequence[str], log_dir: Path,
                      env: dict[str, str] | None = None, timeout: float = 30.0
                      ) -> ManagedProcess:
    """Start a child that prints ``READY <url>``; wait for that line."""
    proc = ManagedProcess(name, argv, env=env, log_path=log_dir / f"{name}.log", cwd=ROOT)
    proc.start()
    try:
        await proc.wait_ready_line(timeout)
    except BaseException:
        proc.stop()
        raise
    return proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # after the ")" of the command name: state is field 3, utime 14, stime 15 (1-based)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    """Resident set size in MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile by nearest rank (no interpolation: the value was really observed)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def machine() -> dict[str, str]:
    """The machine the figures were taken on (for BENCHMARKS.md)."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.M)
    os_name = "unknown"
    with_os = Path("/etc/os-release")
    if with_os.exists():
        found = re.search(r'^PRETTY_NAME="?([^"\n]*)', with_os.read_text(), re.M)
        os_name = found.group(1) if found else os_name
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model.group(1).strip() if model else "unknown",
        "memory": f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB" if mem else "unknown",
        "os": f"{os_name} ({platform.release()})",
        "python": platform.python_version(),
        "prometheus": _version(["prometheus", "--version"]),
        "blackbox_exporter": _version(["prometheus-blackbox-exporter", "--version"]),
        "chromium": _version(["/usr/bin/chromium", "--version"]),
    }


if __name__ == "__main__":
    for key, value in machine().items():
        print(f"{key:<18} {value}")
