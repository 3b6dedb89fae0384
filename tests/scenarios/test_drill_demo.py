"""`readygate drill --demo` end to end: each demo scenario runs with load and its drill
report shows the measured times (real Prometheus, Alertmanager, sink, Locust)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, assert_all_stopped

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("scenario, alertname", [("error-rate", "HighErrorRate"),
                                                 ("latency", "SlowRequests"),
                                                 ("dependency-down", "HighErrorRate")])
def test_demo_drill_measures_detect_notify_and_recover_under_load(
        scenario: str, alertname: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "readygate", "drill", "--demo", scenario,
                           "--out", str(out), "--no-notify"], cwd=ROOT, capture_output=True,
                          text=True, timeout=240, env={**os.environ, "CI": "true"})
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    drill = report["drill"]
    assert drill["alertname"] == alertname
    for key in ("time_to_detect_s", "time_to_notify_s", "fault_duration_s",
                "time_to_recover_s"):
        assert isinstance(drill[key], float) and drill[key] > 0, (key, drill)
    # detection cannot come before the fault nor after the rollback that it triggered
    assert drill["time_to_detect_s"] <= drill["fault_duration_s"]
    at = {m["name"]: m["at"] for m in drill["milestones"]}
    assert at["fault_injected"] < at["alert_firing"] <= at["rollback"] < at["recovered"]
    if scenario == "latency":  # `for: 2s`: seen pending before firing
        assert at["alert_pending"] < at["alert_firing"]
    else:
        assert at["first_failed_probe"] is not None
    load = report["load"]
    assert load["requests"] > 0 and isinstance(load["p95_ms"], float)
    assert drill["load_by_phase"]["fault"]["samples"] >= 1
    assert any(e["type"] == "LoadStats" for e in report["timeline"])
    assert "time to detect" in proc.stdout
    assert_all_stopped(report["stack"]["pids"] + load["pids"])
