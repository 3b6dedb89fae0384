"""Verdict rule, renderers and the writer (which scrubs secrets)."""

from __future__ import annotations

import json
from pathlib import Path

from core import redact
from reports.model import CheckResult, Report, verdict_of
from reports.render import render_console, render_json, render_markdown
from reports.writer import write_reports


def check(status: str, severity: str = "critical", name: str = "c") -> CheckResult:
    return CheckResult(name=name, signal="alert", status=status,  # type: ignore[arg-type]
                       message=f"{name} {status}", severity=severity, latency_s=1.234,
                       deadline_s=20)


def test_verdict_rules() -> None:
    assert verdict_of([check("pass"), check("fail", "warning")]) == "ready"
    assert verdict_of([check("pass"), check("fail")]) == "not_ready"
    assert verdict_of([check("error"), check("pass")]) == "inconclusive"
    assert verdict_of([check("fail"), check("error")]) == "not_ready"
    assert verdict_of([check("skipped")]) == "inconclusive"
    assert verdict_of([]) == "inconclusive", "a gate that judged nothing is not ready"
    assert verdict_of([check("pass", "warning")]) == "inconclusive"


def report(*checks: CheckResult) -> Report:
    return Report(gate="release", target="demo", started_at=1_700_000_000.0,
                  finished_at=1_700_000_012.5, verdict=verdict_of(list(checks)),
                  checks=list(checks))


def test_json_has_the_contract_fields() -> None:
    data = json.loads(render_json(report(check("pass"), check("fail", name="d"))))
    assert {"gate", "verdict", "started_at", "finished_at", "checks", "schema_version"} <= set(data)
    assert data["verdict"] == "not_ready" and data["summary"]["fail"] == 1
    for c in data["checks"]:
        assert {"name", "signal", "status", "message", "latency_s", "deadline_s",
                "evidence"} <= set(c)


def test_markdown_and_console_name_the_failing_check() -> None:
    r = report(check("pass", name="alert fires"), check("fail", name="trace spans web+storage"))
    md = render_markdown(r)
    assert md.startswith("## readygate: release — **NOT READY**")
    assert "| ❌ | trace spans web+storage |" in md
    console = render_console(r, "out/x")
    assert "verdict: NOT READY (exit code 1)" in console and "out/x/report.html" in console
    assert "1.23s" in console


def test_console_marks_a_failed_warning_check_warn_beside_ready() -> None:
    """A warning check's FAIL does not change the verdict; the console must not read as if
    it did (report.md has a severity column; the console has the status only)."""
    r = report(check("pass", name="alert fires"), check("fail", "warning", name="log budget"),
               check("error", "warning", name="pii"))
    console = render_console(r)
    rows = {line.split()[1]: line.split()[0] for line in console.splitlines()
            if line.startswith(("PASS", "FAIL", "WARN", "ERROR"))}
    assert rows == {"alert": "PASS", "log": "WARN", "pii": "WARN"}
    assert "verdict: READY (exit code 0)" in console
    r = report(check("fail", name="trace spans web"))
    assert render_console(r).splitlines()[2].startswith("FAIL ")


def test_markdown_table_cells_cannot_break_the_table() -> None:
    md = render_markdown(report(CheckResult(name="a|b", signal="metric", status="pass",
                                            message="x\ny|z")))
    assert "a\\|b" in md and "x y\\|z" in md


def test_writer_scrubs_registered_secrets(tmp_path: Path) -> None:
    redact.register("hunter2-the-password")
    r = report(CheckResult(name="logs", signal="logs", status="fail",
                           message="found hunter2-the-password in a log line"))
    for path in write_reports(r, tmp_path):
        text = path.read_text()
        assert "hunter2-the-password" not in text
    assert "found *** in a log line" in (tmp_path / "report.md").read_text()
