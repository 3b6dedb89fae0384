"""The `slo` and `hygiene` check types: they pass on good data and fail on bad or no data."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest
import yaml

from core.errors import ConfigError
from demo.stack import alertmanager_config_text
from gates.checks import judge, judge_all
from gates.checks.slo import p95
from gates.context import Anchors, CheckContext
from probes.model import ProbeResult
from readygate.config import parse_config
from reports.model import CheckResult, verdict_of
from tests.gates.conftest import CHECK, judge_with

ROOT = Path(__file__).resolve().parents[2]
_TOOLS = bool(shutil.which("promtool") or Path("/usr/bin/promtool").exists())


def _runs(journey: str, durations_ms: list[float], failed: int = 0,
          start: float | None = None) -> list[ProbeResult]:
    t0 = (start or time.time()) - 0.5
    return [ProbeResult(journey, t0 + i * 0.001, d / 1000, i >= failed, "ab" * 16, (),
                        None if i >= failed else "upload failed: 500")
            for i, d in enumerate(durations_ms)]


def _slo(**kw: object) -> dict[str, object]:
    return {"signal": "slo", "phase": "baseline", "journey": "upload", "window_s": 0.6, **kw}


def test_slo_passes_when_ratio_and_p95_meet_their_targets() -> None:
    result = judge_with(_slo(min_success_ratio=0.99, max_p95_ms=200), phase="baseline",
                        probes=_runs("upload", [20, 30, 40, 50, 60]))
    assert result.status == "pass", result.message
    assert result.evidence["success_ratio"] == 1.0 and result.evidence["p95_ms"] == 60.0
    assert result.deadline_s == 0.6


def test_slo_fails_below_the_success_ratio_naming_the_first_failure() -> None:
    result = judge_with(_slo(min_success_ratio=0.9), phase="baseline",
                        probes=_runs("upload", [20] * 4, failed=1))
    assert result.status == "fail"
    assert "success ratio 75.00% < 90.00% (1 of 4 failed; first: upload failed: 500)" \
        in result.message
    assert result.message.count("75.00%") == 1, result.message  # each figure said once
    assert result.message.endswith(" over 0.6s (p95 20ms)"), result.message


def test_slo_fails_when_p95_is_over_its_target() -> None:
    result = judge_with(_slo(max_p95_ms=500), phase="baseline",
                        probes=_runs("upload", [100] * 19 + [900]))
    assert result.status == "pass"  # one slow run of 20 is the p100, not the p95
    result = judge_with(_slo(max_p95_ms=500), phase="baseline",
                        probes=_runs("upload", [100] * 18 + [900, 900]))
    assert result.status == "fail" and "p95 900ms > 500ms" in result.message


def test_slo_without_enough_probe_runs_is_a_fail_not_a_pass() -> None:
    result = judge_with(_slo(), phase="baseline", probes=_runs("login", [10, 10, 10]))
    assert result.status == "fail"
    assert "only 0 upload probe run(s)" in result.message


def test_slo_ignores_runs_before_the_window_and_waits_for_its_end() -> None:
    now = time.time()
    before = _runs("upload", [10] * 3, failed=3, start=now - 5)  # failures before the phase
    started = time.monotonic()
    result = judge_with(_slo(), phase="baseline", probes=[*before, *_runs("upload", [10] * 3)],
                        anchors=Anchors(phase_start={"baseline": now - 0.5}))
    assert result.status == "pass", result.message
    assert result.evidence["runs"] == 3
    assert time.monotonic() - started >= 0.05  # judged only once the window had passed


def test_slo_window_cannot_start_at_a_probe() -> None:
    with pytest.raises(ConfigError, match="anchor: an slo window starts at"):
        parse_config("gates:\n  g:\n    checks:\n      - {signal: slo, anchor: probe_sent}\n",
                     "x.yaml")


def test_p95_is_a_value_that_really_occurred() -> None:
    assert p95([0.1]) == 0.1
    assert p95([float(i) for i in range(1, 101)]) == 95.0


# --- hygiene ----------------------------------------------------------------------------

def _hygiene(check: dict[str, object]) -> list[CheckResult]:
    async def go() -> list[CheckResult]:
        ctx = CheckContext(prometheus=None, sink=None,
                           anchors=Anchors(phase_start={"baseline": time.time()}),
                           probe_results=[])
        return await judge_all(CHECK.validate_python(check), ctx, "baseline")
    return asyncio.run(go())


def test_hygiene_without_rules_could_not_look() -> None:
    results = _hygiene({"signal": "hygiene"})
    assert [(r.status, r.severity) for r in results] == [("error", "critical")]
    assert "no rules configured" in results[0].message
    results = _hygiene({"signal": "hygiene", "rules": ["/nonexistent/*.yml"]})
    assert results[0].status == "error" and "match no file" in results[0].message


@pytest.mark.skipif(not _TOOLS, reason="promtool not installed")
def test_hygiene_results_carry_the_checks_name_phase_and_severity(tmp_path: Path) -> None:
    rules = tmp_path / "alerts.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"alert": "NoRunbook", "expr": "up == 0", "labels": {"severity": "page"},
         "annotations": {"summary": "down"}}]}]}))
    am = tmp_path / "am.yml"
    am.write_text(alertmanager_config_text(webhook_url="http://127.0.0.1:9/hook"))
    check = {"signal": "hygiene", "name": "rules", "severity": "critical",
             "rules": [str(tmp_path / "alert*.yml")], "alertmanager_config": str(am)}
    results = _hygiene(check)
    by = {r.name: r for r in results}
    assert set(by) == {"rules: promtool check rules",
                       "rules: every alert has severity, summary and a runbook that answers",
                       "rules: every alert routes to a receiver",
                       "rules: promtool rule unit tests"}
    meta = by["rules: every alert has severity, summary and a runbook that answers"]
    assert meta.status == "fail" and "NoRunbook: no runbook_url" in meta.message
    assert all(r.phase == "baseline" and r.signal == "hygiene" for r in results)
    # no unit tests is optional ("run when present"): a warning skip that never blocks
    assert (by["rules: promtool rule unit tests"].status,
            by["rules: promtool rule unit tests"].severity) == ("skipped", "warning")
    assert verdict_of(results) == "not_ready"

    async def one() -> CheckResult:
        ctx = CheckContext(prometheus=None, sink=None, anchors=Anchors(), probe_results=[])
        return await judge(CHECK.validate_python(check), ctx, "baseline")
    assert asyncio.run(one()).status == "fail"  # judge() answers the worst critical result
