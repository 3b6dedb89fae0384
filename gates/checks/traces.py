"""Trace checks: complete traces, span selectors, error spans, no sensitive attributes."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from core import redact
from core.waiting import Seen, eventually
from gates.backends.types import Span, TracesBackend
from gates.checks.common import GRACE_S, Judge, mask, probe_for
from gates.config import SpanSelector, TraceAttributesCheck, TraceCheck, TraceErrorSpanCheck
from gates.context import CheckContext
from reports.model import CheckResult


def matches(span: Span, sel: SpanSelector) -> bool:
    """Whether the span matches every given part of the selector (globs allowed)."""
    if sel.service is not None and span.service != sel.service:
        return False
    if sel.name is not None and not fnmatch.fnmatchcase(span.name, sel.name):
        return False
    return all(k in span.attributes and fnmatch.fnmatchcase(str(span.attributes[k]), v)
               for k, v in sel.attributes.items())


def same_trace(a: str, b: str) -> bool:
    """Trace ids as the same number (Jaeger's v1 API drops a high half's leading zeros)."""
    return a.lower().lstrip("0") == b.lower().lstrip("0")


async def own_spans(traces: TracesBackend, trace_id: str) -> tuple[list[Span], str]:
    """The spans the store answers for ``trace_id`` that belong to it, and words on any
    that do not. A store that answers another trace (a caching proxy, a search that ignores
    the id) must not lend the probe that trace's spans, nor a clean bill for them."""
    spans = await traces.trace(trace_id)
    own = [s for s in spans if same_trace(s.trace_id, trace_id)]
    foreign = [s for s in spans if not same_trace(s.trace_id, trace_id)]
    if not foreign:
        return own, ""
    return own, (f" (the store answered {len(foreign)} span(s) of other traces, e.g. "
                 f"{foreign[0].trace_id}; ignored)")


def _evidence(traces: TracesBackend, trace_id: str, ctx: CheckContext) -> dict[str, Any]:
    evidence: dict[str, Any] = {"trace_id": trace_id, "backend": traces.kind}
    link = traces.link(trace_id)
    if "jaeger" in ctx.links:
        link = f"{ctx.links['jaeger']}/trace/{trace_id}"
    if link:
        evidence["link"] = link
    return evidence


