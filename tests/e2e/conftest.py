"""Run `readygate demo` as a user would: a subprocess, real Prometheus, Alertmanager, sink."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def fast_config(tmp_path: Path) -> Path:
    """The default config with deadlines short enough for tests that expect failures."""
    data = yaml.safe_load((ROOT / "readygate.yaml").read_text())
    # the copy lives elsewhere: its relative journeys file must still be the demo's
    data["probes"]["journeys_file"] = str(ROOT / data["probes"]["journeys_file"])
    gate = data["gates"]["release"]
    # the baseline's max as in readygate.yaml: a browser-following check counts from the
    # journey's first step, which a busy CI machine reached 10 s into the baseline
    gate["scenario"]["baseline"] = {"min_duration_s": 3, "max_duration_s": 30}
    gate["scenario"]["fault_phase"] = {"max_duration_s": 20}
    gate["scenario"]["recovery"] = {"max_duration_s": 20}
    for check in gate["checks"]:
        if check["signal"] == "no_alert":
            check["window_s"] = 3
        elif check["signal"] in ("alert", "notification"):
            check["deadline_s"] = 10 if check.get("status") != "resolved" else 12
    path = tmp_path / "readygate.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class DemoRun:
    returncode: int
    stdout: str
    stderr: str
    out: Path

    @property
    def report(self) -> dict[str, Any]:
        return json.loads((self.out / "report.json").read_text())

    def check(self, signal: str, phase: str | None = None) -> dict[str, Any]:
        return next(c for c in self.report["checks"]
                    if c["signal"] == signal and (phase is None or c["phase"] == phase))


def demo_argv(out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "readygate", "demo", "--out", str(out), *args]


def run_demo(tmp_path: Path, *args: str, timeout: float = 240) -> DemoRun:
    out = tmp_path / "out"
    proc = subprocess.run(demo_argv(out, *args), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "CI": "true"})
    return DemoRun(proc.returncode, proc.stdout, proc.stderr, out)


def assert_all_stopped(pids: list[int], *, born_before: float | None = None) -> None:
    """None of ``pids`` runs. ``born_before``: when the PIDs were known to be ours; a process
    started later holds a recycled PID (pid_max is 32768 here, and Chromium and three test
    workers go through it in minutes), not one of ours."""
    alive = [pid for pid in pids if _alive(pid, born_before)]
    assert not alive, f"processes still running: {alive}"


def _alive(pid: int, born_before: float | None = None) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return False
    return born_before is None or _started_at(int(fields[19])) <= born_before


def _started_at(ticks: int) -> float:
    """A process's start time (field 22 of /proc/PID/stat, clock ticks since boot), epoch s."""
    boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                if line.startswith("btime "))
    return boot + ticks / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def fast_config_path(tmp_path: Path) -> Path:
    return fast_config(tmp_path)
