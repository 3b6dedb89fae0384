"""Checks that follow a journey's probe wait for its first run beyond their deadline only by
the context's ``first_probe_wait_s`` (live runs: readygate.runner.FIRST_PROBE_WAIT_S)."""

from __future__ import annotations

import asyncio
import time

from gates.checks.common import Judge, probe_for
from gates.config import Check
from gates.context import Anchors, CheckContext
from readygate.runner import FIRST_PROBE_WAIT_S
from tests.gates.conftest import CHECK, make_probe

PHASE = "fault"


def _ctx(wait_s: float, start: float) -> CheckContext:
    return CheckContext(prometheus=None, sink=None, anchors=Anchors(phase_start={PHASE: start}),
                        probe_results=[], first_probe_wait_s=wait_s)


def _follow(wait_s: float, *, arrives_after_s: float | None, deadline_s: float = 0.3,
            failed: bool = False, ok: bool = True) -> tuple[object, str | None, float]:
    """probe_for with a probe recorded ``arrives_after_s`` seconds in (never when None)."""
    check: Check = CHECK.validate_python({"signal": "trace", "journey": "upload",
                                          "deadline_s": deadline_s})

    async def go() -> tuple[object, str | None, float]:
        start = time.time()
        ctx = _ctx(wait_s, start - 0.01)

        async def record() -> None:
            assert arrives_after_s is not None
            await asyncio.sleep(arrives_after_s)
            ctx.probe_results.append(make_probe("upload", ok=ok, at=time.time()))

        task = asyncio.create_task(record()) if arrives_after_s is not None else None
        t0 = time.monotonic()
        found, miss = await probe_for("upload", deadline_s, ctx, Judge(check, ctx, PHASE),
                                      failed=failed)
        took = time.monotonic() - t0
        if task is not None:
            task.cancel()
        return found, miss, took
    return asyncio.run(go())


def test_live_runs_wait_for_a_journeys_first_probe() -> None:
    assert FIRST_PROBE_WAIT_S >= 10.0  # a browser journey's first run launches Chromium


def test_a_probe_later_than_the_deadline_is_followed_within_the_extra_wait() -> None:
    found, miss, _ = _follow(1.5, arrives_after_s=0.8)
    assert miss is None and found is not None


def test_without_the_extra_wait_the_same_late_probe_is_missed() -> None:
    found, miss, took = _follow(0.0, arrives_after_s=0.8)
    assert found is None
    assert miss == "no successful upload probe to follow: no upload probe has run in fault"
    assert took < 0.8


def test_no_probe_at_all_fails_once_deadline_and_wait_are_spent() -> None:
    found, miss, took = _follow(0.4, arrives_after_s=None)
    assert found is None and miss is not None and "no upload probe has run" in miss
    assert 0.6 <= took < 2.0  # deadline 0.3 s + wait 0.4 s, never forever


def test_only_failing_probes_are_named_when_a_successful_one_is_wanted() -> None:
    found, miss, _ = _follow(0.2, arrives_after_s=0.05, ok=False)
    assert found is None and miss is not None and "upload probes failing" in miss


def test_a_probe_from_before_the_phase_is_not_followed() -> None:
    check: Check = CHECK.validate_python({"signal": "trace", "journey": "upload",
                                          "deadline_s": 0.2})

    async def go() -> tuple[object, str | None]:
        now = time.time()
        ctx = _ctx(0.2, now)
        ctx.probe_results.append(make_probe("upload", at=now - 5.0))
        return await probe_for("upload", 0.2, ctx, Judge(check, ctx, PHASE))
    found, miss = asyncio.run(go())
    assert found is None and miss is not None and "no upload probe has run" in miss