async def trace_check(check: TraceCheck, ctx: CheckContext, j: Judge) -> CheckResult:
    """The probe's trace spans every listed service, matches every selector, and is stable."""
    traces = ctx.traces
    if traces is None:
        return j.result("skipped", "no trace backend configured")
    probe, why = await probe_for(check.journey, check.deadline_s, ctx, j)
    if probe is None:
        return j.result("error", str(why))
    want = set(check.services)
    last_count = -1

    async def observe() -> Seen[list[Span]]:
        nonlocal last_count
        spans, foreign = await own_spans(traces, probe.trace_id)
        services = {s.service for s in spans}
        count = len(spans)
        stable = count == last_count
        last_count = count
        if not spans:
            return Seen(miss=f"no spans with trace id {probe.trace_id}{foreign}")
        missing = sorted(want - services)
        if missing:
            return Seen(miss=f"trace {probe.trace_id} has {count} spans from "
                        f"{', '.join(sorted(services))} only; missing {', '.join(missing)}")
        unmatched = [sel.describe() for sel in check.spans
                     if not any(matches(s, sel) for s in spans)]
        if unmatched:  # named even if the trace may still grow: the deadline can end it
            names = ", ".join(sorted({s.describe() for s in spans})[:8])
            growing = "" if stable else f" (yet: trace {probe.trace_id} still growing)"
            return Seen(miss=f"no span matches {', '.join(unmatched)}{growing}; spans: {names}")
        if not stable:  # complete = count unchanged over two polls
            return Seen(miss=f"trace {probe.trace_id} still growing ({count} spans)")
        return Seen(spans)

    out = await eventually(observe, timeout=j.remaining(probe.started_at) + GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence = _evidence(traces, probe.trace_id, ctx)
    evidence.update(journey=check.journey, services_wanted=sorted(want))

    def passed(spans: list[Span], latency: float) -> str:
        evidence.update(spans=len(spans), services=sorted({s.service for s in spans}))
        sel = f", matching {len(check.spans)} selector(s)" if check.spans else ""
        return (f"trace {probe.trace_id[:12]}… spans {', '.join(sorted(want))} "
                f"({len(spans)} spans{sel}) {latency:.1f}s after the probe")

    result = j.settle(out, anchor=probe.started_at, evidence=evidence, what="complete trace",
                      passed=passed)
    if result.status == "fail" and out.found is None and out.error is None:
        return j.result("fail", f"{out.last_miss} ({check.deadline_s:.0f}s after the probe)",
                        evidence=evidence)
    return result


async def trace_error_span_check(check: TraceErrorSpanCheck, ctx: CheckContext,
                                 j: Judge) -> CheckResult:
    """The failed probe's trace holds an error span matching the selector."""
    traces = ctx.traces
    if traces is None:
        return j.result("skipped", "no trace backend configured")
    probe, why = await probe_for(check.journey, check.deadline_s, ctx, j, failed=True)
    if probe is None:
        return j.result("error", str(why))

    async def observe() -> Seen[Span]:
        spans, foreign = await own_spans(traces, probe.trace_id)
        if not spans:
            return Seen(miss=f"no spans with trace id {probe.trace_id}{foreign}")
        selected = [s for s in spans if matches(s, check.span)]
        errors = [s for s in selected if s.error]
        if errors:
            return Seen(errors[0])
        if selected:
            return Seen(miss=f"{len(selected)} span(s) match {check.span.describe()} but none "
                        f"has error status: {', '.join(s.describe() for s in selected[:4])}")
        others = [s.describe() for s in spans if s.error]
        return Seen(miss=f"no span matches {check.span.describe()}"
                    + (f"; error spans instead: {', '.join(others[:4])}" if others else ""))

    out = await eventually(observe, timeout=j.remaining(probe.started_at) + GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence = _evidence(traces, probe.trace_id, ctx)
    evidence["probe_error"] = probe.error

    def passed(span: Span, latency: float) -> str:
        evidence["span"] = span.describe()
        return (f"failed {check.jname} trace holds error span {span.describe()}, "
                f"{latency:.1f}s after the probe")

    return j.settle(out, anchor=probe.started_at, evidence=evidence,
                    what=f"error {check.span.describe()}", passed=passed)


async def trace_attributes_check(check: TraceAttributesCheck, ctx: CheckContext,
                                 j: Judge) -> CheckResult:
    """No span carries a forbidden attribute key or one of the journey's secret values."""
    traces = ctx.traces
    if traces is None:
        return j.result("skipped", "no trace backend configured")
    probe, why = await probe_for(check.journey, check.deadline_s, ctx, j)
    if probe is None:
        return j.result("error", str(why))
    last_count = -1
    forbidden = [f.lower() for f in check.forbidden]
    secrets = [s for s in ctx.secrets if len(s) >= 4]

    async def observe() -> Seen[list[Span]]:
        nonlocal last_count
        spans, foreign = await own_spans(traces, probe.trace_id)
        stable = len(spans) == last_count
        last_count = len(spans)
        if not spans:  # no trace: nothing proves the attributes are clean
            return Seen(miss=f"no spans with trace id {probe.trace_id}{foreign}")
        if not stable:
            return Seen(miss=f"trace {probe.trace_id} still growing ({len(spans)} spans)")
        return Seen(spans)

    out = await eventually(observe, timeout=j.remaining(probe.started_at) + GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence = _evidence(traces, probe.trace_id, ctx)
    if out.found is None:
        return j.settle(out, anchor=probe.started_at, evidence=evidence, what="trace to inspect",
                        passed=lambda _, lat: "")
    spans = out.found
    problems: list[str] = []
    # every encoding a system may write a secret in (URL, base64, JSON-escaped, hex ...)
    canary = redact.canary(tuple(sorted(set(secrets))))
    for span in spans:
        leaked = False
        for key, value in span.attributes.items():
            if any(f in key.lower() for f in forbidden):
                problems.append(f"{span.describe()} carries attribute {key!r}")
            text = json.dumps(value, default=str) if not isinstance(value, str) else value
            hits = canary.hits(text)
            if hits:
                leaked = True
                problems.append(f"{span.describe()} attribute {key!r} holds a secret value "
                                f"({hits[0].encoding})")
        if not leaked and canary and (hits := canary.hits(redact.joined(span.attributes))):
            # split over two attributes: found only when their values are read as one
            problems.append(f"{span.describe()} attributes hold a secret value split "
                            f"across them ({hits[0].encoding})")
    evidence["spans"] = len(spans)
    if problems:
        evidence["problems"] = [mask(p, secrets) for p in problems]
        return j.result("fail", "sensitive data in spans: " + "; ".join(problems[:5]),
                        evidence=evidence)
    return j.result("pass", f"{len(spans)} span(s) of the {check.jname} trace carry no "
                    "sensitive attribute or secret", evidence=evidence)
