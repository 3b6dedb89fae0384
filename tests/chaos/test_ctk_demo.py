"""Chaos Toolkit experiments against the real demo stack (Prometheus, Alertmanager, sink):
the plain `chaos run` passes, and `readygate drill --demo` runs an experiment as a scenario."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from demo.stack import DemoStack, StackOptions
from tests.e2e.conftest import assert_all_stopped

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = ROOT / "chaos" / "experiments" / "storage-errors.json"
CHAOS = Path(sys.executable).parent / "chaos"


def test_plain_chaos_run_passes_against_the_demo(tmp_path: Path) -> None:
    stack = DemoStack(StackOptions(password="pw-ctk-demo"), tmp_path / "stack")
    urls = asyncio.run(stack.start())
    try:
        env = {**os.environ, "READYGATE_PROXY_URL": urls.proxy,
               "READYGATE_PROMETHEUS_URL": urls.prometheus, "READYGATE_SINK_URL": urls.sink,
               "READYGATE_WEB_URL": urls.web}
        journal_path = tmp_path / "journal.json"
        proc = subprocess.run([str(CHAOS), "--no-log-file", "run", "--journal-path",
                               str(journal_path), str(EXPERIMENT)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        journal = json.loads(journal_path.read_text())
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert (journal["status"], journal["deviated"]) == ("completed", False)
        assert [r["status"] for r in journal["run"]] == ["succeeded"] * 3
        assert journal["run"][2]["output"] is True  # notified
        after = journal["steady_states"]["after"]
        assert after["steady_state_met"] and all(p["output"] is True or p["output"] >= 0.9
                                                 for p in after["probes"])
        assert [r["status"] for r in journal["rollbacks"]] == ["succeeded"]
        active = httpx.get(urls.proxy + "/_readygate/faults", timeout=5).json()["active"]
        assert active == []
    finally:
        pids = stack.pids()
        stack.stop()
    assert_all_stopped(pids)


def test_readygate_drill_runs_the_experiment_on_the_demo(tmp_path: Path) -> None:
    scenario = {"name": "ctk-storage-errors",
                "scenario": {"baseline": {"min_duration_s": 1, "max_duration_s": 10},
                             "experiment": {"path": str(EXPERIMENT), "timeout_s": 90},
                             "fault_phase": {"max_duration_s": 90},
                             "recovery": {"max_duration_s": 30}},
                "drill": {"alertname": "HighErrorRate", "labels": {"service": "web"}},
                "checks": [{"signal": "alert", "alertname": "HighErrorRate",
                            "labels": {"service": "web"}, "deadline_s": 20}]}
    path, out = tmp_path / "ctk.yaml", tmp_path / "out"
    path.write_text(yaml.safe_dump(scenario))
    proc = subprocess.run([sys.executable, "-m", "readygate", "drill", "--demo", str(path),
                           "--out", str(out), "--no-notify"], cwd=ROOT, capture_output=True,
                          text=True, timeout=240, env={**os.environ, "CI": "true"})
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    by_signal = {c["signal"]: c for c in report["checks"]}
    assert by_signal["experiment"]["status"] == "pass", by_signal["experiment"]
    assert by_signal["alert"]["status"] == "pass"
    assert report["drill"]["time_to_detect_s"] > 0
    assert_all_stopped(report["stack"]["pids"])
