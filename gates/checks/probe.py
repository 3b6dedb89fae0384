"""Probe and health checks: a journey succeeds N times in a row; health endpoints tell the truth."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from core.http import REQUEST_ERRORS
from core.waiting import Seen, eventually
from gates.checks.common import GRACE_S, Judge
from gates.config import HealthCheck, ProbeCheck
from gates.context import CheckContext
from probes.model import ProbeResult
from reports.model import CheckResult

# A health endpoint that takes longer than this to answer is as good as down.
HEALTH_TIMEOUT_S = 3.0


async def probe_check(check: ProbeCheck, ctx: CheckContext, j: Judge) -> CheckResult:
    """``consecutive`` successes in a row, the first within the deadline."""
    anchor = j.anchor_time()
    if anchor is None:
        return j.result("skipped", f"anchor {check.anchor} did not happen")

    async def observe() -> Seen[list[ProbeResult]]:
        runs = ctx.probes_since(check.journey, anchor)
        streak: list[ProbeResult] = []
        for run in runs:
            streak = [*streak, run] if run.success else []
            if len(streak) >= check.consecutive:
                return Seen(streak)
        if runs and not runs[-1].success:
            return Seen(miss=f"last {check.jname} probe failed: {runs[-1].error}")
        return Seen(miss=f"{len(streak)} of {check.consecutive} consecutive successes so far")

    out = await eventually(observe, timeout=j.remaining(anchor), interval=0.05)
    evidence: dict[str, Any] = {"journey": check.journey, "consecutive": check.consecutive}
    if out.found is not None:
        streak = out.found
        latency = streak[0].started_at - anchor
        evidence["trace_ids"] = [p.trace_id for p in streak]
        window_end = ctx.anchors.phase_window_end.get(j.phase)
        if check.hold and window_end is not None:
            broke = await _first_failure(check, ctx, streak[0].started_at, window_end)
            if broke is not None:
                at = broke.started_at - (ctx.anchors.phase_start.get(j.phase) or anchor)
                evidence.update(failed_trace_id=broke.trace_id, window_end=window_end)
                return j.result("fail", f"{check.jname} probes succeeded {latency:.1f}s after "
                                f"{check.anchor}, then failed {at:.1f}s into the {j.phase} "
                                f"phase: {broke.error}", latency=latency, evidence=evidence)
            evidence["held_until"] = window_end
        return j.result("pass", f"{check.jname} probes succeeding again {latency:.1f}s after "
                        f"{check.anchor}", latency=latency, evidence=evidence)
    evidence["nearest_miss"] = out.last_miss
    return j.result("fail", f"{check.jname} probes not succeeding within "
                    f"{check.deadline_s:.0f}s of {check.anchor}: {out.last_miss}",
                    evidence=evidence)


async def _first_failure(check: ProbeCheck, ctx: CheckContext, since: float,
                         until: float) -> ProbeResult | None:
    """The first failed run of the journey started in [since, until), watching until then."""
    while True:
        failed = [r for r in ctx.probes_since(check.journey, since)
                  if not r.success and r.started_at < until]
        if failed:
            return failed[0]
        if time.time() >= until:
            return None
        await asyncio.sleep(min(0.1, max(until - time.time(), 0.0)))


def _health_urls(check: HealthCheck, ctx: CheckContext) -> list[str] | None:
    base = ctx.services.get(check.service) if check.service else ctx.probe_base_url
    return None if base is None else [base.rstrip("/") + path for path in check.paths]


async def _status(client: Any, url: str) -> tuple[int | None, str]:
    """The endpoint's status and the start of its body; ``None`` and why for no answer."""
    try:
        resp = await client.get(url, timeout=HEALTH_TIMEOUT_S)
    except REQUEST_ERRORS as exc:
        return None, type(exc).__name__
    return resp.status_code, resp.text[:80].strip()


