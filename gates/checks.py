"""Checks with deadlines: each one looks for a signal and ends pass / fail / error.

An absent signal is a ``fail``; "could not look" (backend down, bad query) is an
``error``; neither is ever a ``pass``. A signal that arrives after its deadline fails as
late, with its arrival time. Every result carries the measured latency from its anchor,
the deadline, the evidence and, on failure, the nearest miss.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gates.backends.prometheus import ActiveAlert
from gates.context import CheckContext
from readygate.config import (
    AlertCheck,
    Check,
    LogsCheck,
    MetricCheck,
    NoAlertCheck,
    NotificationCheck,
    ProbeCheck,
    TraceCheck,
)
from readygate.errors import BackendError
from readygate.waiting import Seen, eventually
from reports.model import CheckResult, Status

# After the deadline, look once more for this long so a signal that arrived just in time is
# not missed by polling granularity; the signal's own timestamp then decides pass or late.
_GRACE_S = 0.3


class _Judge:
    """Builds the result of one check."""

    def __init__(self, check: Check, ctx: CheckContext, phase: str) -> None:
        self.check = check
        self.ctx = ctx
        self.phase = phase

    def anchor_time(self) -> float | None:
        anchors = self.ctx.anchors
        anchor = self.check.anchor
        if anchor == "fault_start":
            return anchors.fault_start
        if anchor == "fault_end":
            return anchors.fault_end
        return anchors.phase_start.get(self.phase)

    def result(self, status: Status, message: str, *, latency: float | None = None,
               evidence: dict[str, Any] | None = None) -> CheckResult:
        # a no-alert check has no deadline: its window is what bounds it
        deadline = self.check.window_s if isinstance(self.check, NoAlertCheck) \
            else self.check.deadline_s
        return CheckResult(
            name=self.check.display_name(), signal=self.check.signal, status=status,
            message=message, severity=self.check.severity, phase=self.phase,
            latency_s=latency, deadline_s=deadline, anchor=self.check.anchor,
            evidence=evidence or {}, settled_at=time.time())

    def remaining(self, anchor: float) -> float:
        return anchor + self.check.deadline_s - time.time()


def _labels_match(have: dict[str, str], want: dict[str, str]) -> bool:
    return all(have.get(k) == v for k, v in want.items())


def _fmt_labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _parse_ts(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


async def _alert_check(check: AlertCheck, ctx: CheckContext, j: _Judge) -> CheckResult:
    if ctx.prometheus is None:
        return j.result("skipped", "no prometheus backend configured")
    prom = ctx.prometheus
    anchor = j.anchor_time()
    if anchor is None:
        return j.result("skipped", f"anchor {check.anchor} did not happen")
    want = f"{check.alertname}{_fmt_labels(check.labels) if check.labels else ''}"

    async def observe() -> Seen[ActiveAlert]:
        alerts = await prom.alerts()
        for alert in alerts:
            if alert.name == check.alertname and alert.state == "firing" and \
                    _labels_match(alert.labels, check.labels):
                return Seen(alert)
        same = [a.describe() for a in alerts if a.name == check.alertname]
        others = [a.describe() for a in alerts if a.name != check.alertname]
        if same:
            return Seen(miss=f"seen instead: {', '.join(same)}")
        if others:
            return Seen(miss=f"firing instead: {', '.join(others)}")
        return Seen(miss="no alert pending or firing")

    out = await eventually(observe, timeout=j.remaining(anchor) + _GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence: dict[str, Any] = {"query": "GET /api/v1/alerts", "alert": want}
    if "prometheus" in ctx.links:
        evidence["link"] = f"{ctx.links['prometheus']}/alerts"
    if out.found is not None:
        alert = out.found
        active_at = _parse_ts(alert.active_at)
        seen_at = out.observed_at or time.time()
        latency = seen_at - anchor
        evidence.update(matched=alert.describe(), active_at=alert.active_at,
                        active_after_s=None if active_at is None else round(active_at - anchor, 3))
        if latency > check.deadline_s:
            return j.result("fail", f"alert {want} fired late: {latency:.1f}s after "
                            f"{check.anchor} (deadline {check.deadline_s:.0f}s)",
                            latency=latency, evidence=evidence)
        return j.result("pass", f"alert {want} firing {latency:.1f}s after {check.anchor}",
                        latency=latency, evidence=evidence)
    if out.error is not None:
        return j.result("error", f"could not look for alert {want}: {out.error}",
                        evidence=evidence)
    reason = await _why_no_alert(ctx, check.alertname)
    evidence["nearest_miss"] = out.last_miss
    return j.result("fail", f"alert {want} not firing {check.deadline_s:.0f}s after "
                    f"{check.anchor}; {reason or out.last_miss}", evidence=evidence)


async def _why_no_alert(ctx: CheckContext, alertname: str) -> str | None:
    """Name the defect when the rule itself is missing or broken."""
    assert ctx.prometheus is not None
    try:
        rules = await ctx.prometheus.rules()
    except BackendError:
        return None
    named = [r for r in rules if r.get("type") == "alerting" and r.get("name") == alertname]
    if not named:
        return f"no alerting rule named {alertname} is loaded in Prometheus"
    bad = [r for r in named if r.get("health") not in (None, "ok", "unknown")]
    if bad:
        return f"rule {alertname} is unhealthy: {bad[0].get('lastError') or bad[0].get('health')}"
    return None


async def _notification_check(check: NotificationCheck, ctx: CheckContext,
                              j: _Judge) -> CheckResult:
    if ctx.sink is None:
        return j.result("skipped", "no sink backend configured for notifications")
    sink = ctx.sink
    anchor = j.anchor_time()
    if anchor is None:
        return j.result("skipped", f"anchor {check.anchor} did not happen")
    deadline_at = anchor + check.deadline_s

    async def observe() -> Seen[dict[str, Any]]:
        rows = await sink.notifications(alertname=check.alertname)
        fresh = [r for r in rows if float(r.get("received_at", 0)) >= anchor]
        for row in fresh:
            if row.get("status") == check.status and \
                    _labels_match(row.get("labels") or {}, check.labels):
                return Seen(row)
        if fresh:
            seen = ", ".join(f"{r.get('alertname')} {r.get('status')}" for r in fresh[:3])
            return Seen(miss=f"received instead: {seen}")
        return Seen(miss=f"no notification for {check.alertname} since {check.anchor}")

    out = await eventually(observe, timeout=deadline_at - time.time() + _GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence: dict[str, Any] = {"query": f"GET /api/notifications?alertname={check.alertname}",
                                "status_wanted": check.status}
    if out.found is not None:
        row = out.found
        latency = float(row["received_at"]) - anchor
        evidence.update(receiver=row.get("receiver"), labels=row.get("labels"),
                        received_at=row.get("received_at"))
        if latency > check.deadline_s:
            return j.result("fail", f"{check.alertname} {check.status} notification arrived "
                            f"late: {latency:.1f}s after {check.anchor} (deadline "
                            f"{check.deadline_s:.0f}s)", latency=latency, evidence=evidence)
        return j.result("pass", f"{check.alertname} {check.status} notification delivered "
                        f"{latency:.1f}s after {check.anchor}", latency=latency,
                        evidence=evidence)
    if out.error is not None:
        return j.result("error", f"could not look for notifications: {out.error}",
                        evidence=evidence)
    evidence["nearest_miss"] = out.last_miss
    return j.result("fail", f"no {check.alertname} {check.status} notification within "
                    f"{check.deadline_s:.0f}s of {check.anchor}; {out.last_miss}",
                    evidence=evidence)


async def _no_alert_check(check: NoAlertCheck, ctx: CheckContext, j: _Judge) -> CheckResult:
    if ctx.prometheus is None:
        return j.result("skipped", "no prometheus backend configured")
    prom = ctx.prometheus
    start = ctx.anchors.phase_start.get(j.phase, time.time())
    watched = set(check.alertnames)
    looked = 0

    async def observe() -> Seen[ActiveAlert]:
        nonlocal looked
        alerts = await prom.alerts()
        looked += 1
        for alert in alerts:
            if alert.state == "firing" and (not watched or alert.name in watched):
                return Seen(alert)
        pending = [a.describe() for a in alerts if a.state == "pending"]
        return Seen(miss=f"pending: {', '.join(pending)}" if pending else None)

    out = await eventually(observe, timeout=start + check.window_s - time.time(),
                           interval=max(ctx.poll_interval_s, 0.25))
    evidence: dict[str, Any] = {"query": "GET /api/v1/alerts", "window_s": check.window_s,
                                "polls": looked}
    if out.found is not None:
        evidence["firing"] = out.found.describe()
        return j.result("fail", f"alert {out.found.describe()} fired during the healthy "
                        f"{j.phase} (false positive)", latency=out.elapsed_s, evidence=evidence)
    if out.error is not None or looked == 0:
        return j.result("error", f"could not watch alerts during {j.phase}: {out.error}",
                        evidence=evidence)
    if out.last_miss:
        evidence["note"] = out.last_miss
    return j.result("pass", f"no alert fired during {check.window_s:.0f}s of healthy {j.phase}"
                    + (f" ({out.last_miss})" if out.last_miss else ""), evidence=evidence)


async def _probe_for(check: TraceCheck | LogsCheck, ctx: CheckContext,
                     j: _Judge) -> tuple[Any, str | None]:
    """The probe whose ids the check follows: the first of the journey in this phase."""
    start = ctx.anchors.phase_start.get(j.phase, 0.0)

    async def observe() -> Seen[Any]:
        runs = ctx.probes_since(check.journey, start)
        ok = [p for p in runs if p.success]
        if ok:
            return Seen(ok[0])
        if runs:
            return Seen(miss=f"{check.journey} probes failing: {runs[-1].error}")
        return Seen(miss=f"no {check.journey} probe has run in {j.phase}")

    out = await eventually(observe, timeout=check.deadline_s, interval=0.05)
    return out.found, out.last_miss


async def _trace_check(check: TraceCheck, ctx: CheckContext, j: _Judge) -> CheckResult:
    if ctx.sink is None:
        return j.result("skipped", "no trace backend configured")
    sink = ctx.sink
    probe, miss = await _probe_for(check, ctx, j)
    if probe is None:
        return j.result("error", f"no successful {check.journey} probe to follow: {miss}")
    anchor = probe.started_at
    want = set(check.services)
    last_count = -1

    async def observe() -> Seen[list[dict[str, Any]]]:
        nonlocal last_count
        spans = await sink.trace_spans(probe.trace_id)
        services = {str(s.get("service")) for s in spans}
        count = len(spans)
        stable = count == last_count
        last_count = count
        if not spans:
            return Seen(miss=f"no spans with trace id {probe.trace_id}")
        missing = sorted(want - services)
        if missing:
            return Seen(miss=f"trace {probe.trace_id} has {count} spans from "
                        f"{', '.join(sorted(services))} only; missing {', '.join(missing)}")
        if not stable:  # complete = services present and span count unchanged over two polls
            return Seen(miss=f"trace {probe.trace_id} still growing ({count} spans)")
        return Seen(spans)

    out = await eventually(observe, timeout=j.remaining(anchor) + _GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence: dict[str, Any] = {"trace_id": probe.trace_id, "journey": check.journey,
                                "services_wanted": sorted(want)}
    if "jaeger" in ctx.links:
        evidence["link"] = f"{ctx.links['jaeger']}/trace/{probe.trace_id}"
    if out.found is not None:
        spans = out.found
        latency = (out.observed_at or time.time()) - anchor
        evidence.update(spans=len(spans), services=sorted({str(s.get("service")) for s in spans}))
        return j.result("pass", f"trace {probe.trace_id[:12]}… spans "
                        f"{', '.join(sorted(want))} ({len(spans)} spans) {latency:.1f}s after "
                        "the probe", latency=latency, evidence=evidence)
    if out.error is not None:
        return j.result("error", f"could not look up trace: {out.error}", evidence=evidence)
    evidence["nearest_miss"] = out.last_miss
    return j.result("fail", f"{out.last_miss} ({check.deadline_s:.0f}s after the probe)",
                    evidence=evidence)


async def _logs_check(check: LogsCheck, ctx: CheckContext, j: _Judge) -> CheckResult:
    if ctx.sink is None:
        return j.result("skipped", "no log backend configured")
    sink = ctx.sink
    probe, miss = await _probe_for(check, ctx, j)
    if probe is None:
        return j.result("error", f"no successful {check.journey} probe to follow: {miss}")
    anchor = probe.started_at
    want = set(check.services)

    async def observe() -> Seen[list[dict[str, Any]]]:
        lines = await sink.logs(trace_id=probe.trace_id)
        services = {str(line.get("service")) for line in lines}
        if len(lines) >= check.min_lines and want <= services:
            return Seen(lines)
        if lines:
            return Seen(miss=f"{len(lines)} line(s) with trace id {probe.trace_id} from "
                        f"{', '.join(sorted(services))}; wanted {', '.join(sorted(want))}")
        by_request = await sink.logs(request_id=probe.request_ids[0]) if probe.request_ids \
            else []
        if by_request:
            return Seen(miss=f"{len(by_request)} line(s) carry the probe's request id but not "
                        f"its trace id {probe.trace_id}")
        return Seen(miss=f"no log line carries trace id {probe.trace_id}")

    out = await eventually(observe, timeout=j.remaining(anchor) + _GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence: dict[str, Any] = {"trace_id": probe.trace_id, "journey": check.journey,
                                "query": f"GET /api/logs?trace_id={probe.trace_id}"}
    if out.found is not None:
        lines = out.found
        latency = (out.observed_at or time.time()) - anchor
        evidence.update(lines=len(lines), sample=str(lines[0].get("body", ""))[:200])
        return j.result("pass", f"{len(lines)} log line(s) carry the {check.journey} probe's "
                        f"trace id, {latency:.1f}s after the probe", latency=latency,
                        evidence=evidence)
    if out.error is not None:
        return j.result("error", f"could not look up logs: {out.error}", evidence=evidence)
    evidence["nearest_miss"] = out.last_miss
    return j.result("fail", f"{out.last_miss} ({check.deadline_s:.0f}s after the probe)",
                    evidence=evidence)


async def _metric_check(check: MetricCheck, ctx: CheckContext, j: _Judge) -> CheckResult:
    if ctx.prometheus is None:
        return j.result("skipped", "no prometheus backend configured")
    prom = ctx.prometheus
    anchor = j.anchor_time()
    if anchor is None:
        return j.result("skipped", f"anchor {check.anchor} did not happen")

    async def observe() -> Seen[list[Any]]:
        samples = await prom.query(check.query)
        if samples:
            return Seen(samples)
        return Seen(miss="the query returned no series")

    out = await eventually(observe, timeout=j.remaining(anchor) + _GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence: dict[str, Any] = {"query": check.query}
    if "prometheus" in ctx.links:
        from urllib.parse import quote
        evidence["link"] = f"{ctx.links['prometheus']}/graph?g0.expr={quote(check.query)}"
    if out.found is not None:
        latency = (out.observed_at or time.time()) - anchor
        evidence["result"] = [{"labels": s.labels, "value": s.value} for s in out.found[:5]]
        status: Status = "pass" if latency <= check.deadline_s else "fail"
        return j.result(status, f"condition held {latency:.1f}s after {check.anchor}",
                        latency=latency, evidence=evidence)
    if out.error is not None:
        return j.result("error", f"could not evaluate the query: {out.error}",
                        evidence=evidence)
    evidence["nearest_miss"] = out.last_miss
    return j.result("fail", f"condition did not hold within {check.deadline_s:.0f}s: "
                    f"{out.last_miss}", evidence=evidence)


async def _probe_check(check: ProbeCheck, ctx: CheckContext, j: _Judge) -> CheckResult:
    anchor = j.anchor_time()
    if anchor is None:
        return j.result("skipped", f"anchor {check.anchor} did not happen")

    async def observe() -> Seen[list[Any]]:
        runs = ctx.probes_since(check.journey, anchor)
        streak: list[Any] = []
        for run in runs:
            streak = [*streak, run] if run.success else []
            if len(streak) >= check.consecutive:
                return Seen(streak)
        if runs and not runs[-1].success:
            return Seen(miss=f"last {check.journey} probe failed: {runs[-1].error}")
        return Seen(miss=f"{len(streak)} of {check.consecutive} consecutive successes so far")

    out = await eventually(observe, timeout=j.remaining(anchor), interval=0.05)
    evidence: dict[str, Any] = {"journey": check.journey, "consecutive": check.consecutive}
    if out.found is not None:
        streak = out.found
        latency = streak[0].started_at - anchor
        evidence["trace_ids"] = [p.trace_id for p in streak]
        return j.result("pass", f"{check.journey} probes succeeding again {latency:.1f}s after "
                        f"{check.anchor}", latency=latency, evidence=evidence)
    evidence["nearest_miss"] = out.last_miss
    return j.result("fail", f"{check.journey} probes not succeeding within "
                    f"{check.deadline_s:.0f}s of {check.anchor}: {out.last_miss}",
                    evidence=evidence)


_RUNNERS: dict[str, Callable[[Any, CheckContext, _Judge], Awaitable[CheckResult]]] = {
    "alert": _alert_check,
    "notification": _notification_check,
    "no_alert": _no_alert_check,
    "trace": _trace_check,
    "logs": _logs_check,
    "metric": _metric_check,
    "probe": _probe_check,
}


async def judge(check: Check, ctx: CheckContext, phase: str) -> CheckResult:
    """Run one check to its verdict. Never raises for the system's or a backend's faults."""
    j = _Judge(check, ctx, phase)
    try:
        return await _RUNNERS[check.signal](check, ctx, j)
    except BackendError as exc:
        return j.result("error", f"could not look: {exc}")
