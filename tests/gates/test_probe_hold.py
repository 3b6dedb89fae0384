"""A `probe` check holds its journey through the phase's observation window: succeeding
early and dying later in a healthy baseline is a failure, not a pass settled early."""

from __future__ import annotations

import asyncio
import time

from gates.checks import judge
from gates.context import Anchors, CheckContext
from reports.model import CheckResult
from tests.gates.conftest import CHECK, make_probe

PHASE = "baseline"


def _run(check: dict[str, object], *, window_s: float | None,
         fail_after_s: float | None, fail_until_s: float = 0.0) -> tuple[CheckResult, float]:
    """Judge ``check`` while a scheduler records a health run every 0.05 s; until
    ``fail_until_s`` and from ``fail_after_s`` into the phase (if given) the runs fail."""
    async def go() -> tuple[CheckResult, float]:
        start = time.time()
        anchors = Anchors(phase_start={PHASE: start})
        if window_s is not None:
            anchors.phase_window_end[PHASE] = start + window_s
        ctx = CheckContext(prometheus=None, sink=None, anchors=anchors, probe_results=[])

        async def scheduler() -> None:
            while True:
                at = time.time()
                ok = (fail_after_s is None or at - start < fail_after_s) and \
                    at - start >= fail_until_s
                ctx.probe_results.append(make_probe("health", ok=ok, at=at))
                await asyncio.sleep(0.05)

        task = asyncio.create_task(scheduler())
        t0 = time.monotonic()
        try:
            result = await judge(CHECK.validate_python(check), ctx, PHASE)
        finally:
            task.cancel()
        return result, time.monotonic() - t0
    return asyncio.run(go())


PROBE = {"signal": "probe", "phase": PHASE, "journey": "health", "deadline_s": 2}


def test_a_journey_that_dies_after_its_streak_fails_the_check() -> None:
    r, _ = _run(PROBE, window_s=1.0, fail_after_s=0.5)
    assert r.status == "fail", r.message
    assert "then failed" in r.message and "into the baseline phase" in r.message
    assert "health failed: 502" in r.message
    assert r.evidence["failed_trace_id"]


def test_a_journey_that_keeps_succeeding_passes_after_the_window() -> None:
    r, took = _run(PROBE, window_s=0.8, fail_after_s=None)
    assert r.status == "pass", r.message
    assert 0.6 <= took < 2.0  # it watched the window, and no longer
    assert "held_until" in r.evidence


def test_failures_before_the_streak_then_a_held_recovery_pass() -> None:
    # the phase starts unhealthy (a service still warming up), then holds healthy
    r, took = _run(PROBE, window_s=0.9, fail_after_s=None, fail_until_s=0.3)
    assert r.status == "pass", r.message
    assert 0.7 <= took < 2.0
    assert "held_until" in r.evidence


def test_a_failure_after_the_window_is_not_this_phases_business() -> None:
    r, _ = _run(PROBE, window_s=0.5, fail_after_s=1.0)
    assert r.status == "pass", r.message


def test_hold_false_settles_at_the_streak_as_before() -> None:
    r, took = _run({**PROBE, "hold": False}, window_s=1.5, fail_after_s=0.5)
    assert r.status == "pass" and took < 1.0, r.message


def test_without_a_known_window_it_settles_at_the_streak() -> None:
    r, took = _run(PROBE, window_s=None, fail_after_s=0.5)
    assert r.status == "pass" and took < 1.0, r.message


def test_never_succeeding_still_fails_within_the_deadline() -> None:
    r, _ = _run({**PROBE, "deadline_s": 0.4}, window_s=1.0, fail_after_s=0.0)
    assert r.status == "fail" and "not succeeding within" in r.message
