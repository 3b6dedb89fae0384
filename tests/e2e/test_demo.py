"""`readygate demo` end to end on the real stack: the verdicts are earned, not assumed; the
one READY run also proves all four report files valid for their consumers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import jsonschema
import pytest
import yaml
from junitparser import JUnitXml

from tests.e2e.conftest import ROOT, DemoRun, assert_all_stopped, demo_argv, run_demo
from tests.reports.conftest import SCHEMA

pytestmark = pytest.mark.slow

CONTRACT_FIELDS = {"name", "signal", "status", "message", "latency_s", "deadline_s", "evidence"}


def test_demo_ends_ready_with_measured_latencies_and_stops_everything(tmp_path: Path) -> None:
    history = tmp_path / "history"
    run = run_demo(tmp_path, "--history", str(history))
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    report = run.report
    assert report["verdict"] == "ready" and report["gate"] == "release"
    assert report["started_at"] < report["finished_at"]
    signals = {c["signal"] for c in report["checks"]}
    assert {"alert", "notification", "trace", "logs", "metric", "no_alert"} <= signals
    for check in report["checks"]:
        assert set(check) >= CONTRACT_FIELDS, check
        assert check["status"] == "pass", check
        if check["signal"] != "no_alert":
            assert isinstance(check["latency_s"], float) and check["latency_s"] >= 0, check
            assert check["latency_s"] <= check["deadline_s"]
    assert (run.out / "report.md").read_text().startswith("## readygate: release — **READY**")
    assert "verdict: READY (exit code 0)" in run.stdout
    assert "STATUS" in run.stdout and "LATENCY" in run.stdout
    fault = report["faults"][0]
    assert fault["end_reason"] == "rollback" and fault["ended_at"] > fault["started_at"]
    # the sink stops with the run: each trace the evidence names is saved beside the report
    trace = next(c for c in report["checks"] if c["signal"] == "trace")
    link = trace["evidence"]["link"]
    assert link == f"traces/{trace['evidence']['trace_id']}.json"
    spans = json.loads((run.out / link).read_text())["spans"]
    assert {s["service"] for s in spans} >= {"web", "storage"}
    assert f'href="{link}"' in (run.out / "report.html").read_text()
    assert_the_four_reports(run, history)
    assert_all_stopped(report["stack"]["pids"])


def assert_the_four_reports(run: DemoRun, history: Path) -> None:
    """All four report files, each valid for its consumer; the run went into the history."""
    out = run.out
    assert {p.name for p in out.iterdir() if p.is_file()} == {
        "report.json", "junit.xml", "report.md", "report.html"}
    data = run.report
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(data)
    xml = JUnitXml.fromfile(str(out / "junit.xml"))
    assert xml.tests == len(data["checks"]) and xml.failures == 0
    page = (out / "report.html").read_text()
    assert "<svg" in page and 'fill="url(#hatch)"' in page and "READY" in page
    assert len(list((history / "release").glob("*.json"))) == 1
    assert "\x1b" not in run.stderr, "CI output has no escape codes"
    assert "checks settled" in run.stderr


def test_demo_without_the_high_error_rate_rule_is_not_ready_naming_the_alert(
        tmp_path: Path, fast_config_path: Path) -> None:
    rules = yaml.safe_load((ROOT / "demo/rules/alerts.yml").read_text())
    for group in rules["groups"]:
        group["rules"] = [r for r in group["rules"] if r.get("alert") != "HighErrorRate"]
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump(rules))
    # Only the rules path: the sabotage matrix (tests/selftest) judges the whole gate with
    # this rule missing; here the point is that `--rules` reaches Prometheus, which the rule
    # check sees in the baseline (no fault needed).
    config = yaml.safe_load(fast_config_path.read_text())
    gate = config["gates"]["release"]
    for key in ("fault", "fault_phase", "recovery"):
        gate["scenario"].pop(key)
    gate["checks"] = [{"signal": "alert_rule", "phase": "baseline", "alertname": alertname,
                       "deadline_s": 3} for alertname in ("HighErrorRate", "ServiceDown")]
    fast_config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    run = run_demo(tmp_path, "--config", str(fast_config_path), "--rules", str(rules_file))
    assert run.returncode == 1, run.stdout + run.stderr[-3000:]
    assert run.report["verdict"] == "not_ready"
    missing, kept = run.report["checks"]
    assert missing["status"] == "fail" and kept["status"] == "pass", run.report["checks"]
    assert "no alerting rule named HighErrorRate is loaded" in missing["message"]
    assert_all_stopped(run.report["stack"]["pids"])


def test_sigint_during_the_fault_rolls_back_and_writes_a_partial_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(demo_argv(out), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "CI": "true"})
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 120
    try:
        for line in proc.stderr:
            seen.append(line)
            if "fault injected" in line:
                break
            assert time.monotonic() < deadline, "".join(seen)
        else:
            pytest.fail("the run ended before the fault: " + "".join(seen))
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, "".join(seen)
    report = DemoReport(out)
    assert report.data["partial"] is True
    assert report.data["verdict"] == "inconclusive"
    assert report.data["reason"] == "interrupted by SIGINT"
    fault = report.data["faults"][0]
    assert fault["end_reason"] == "interrupted" and fault["ended_at"] is not None
    assert any(c["status"] == "skipped" for c in report.data["checks"])
    assert (out / "report.md").exists()
    assert_all_stopped(report.data["stack"]["pids"])


class DemoReport:
    def __init__(self, out: Path) -> None:
        import json
        self.data = json.loads((out / "report.json").read_text())