async def look_before_fault(checks: list[HealthCheck], ctx: CheckContext) -> None:
    """Record, just before the fault, how the endpoints of ``expect: down`` health checks
    anchored on it answer: one already down then proves nothing about the fault."""
    urls = sorted({url for check in checks if check.expect == "down"
                   and check.anchor == "fault_start" for url in _health_urls(check, ctx) or []})
    if not urls or ctx.http is None:
        return
    answers = await asyncio.gather(*(_status(ctx.http, url) for url in urls))
    for url, (status, _) in zip(urls, answers, strict=True):
        ctx.health_before_fault[url] = status


async def health_check(check: HealthCheck, ctx: CheckContext, j: Judge) -> CheckResult:
    """Every health path of the service answers 5xx (``down``) or 2xx (``up``) in time.

    ``down`` under a fault proves the health endpoints look at the dependency: a readiness
    endpoint that always says 200 keeps a broken pod in the load balancer.
    """
    anchor = j.anchor_time()
    if anchor is None:
        return j.result("skipped", f"anchor {check.anchor} did not happen")
    found = _health_urls(check, ctx)
    if found is None:
        where = f"service {check.service!r} is not in target.services" if check.service \
            else "no service named: set the check's service or probes.service"
        return j.result("error", where)
    if ctx.http is None:
        return j.result("error", "no HTTP client to call the health endpoints with")
    client = ctx.http
    wanted = "5xx" if check.expect == "down" else "2xx"

    def as_expected(status: int) -> bool:
        return status >= 500 if check.expect == "down" else 200 <= status < 300

    urls = dict(zip(check.paths, found, strict=True))
    if check.expect == "down" and check.anchor == "fault_start":
        before = [(path, ctx.health_before_fault[url]) for path, url in urls.items()
                  if url in ctx.health_before_fault]
        down = [(path, status) for path, status in before if status is None or status >= 500]
        if down:
            shown = ", ".join(f"{path} {status if status is not None else 'no answer'}"
                              for path, status in down)
            return j.result("fail", f"{check.sname} was already down before fault_start "
                            f"({shown}): a health endpoint down before the fault proves "
                            "nothing about it", evidence={
                                "service": check.service, "paths": check.paths,
                                "expect": check.expect, "before_fault": dict(before)})

    async def status_of(path: str) -> tuple[str, int | None, str]:
        # No answer at all is "down" too (a dead process), but never "up".
        status, body = await _status(client, urls[path])
        return path, status, body

    async def observe() -> Seen[dict[str, int | None]]:
        answers = await asyncio.gather(*(status_of(p) for p in check.paths))
        wrong = [(p, s, body) for p, s, body in answers
                 if not (as_expected(s) if s is not None else check.expect == "down")]
        if not wrong:
            return Seen({p: s for p, s, _ in answers})
        return Seen(miss="; ".join(
            f"{check.sname} {p} answers {s if s is not None else body}"
            + (f" {body!r}" if s is not None and body else "") for p, s, body in wrong))

    out = await eventually(observe, timeout=j.remaining(anchor) + GRACE_S,
                           interval=max(ctx.poll_interval_s, 0.1))
    evidence: dict[str, Any] = {"service": check.service, "paths": check.paths,
                                "expect": check.expect}
    if out.found is not None:
        latency = (out.observed_at or time.time()) - anchor
        evidence["statuses"] = out.found
        shown = ", ".join(f"{p} {s if s is not None else 'no answer'}"
                          for p, s in out.found.items())
        if latency > check.deadline_s:
            return j.result("fail", f"{check.sname} health reported {check.expect} late: "
                            f"{latency:.1f}s after {check.anchor}", latency=latency,
                            evidence=evidence)
        return j.result("pass", f"{check.sname} reports {check.expect} {latency:.1f}s after "
                        f"{check.anchor}: {shown}", latency=latency, evidence=evidence)
    evidence["nearest_miss"] = out.last_miss
    why = " while the fault holds: the health check ignores the broken dependency" \
        if check.expect == "down" else ""
    return j.result("fail", f"{out.last_miss or 'no answer'} (expected {wanted} within "
                    f"{check.deadline_s:g}s of {check.anchor}){why}", evidence=evidence)
