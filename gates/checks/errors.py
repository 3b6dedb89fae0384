"""Error checks: an error event tied to the failed probe, and PII scrubbed from it."""

from __future__ import annotations

import json
from typing import Any

from core.waiting import Seen, eventually
from gates.backends.types import ErrorEvent, ErrorsBackend, dotted
from gates.checks.common import GRACE_S, Judge, failed_request_ids, mask, probe_for
from gates.config import ErrorEventCheck, PiiScrubbedCheck
from gates.context import CheckContext
from probes.model import ProbeResult
from reports.model import CheckResult

_SCRUBBED = {"[filtered]", "[redacted]", "***", "", "[removed]"}


async def _events_of(errors: ErrorsBackend, probe: ProbeResult, by: str) -> list[ErrorEvent]:
    if by == "trace_id":
        return await errors.events(trace_id=probe.trace_id)
    out: list[ErrorEvent] = []
    for rid in failed_request_ids(probe):
        out += await errors.events(request_id=rid)
    return out


def _link(errors: ErrorsBackend, event: ErrorEvent) -> str | None:
    link = getattr(errors, "link", None)
    return link(event) if callable(link) else None


async def error_event_check(check: ErrorEventCheck, ctx: CheckContext, j: Judge) -> CheckResult:
    """An error event carrying the failed probe's trace (or request) id arrives in time."""
    errors = ctx.errors
    if errors is None:
        return j.result("skipped", "no errors backend configured")
    probe, why = await probe_for(check.journey, check.deadline_s, ctx, j, failed=True)
    if probe is None:
        return j.result("error", str(why))

    async def observe() -> Seen[ErrorEvent]:
        events = await _events_of(errors, probe, check.by)
        if events:
            return Seen(events[0])
        others = await errors.events(since=probe.started_at)
        if others:
            return Seen(miss=f"{len(others)} error event(s) since the probe, none carries its "
                        f"{check.by.replace('_', ' ')} (e.g. {others[0].message[:100]!r})")
        return Seen(miss="no error event since the probe")

    out = await eventually(observe, timeout=j.remaining(probe.started_at) + GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence: dict[str, Any] = {"trace_id": probe.trace_id, "by": check.by,
                                "backend": errors.kind, "probe_error": probe.error}

    def passed(event: ErrorEvent, latency: float) -> str:
        evidence.update(event_id=event.event_id, message=event.message[:200])
        link = _link(errors, event)
        if link:
            evidence["link"] = link
        return (f"error event {event.event_id[:12]} ({event.message[:60]}) tied to the failed "
                f"{check.jname}, {latency:.1f}s after the probe")

    return j.settle(out, anchor=probe.started_at, evidence=evidence, what="error event",
                    passed=passed, latency_of=lambda e: (e.received_at or 0) - probe.started_at
                    if e.received_at else (out.observed_at or 0) - probe.started_at)


async def pii_scrubbed_check(check: PiiScrubbedCheck, ctx: CheckContext,
                             j: Judge) -> CheckResult:
    """The failed probe's error events carry none of the PII fields and no secret."""
    errors = ctx.errors
    if errors is None:
        return j.result("skipped", "no errors backend configured")
    probe, why = await probe_for(check.journey, check.deadline_s, ctx, j, failed=True)
    if probe is None:
        return j.result("error", str(why))

    async def observe() -> Seen[list[ErrorEvent]]:
        events = await errors.events(trace_id=probe.trace_id)
        if events:
            return Seen(events)
        return Seen(miss=f"no error event carries trace id {probe.trace_id}, so there is "
                    "nothing to inspect")

    out = await eventually(observe, timeout=j.remaining(probe.started_at) + GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence: dict[str, Any] = {"trace_id": probe.trace_id, "fields": check.fields,
                                "backend": errors.kind}
    if out.found is None:
        return j.settle(out, anchor=probe.started_at, evidence=evidence,
                        what="error event to inspect", passed=lambda _, lat: "")
    secrets = [s for s in ctx.secrets if len(s) >= 4]
    problems: list[str] = []
    for event in out.found:
        for path in check.fields:
            value = dotted(event.raw, path)
            if value is not None and str(value).strip().lower() not in _SCRUBBED:
                problems.append(f"event {event.event_id[:12]} carries {path}")
        text = json.dumps(event.raw, default=str)
        if any(s in text for s in secrets):
            problems.append(f"event {event.event_id[:12]} contains a secret value")
    evidence["events"] = [e.event_id for e in out.found]
    if problems:
        evidence["problems"] = problems
        return j.result("fail", "PII not scrubbed: " + "; ".join(problems[:5]),
                        evidence=evidence)
    return j.result("pass", f"{len(out.found)} error event(s) of the failed {check.jname} "
                    f"carry none of {', '.join(check.fields)}"
                    + (" and no secret" if secrets else ""), evidence=evidence)


__all__ = ["error_event_check", "mask", "pii_scrubbed_check"]
