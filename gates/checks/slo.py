"""The ``slo`` check: a journey's probe success ratio and p95 latency over a window."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

from core.waiting import Seen, eventually
from gates.checks.common import Judge
from gates.config import SloCheck
from gates.context import CheckContext
from probes.model import ProbeResult
from reports.model import CheckResult, Status


def p95(durations_s: list[float]) -> float:
    """The nearest-rank 95th percentile (no interpolation: a value that really occurred)."""
    ordered = sorted(durations_s)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def judge_window(check: SloCheck,
                 runs: list[ProbeResult]) -> tuple[Status, str, dict[str, Any]]:
    """Status, message and evidence for the probe runs of one window."""
    ok = sum(1 for r in runs if r.success)
    evidence: dict[str, Any] = {"journey": check.journey, "window_s": check.window_s,
                                "runs": len(runs), "successes": ok,
                                "min_success_ratio": check.min_success_ratio,
                                "max_p95_ms": check.max_p95_ms}
    if len(runs) < check.min_runs:
        return "fail", (f"only {len(runs)} {check.jname} probe run(s) in the {check.window_s:g}s "
                        f"window (need {check.min_runs}): no data is not a pass"), evidence
    ratio = ok / len(runs)
    latency_ms = p95([r.duration_s for r in runs]) * 1000
    evidence.update(success_ratio=round(ratio, 4), p95_ms=round(latency_ms, 1))
    failed = [r for r in runs if not r.success]
    if failed:
        evidence["first_failure"] = failed[0].error
    ratio_bad = ratio < check.min_success_ratio
    p95_bad = check.max_p95_ms is not None and latency_ms > check.max_p95_ms
    ratio_text = f"{ratio:.2%} of {len(runs)} probes succeeded"
    p95_text = f"p95 {latency_ms:.0f}ms"
    if ratio_bad or p95_bad:  # each figure once: the targets missed, then those met
        problems = []
        if ratio_bad:
            problems.append(f"success ratio {ratio:.2%} < {check.min_success_ratio:.2%} "
                            f"({len(failed)} of {len(runs)} failed; first: {failed[0].error})")
        if p95_bad:
            problems.append(f"p95 {latency_ms:.0f}ms > {check.max_p95_ms:g}ms")
        held = [text for text, bad in ((ratio_text, ratio_bad), (p95_text, p95_bad)) if not bad]
        return "fail", (f"{check.jname}: {'; '.join(problems)} over {check.window_s:g}s"
                        + (f" ({', '.join(held)})" if held else "")), evidence
    return "pass", f"{check.jname}: {ratio_text}, {p95_text} over {check.window_s:g}s", evidence


async def slo_check(check: SloCheck, ctx: CheckContext, j: Judge) -> CheckResult:
    """Watch the window from the anchor, then judge every probe of the journey in it."""
    anchor = j.anchor_time()
    if anchor is None:
        return j.result("skipped", f"anchor {check.anchor} did not happen")
    end = anchor + check.window_s

    async def window_over() -> Seen[bool]:
        # The window is the observation itself: judged once it has passed, never earlier.
        return Seen(True) if time.time() >= end else Seen(miss="window still open")

    await eventually(window_over, timeout=end - time.time() + 1.0,
                     interval=max(ctx.poll_interval_s, 0.1))
    runs = [p for p in ctx.probes_since(check.journey, anchor) if p.started_at < end]
    status, message, evidence = judge_window(check, runs)
    result = j.result(status, message, evidence=evidence)
    return dataclasses.replace(result, deadline_s=check.window_s)
