"""Error checks: an error event tied to a probe (with its release and environment tags), and PII
scrubbed from it."""

from __future__ import annotations

from typing import Any

from core import redact
from core.waiting import Seen, eventually
from gates.backends.types import ErrorEvent, ErrorsBackend, dotted
from gates.checks.common import (
    GRACE_S,
    Judge,
    carries,
    failed_request_ids,
    mask,
    probe_for,
)
from gates.config import ErrorEventCheck, PiiScrubbedCheck
from gates.context import CheckContext
from probes.model import ProbeResult
from reports.model import CheckResult

_SCRUBBED = {"[filtered]", "[redacted]", "***", "", "[removed]"}
BEFORE_PROBE_ALLOWANCE_S = 2.0


async def _events(errors: ErrorsBackend, *, trace_id: str | None = None,
                  request_id: str | None = None) -> list[ErrorEvent]:
    """The backend's events for one id, each shown to carry it: a backend that ignored the
    filter must not lend a probe another request's error."""
    events = await errors.events(trace_id=trace_id, request_id=request_id)
    return [e for e in events if carries(e.trace_id, e.request_id, e.text,
                                         want_trace=trace_id, want_request=request_id)]


async def _events_of(errors: ErrorsBackend, probe: ProbeResult, by: str) -> list[ErrorEvent]:
    if by == "trace_id":
        return await _events(errors, trace_id=probe.trace_id)
    out: list[ErrorEvent] = []
    for rid in failed_request_ids(probe):
        out += await _events(errors, request_id=rid)
    return out


def _link(errors: ErrorsBackend, event: ErrorEvent) -> str | None:
    link = getattr(errors, "link", None)
    return link(event) if callable(link) else None


def event_tag(event: ErrorEvent, name: str) -> str | None:
    """A tag of the event wherever its source keeps it: a top-level field (Sentry's
    ``release``/``environment``), its ``tags`` (a mapping, ``[key, value]`` pairs or Sentry
    API ``{key, value}`` items) or its ``properties`` (PostHog)."""
    raw = event.raw
    value = raw.get(name)
    if isinstance(value, dict):  # the Sentry API's release object
        value = value.get("version") or value.get("shortVersion")
    found = value if isinstance(value, str | int | float) else None
    if found in (None, ""):
        tags = raw.get("tags")
        if isinstance(tags, dict):
            found = tags.get(name)
        elif isinstance(tags, list):
            for tag in tags:
                if isinstance(tag, list | tuple) and len(tag) == 2 and tag[0] == name:
                    found = tag[1]
                elif isinstance(tag, dict) and tag.get("key") == name:
                    found = tag.get("value")
    if found in (None, "") and isinstance(raw.get("properties"), dict):
        found = raw["properties"].get(name)
    return None if found in (None, "") else str(found)


def tag_problem(check: ErrorEventCheck, event: ErrorEvent) -> str | None:
    """Why the event misses the release/environment tags the check asks for, or None."""
    problems = []
    if check.release and event_tag(event, "release") is None:
        problems.append("no release tag")
    if check.environment is not None:
        env = event_tag(event, "environment")
        if env is None:
            problems.append("no environment tag")
        elif env != check.environment:
            problems.append(f"environment {env!r}, not {check.environment!r}")
    if not problems:
        return None
    return f"error event {event.event_id[:12]} carries " + " and ".join(problems)


async def error_event_check(check: ErrorEventCheck, ctx: CheckContext, j: Judge) -> CheckResult:
    """An error event carrying the probe's trace (or request) id arrives in time, with the
    release and environment tags the check asks for."""
    errors = ctx.errors
    if errors is None:
        return j.result("skipped", "no errors backend configured")
    probe, why = await probe_for(check.journey, check.deadline_s, ctx, j,
                                 failed=check.probe == "failed")
    if probe is None:
        return j.result("error", str(why))
    # Sentry's dates have 1 s resolution and its clock is not ours: an event stamped up to
    # 2 s before the probe may still be its; earlier ones are not.
    earliest = probe.started_at - BEFORE_PROBE_ALLOWANCE_S

    async def observe() -> Seen[ErrorEvent]:
        tied = await _events_of(errors, probe, check.by)
        fresh = [e for e in tied if e.received_at is None or e.received_at >= earliest]
        tagged = [e for e in fresh if tag_problem(check, e) is None]
        if tagged:
            return Seen(tagged[0])
        if fresh:
            return Seen(miss=str(tag_problem(check, fresh[0])))
        if tied:
            return Seen(miss=f"{len(tied)} error event(s) carrying its "
                        f"{check.by.replace('_', ' ')} arrived before the probe was sent")
        others = await errors.events(since=probe.started_at)
        if others:
            return Seen(miss=f"{len(others)} error event(s) since the probe, none carries its "
                        f"{check.by.replace('_', ' ')} (e.g. {others[0].message[:100]!r})")
        return Seen(miss="no error event since the probe")

    out = await eventually(observe, timeout=j.remaining(probe.started_at) + GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence: dict[str, Any] = {"trace_id": probe.trace_id, "by": check.by,
                                "backend": errors.kind, "probe_error": probe.error}
    what = "failed" if check.probe == "failed" else "probed"

    def passed(event: ErrorEvent, latency: float) -> str:
        evidence.update(event_id=event.event_id, message=event.message[:200])
        tags = {name: event_tag(event, name) for name in ("release", "environment")}
        evidence.update({k: v for k, v in tags.items() if v is not None})
        link = _link(errors, event)
        if link:
            evidence["link"] = link
        shown = ", ".join(f"{k} {v}" for k, v in tags.items()
                          if v is not None and ((k == "release" and check.release)
                                                or (k == "environment" and check.environment)))
        return (f"error event {event.event_id[:12]} ({event.message[:60]}) tied to the {what} "
                f"{check.jname}, {latency:.1f}s after the probe" + (f"; {shown}" if shown else ""))

    return j.settle(out, anchor=probe.started_at, evidence=evidence, what="error event",
                    passed=passed, latency_of=lambda e: max(0.0, (e.received_at or 0)
                                                            - probe.started_at)
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
        events = await _events(errors, trace_id=probe.trace_id)
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
    canary = redact.canary(tuple(sorted(set(secrets))))
    problems: list[str] = []
    for event in out.found:
        for path in check.fields:
            value = dotted(event.raw, path)
            if value is not None and str(value).strip().lower() not in _SCRUBBED:
                problems.append(f"event {event.event_id[:12]} carries {path}")
        # every encoding (URL, base64, JSON-escaped, hex) and split across fields, as the
        # log scan finds them: json.dumps alone would escape a secret with a quote in it
        hits = canary.hits(redact.joined(event.raw)) if canary else []
        if hits:
            problems.append(f"event {event.event_id[:12]} contains a secret value "
                            f"({hits[0].encoding})")
    evidence["events"] = [e.event_id for e in out.found]
    if problems:
        evidence["problems"] = problems
        return j.result("fail", "PII not scrubbed: " + "; ".join(problems[:5]),
                        evidence=evidence)
    return j.result("pass", f"{len(out.found)} error event(s) of the failed {check.jname} "
                    f"carry none of {', '.join(check.fields)}"
                    + (" and no secret" if secrets else ""), evidence=evidence)


__all__ = ["error_event_check", "mask", "pii_scrubbed_check"]
