"""Fixtures for the report tests: a real demo report and builders for synthetic ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reports.model import CheckResult, Report, verdict_of

DATA = Path(__file__).parent / "data"
SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "report-schema.json"


@pytest.fixture
def demo_report_data() -> dict[str, Any]:
    """report.json of a real `readygate demo` run (READY), as a dict."""
    data: dict[str, Any] = json.loads((DATA / "demo-report.json").read_text())
    return data


@pytest.fixture
def demo_report(demo_report_data: dict[str, Any]) -> Report:
    """The same real report as a Report object."""
    return Report.from_dict(demo_report_data)


def make_check(status: str, name: str = "c", *, severity: str = "critical",
               signal: str = "alert", latency: float | None = 1.5, phase: str = "fault",
               evidence: dict[str, Any] | None = None, message: str | None = None) -> CheckResult:
    """A check result with sensible defaults."""
    return CheckResult(name=name, signal=signal, status=status,  # type: ignore[arg-type]
                       message=message or f"{name} {status}", severity=severity, phase=phase,
                       latency_s=latency, deadline_s=20, anchor="fault_start",
                       evidence=evidence or {}, settled_at=1_700_000_005.0)


def make_report(*checks: CheckResult, probes: list[dict[str, Any]] | None = None) -> Report:
    """A report around the given checks (verdict by the real rule)."""
    return Report(gate="release", target="demo", started_at=1_700_000_000.0,
                  finished_at=1_700_000_012.5, verdict=verdict_of(list(checks)),
                  checks=list(checks), probes=probes or [],
                  phases=[{"phase": "baseline", "started_at": 1_700_000_000.0,
                           "finished_at": 1_700_000_004.0},
                          {"phase": "fault", "started_at": 1_700_000_004.0,
                           "finished_at": 1_700_000_008.0}],
                  faults=[{"fault_id": "f-1", "service": "storage", "kind": "http_error",
                           "summary": "HTTP 500", "started_at": 1_700_000_004.0,
                           "expires_at": 1_700_000_100.0, "ended_at": 1_700_000_008.0,
                           "end_reason": "rollback"}])


def many_probes(n: int, t0: float = 1_700_000_000.0, span: float = 3600.0
                ) -> list[dict[str, Any]]:
    """``n`` probe results over ``span`` seconds, three journeys, some failing."""
    journeys = ("health", "login", "upload")
    return [{"journey": journeys[i % 3], "started_at": t0 + span * i / n,
             "duration_s": 0.005 + (i % 17) / 1000, "success": i % 50 != 0,
             "trace_id": f"{i:032x}", "error": None if i % 50 else "HTTP 500", "steps": []}
            for i in range(n)]
