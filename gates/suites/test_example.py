"""An example gate suite: Python checks over a readygate run of the demo.

Run by ``readygate run observability-readiness`` (or ``readygate demo --gate
observability-readiness``) after the scenario, while the system still runs; each test
becomes a check in the same report. Plain pytest works on a finished run too:
``pytest gates/suites/test_example.py --readygate-run out/demo/report.json`` (tests
that need live backends then skip unless ``--readygate-config`` names them).
"""

from __future__ import annotations

from typing import Any

import pytest

from gates.backends.registry import ContextBackends
from gates.pytest_plugin import AsyncRunner


def _between(probes: list[dict[str, Any]], start: float, end: float | None, *,
             whole: bool = False) -> list[dict[str, Any]]:
    """Runs started in [start, end); with ``whole`` only those that also finished by ``end``
    (a run that started in the baseline may meet the fault in its last step)."""
    return [p for p in probes if p["started_at"] >= start and (
        end is None or (p["started_at"] + p["duration_s"] <= end if whole
                        else p["started_at"] < end))]


# p95 a healthy run must stay under, by journey kind: a browser journey launches Chromium
P95_LIMIT_S = {"http": 1.0, "browser": 10.0}


def _fault_window(timeline: list[dict[str, Any]]) -> tuple[float, float]:
    injected = [e["at"] for e in timeline if e["type"] == "FaultInjected"]
    removed = [e["at"] for e in timeline if e["type"] == "FaultRemoved"]
    if not injected or not removed:
        pytest.skip("the run injected no fault")
    return injected[0], removed[0]


def test_every_journey_is_healthy_in_the_baseline(
        probe_results: list[dict[str, Any]],
        phases: dict[str, tuple[float, float | None]]) -> None:
    """Before the fault every probe succeeds: otherwise the fault's signals prove nothing."""
    if "baseline" not in phases:
        pytest.skip("the run has no baseline phase")
    runs = _between(probe_results, *phases["baseline"], whole=True)
    assert runs, "no probe ran during the baseline"
    failed = [f"{p['journey']}: {p['error']}" for p in runs if not p["success"]]
    assert not failed, f"{len(failed)} of {len(runs)} baseline probes failed: {failed[:3]}"


def test_the_fault_reached_users_and_went_away(
        probe_results: list[dict[str, Any]], timeline: list[dict[str, Any]]) -> None:
    """The injected fault made uploads fail (the chaos was real), and they recovered."""
    start, end = _fault_window(timeline)
    during = _between([p for p in probe_results if p["journey"] == "upload"], start, end)
    assert any(not p["success"] for p in during), \
        f"all {len(during)} upload probes during the fault succeeded: the fault missed"
    after = _between([p for p in probe_results if p["journey"] == "upload"], end + 1.0, None)
    assert after and after[-1]["success"], "the last upload probe after the fault failed"


@pytest.mark.severity("warning")
def test_probe_p95_outside_the_fault_is_under_one_second(
        probe_results: list[dict[str, Any]], timeline: list[dict[str, Any]]) -> None:
    """Healthy probes are fast: p95 of every HTTP journey outside the fault window < 1 s
    (a browser journey's: < 10 s)."""
    injected = [e["at"] for e in timeline if e["type"] == "FaultInjected"]
    removed = [e["at"] for e in timeline if e["type"] == "FaultRemoved"]
    start = injected[0] if injected else float("inf")
    end = removed[0] if removed else float("inf")
    slow: dict[str, float] = {}
    for journey in sorted({p["journey"] for p in probe_results}):
        runs = [p for p in probe_results if p["journey"] == journey
                and (p["started_at"] + p["duration_s"] < start or p["started_at"] >= end)]
        durations = sorted(p["duration_s"] for p in runs)
        if durations:
            p95 = durations[max(0, round(0.95 * len(durations)) - 1)]
            if p95 >= P95_LIMIT_S.get(str(runs[0].get("kind") or "http"), 1.0):
                slow[journey] = p95
    assert not slow, f"p95 over 1s: {slow}"


def test_prometheus_scrapes_every_target_after_recovery(
        backends: ContextBackends, run_async: AsyncRunner) -> None:
    """After recovery every scrape target is up (Prometheus sees the whole system)."""
    if backends.metrics is None:
        pytest.skip("the run has no metrics backend")
    samples = run_async(backends.metrics.query("up"))
    assert samples, "Prometheus has no 'up' series: it scrapes nothing"
    down = [s.labels.get("job", "?") for s in samples if s.value != 1.0]
    assert not down, f"targets down after recovery: {down}"
