"""Alert checks: fires, stays quiet, rule hygiene, resolves, not silenced, notified."""

from __future__ import annotations

import difflib
import time
from typing import Any

import httpx

from core.errors import BackendError
from core.http import REQUEST_ERRORS
from core.waiting import Seen, eventually
from gates.backends.alertmanager import AmAlert
from gates.backends.prometheus import ActiveAlert
from gates.backends.types import Notification
from gates.checks.common import GRACE_S, Judge, fmt_labels, labels_match, parse_ts
from gates.config import (
    AlertCheck,
    AlertNotSilencedCheck,
    AlertResolvesCheck,
    AlertRuleCheck,
    NoAlertCheck,
    NotificationCheck,
)
from gates.context import CheckContext
from reports.model import CheckResult


def _want(alertname: str, labels: dict[str, str]) -> str:
    return f"{alertname}{fmt_labels(labels) if labels else ''}"


async def alert_check(check: AlertCheck, ctx: CheckContext, j: Judge) -> CheckResult:
    """The alert is firing in Prometheus within the deadline."""
    if ctx.prometheus is None:
        return j.result("skipped", "no prometheus backend configured")
    prom = ctx.prometheus
    anchor = j.anchor_time()
    if anchor is None:
        return j.result("skipped", f"anchor {check.anchor} did not happen")
    want = _want(check.alertname, check.labels)

    async def observe() -> Seen[ActiveAlert]:
        alerts = await prom.alerts()
        for alert in alerts:
            if alert.name == check.alertname and alert.state == "firing" and \
                    labels_match(alert.labels, check.labels):
                return Seen(alert)
        same = [a.describe() for a in alerts if a.name == check.alertname]
        others = [a.describe() for a in alerts if a.name != check.alertname]
        if same:
            return Seen(miss=f"seen instead: {', '.join(same)}")
        if others:
            return Seen(miss=f"firing instead: {', '.join(others)}")
        return Seen(miss="no alert pending or firing")

    out = await eventually(observe, timeout=j.remaining(anchor) + GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence: dict[str, Any] = {"query": "GET /api/v1/alerts", "alert": want}
    if "prometheus" in ctx.links:
        evidence["link"] = f"{ctx.links['prometheus']}/alerts"
    if out.found is not None:
        alert = out.found
        active_at = parse_ts(alert.active_at)
        latency = (out.observed_at or time.time()) - anchor
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
    # Pending but not firing is its own near miss; otherwise ask the rule why.
    seen = (out.last_miss or "").startswith("seen instead")
    reason = None if seen else await _why_no_alert(ctx, check.alertname)
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
    # Loaded and healthy, yet silent under the fault: its condition never held (a threshold
    # it cannot reach, a label that does not exist). Show the expression that stayed false.
    expr = " ".join(str(named[0].get("query") or "").split())
    return (f"rule {alertname} is loaded and healthy but its condition never held during the "
            f"fault: {expr[:200]}" if expr else None)


async def no_alert_check(check: NoAlertCheck, ctx: CheckContext, j: Judge) -> CheckResult:
    """No alert fires during the healthy window (false positives fail)."""
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


async def _runbook_problem(url: str, ctx: CheckContext) -> tuple[str | None, int | None]:
    """Why the runbook link does not answer 2xx/3xx (None when it does), and its status."""
    async def get(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get(url, timeout=5.0, follow_redirects=False)
    try:
        if ctx.http is not None:
            resp = await get(ctx.http)
        else:
            async with httpx.AsyncClient() as client:
                resp = await get(client)
    except REQUEST_ERRORS as exc:
        return f"runbook_url {url} does not answer ({type(exc).__name__})", None
    except ValueError:
        return f"runbook_url {url!r} is not a URL", None
    if resp.status_code >= 400:
        return f"runbook_url {url} answered {resp.status_code}", resp.status_code
    return None, resp.status_code


async def alert_rule_check(check: AlertRuleCheck, ctx: CheckContext, j: Judge) -> CheckResult:
    """The rule is loaded, healthy, carries the labels/annotations, its runbook answers."""
    if ctx.prometheus is None:
        return j.result("skipped", "no prometheus backend configured")
    prom = ctx.prometheus
    anchor = j.anchor_time() or time.time()

    async def observe() -> Seen[dict[str, Any]]:
        rules = [r for r in await prom.rules() if r.get("type") == "alerting"]
        named = [r for r in rules if r.get("name") == check.alertname]
        if not named:
            names = sorted({str(r.get("name")) for r in rules})
            close = difflib.get_close_matches(check.alertname, names, n=2, cutoff=0.5)
            return Seen(miss=f"no alerting rule named {check.alertname} is loaded"
                        + (f" (similar: {', '.join(close)})" if close else
                           f" ({len(names)} alerting rules loaded)"))
        rule = named[0]
        problems: list[str] = []
        if rule.get("health") not in (None, "ok", "unknown"):
            problems.append(f"unhealthy: {rule.get('lastError') or rule.get('health')}")
        labels = rule.get("labels") or {}
        annotations = rule.get("annotations") or {}
        problems += [f"no '{name}' label" for name in check.required_labels
                     if not labels.get(name)]
        problems += [f"no '{name}' annotation" for name in check.required_annotations
                     if not annotations.get(name)]
        runbook = annotations.get("runbook_url")
        status = None
        if check.runbook_must_answer and runbook:
            problem, status = await _runbook_problem(str(runbook), ctx)
            if problem:
                problems.append(problem)
        if problems:
            return Seen(miss=f"rule {check.alertname}: {'; '.join(problems)}")
        return Seen({"rule": rule, "runbook_status": status})

    out = await eventually(observe, timeout=j.remaining(anchor) + GRACE_S,
                           interval=max(ctx.poll_interval_s, 0.25))
    evidence: dict[str, Any] = {"query": "GET /api/v1/rules", "alertname": check.alertname}

    def passed(found: dict[str, Any], latency: float) -> str:
        rule = found["rule"]
        evidence.update(health=rule.get("health"), labels=rule.get("labels"),
                        runbook_url=(rule.get("annotations") or {}).get("runbook_url"),
                        runbook_status=found["runbook_status"])
        sev = (rule.get("labels") or {}).get("severity")
        return (f"rule {check.alertname} loaded and {rule.get('health') or 'ok'}"
                + (f", severity={sev}" if sev else "")
                + (f", runbook answers {found['runbook_status']}"
                   if found["runbook_status"] else ""))

    result = j.settle(out, anchor=anchor, evidence=evidence, what=f"sound rule "
                      f"{check.alertname}", passed=passed,
                      latency_of=lambda _: 0.0)
    if result.status == "fail" and out.last_miss:  # the defect is the message, not "no rule"
        return j.result("fail", out.last_miss, evidence=evidence)
    return result


async def alert_resolves_check(check: AlertResolvesCheck, ctx: CheckContext,
                               j: Judge) -> CheckResult:
    """Having fired, the alert is neither pending nor firing within the deadline."""
    if ctx.prometheus is None:
        return j.result("skipped", "no prometheus backend configured")
    prom = ctx.prometheus
    anchor = j.anchor_time()
    if anchor is None:
        return j.result("skipped", f"anchor {check.anchor} did not happen")
    want = _want(check.alertname, check.labels)
    matchers = ",".join([f'alertname="{check.alertname}"', 'alertstate="firing"',
                         *(f'{k}="{v}"' for k, v in sorted(check.labels.items()))])
    fired_query = f"max(ALERTS{{{matchers}}})"
    evidence: dict[str, Any] = {"query": "GET /api/v1/alerts", "fired_query": fired_query,
                                "alert": want}
    # A resolution is only evidence if the alert fired: an alert that never fired "resolves"
    # trivially, and that must not pass.
    since = ctx.anchors.fault_start or min(ctx.anchors.phase_start.values(), default=anchor)
    try:
        fired = await prom.query_range(fired_query, since - 60, time.time(), 1.0)
    except BackendError as exc:
        return j.result("error", f"could not look whether {want} fired: {exc}",
                        evidence=evidence)
    if not fired:
        return j.result("fail", f"alert {want} never fired, so it cannot resolve (looked back "
                        f"to {check.anchor if since == anchor else 'fault_start'} - 60s)",
                        evidence=evidence)

    async def observe() -> Seen[bool]:
        alerts = [a for a in await prom.alerts()
                  if a.name == check.alertname and labels_match(a.labels, check.labels)]
        if alerts:
            return Seen(miss="still " + ", ".join(
                f"{a.describe()} since {a.active_at}" for a in alerts))
        return Seen(True)

    out = await eventually(observe, timeout=j.remaining(anchor) + GRACE_S,
                           interval=ctx.poll_interval_s)
    return j.settle(out, anchor=anchor, evidence=evidence, what=f"resolution of {want}",
                    passed=lambda _, lat: f"alert {want} resolved {lat:.1f}s after "
                    f"{check.anchor}")


async def alert_not_silenced_check(check: AlertNotSilencedCheck, ctx: CheckContext,
                                   j: Judge) -> CheckResult:
    """The alert reaches Alertmanager in state active (not silenced, not inhibited)."""
    if ctx.alertmanager is None:
        return j.result("skipped", "no alertmanager backend configured")
    am = ctx.alertmanager
    anchor = j.anchor_time()
    if anchor is None:
        return j.result("skipped", f"anchor {check.anchor} did not happen")
    want = _want(check.alertname, check.labels)

    async def observe() -> Seen[AmAlert]:
        alerts = [a for a in await am.alerts(check.alertname)
                  if labels_match(a.labels, check.labels)]
        active = [a for a in alerts if a.state == "active"]
        if active:
            return Seen(active[0])
        if not alerts:
            return Seen(miss=f"alert {want} has not reached Alertmanager")
        a = alerts[0]
        if a.silenced_by:
            silence = await am.silence(a.silenced_by[0])
            return Seen(miss=f"{a.describe()} is silenced by {a.silenced_by[0]} "
                        f"(by {silence.get('createdBy', '?')}: "
                        f"{silence.get('comment', '')!r}, until {silence.get('endsAt')})")
        if a.inhibited_by:
            return Seen(miss=f"{a.describe()} is inhibited by alert(s) with fingerprint "
                        f"{', '.join(a.inhibited_by)}")
        return Seen(miss=f"{a.describe()} not active yet")

    out = await eventually(observe, timeout=j.remaining(anchor) + GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence: dict[str, Any] = {"query": f'GET /api/v2/alerts?filter=alertname="'
                                f'{check.alertname}"', "alert": want,
                                "link": f"{am.base_url}/#/alerts"}
    result = j.settle(out, anchor=anchor, evidence=evidence, what=f"active alert {want}",
                      passed=lambda a, lat: f"alert {a.describe()} active in Alertmanager, "
                      f"not silenced or inhibited, {lat:.1f}s after {check.anchor}")
    if result.status == "fail" and out.last_miss and ("silenced" in out.last_miss
                                                      or "inhibited" in out.last_miss):
        return j.result("fail", out.last_miss, evidence=evidence)
    return result


async def notification_check(check: NotificationCheck, ctx: CheckContext,
                             j: Judge) -> CheckResult:
    """The notification arrives in time; latency is its arrival time at the receiver."""
    backend = ctx.notifications
    if backend is None:
        return j.result("skipped", "no notifications backend configured")
    anchor = j.anchor_time()
    if anchor is None:
        return j.result("skipped", f"anchor {check.anchor} did not happen")
    deadline_at = anchor + check.deadline_s

    # A resolved notification proves recovery only if this run's alert was notified firing:
    # a stray "resolved" (an earlier incident, a reloaded Alertmanager) proves nothing.
    fired_since = ctx.anchors.fault_start or min(ctx.anchors.phase_start.values(),
                                                 default=anchor)

    async def observe() -> Seen[Notification]:
        rows = await backend.notifications(check.alertname, min(anchor, fired_since))
        fresh = [r for r in rows if r.received_at >= anchor]
        fired = check.status != "resolved" or any(
            r.status == "firing" and r.received_at >= fired_since
            and labels_match(r.labels, check.labels) for r in rows)
        for row in fresh:
            if row.status == check.status and labels_match(row.labels, check.labels):
                if not fired:
                    return Seen(miss=f"a {check.alertname} resolved notification arrived, but "
                                "no firing one since fault_start: it proves nothing")
                return Seen(row)
        if fresh:
            seen = ", ".join(f"{r.alertname} {r.status}" for r in fresh[:3])
            return Seen(miss=f"received instead: {seen}")
        return Seen(miss=f"no notification for {check.alertname} since {check.anchor}")

    out = await eventually(observe, timeout=deadline_at - time.time() + GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence: dict[str, Any] = {"backend": backend.kind, "alertname": check.alertname,
                                "status_wanted": check.status}
    if backend.kind == "sink":
        evidence["query"] = f"GET /api/notifications?alertname={check.alertname}"
    if out.found is not None:
        row = out.found
        latency = row.received_at - anchor
        evidence.update(receiver=row.where, labels=row.labels, received_at=row.received_at)
        if row.link:
            evidence["link"] = row.link
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
    routed = await _alertmanager_routing(ctx, check.alertname, check.labels)
    if routed:
        evidence["alertmanager"] = routed
    return j.result("fail", f"no {check.alertname} {check.status} notification within "
                    f"{check.deadline_s:.0f}s of {check.anchor}; {out.last_miss}"
                    + (f"; {routed}" if routed else ""), evidence=evidence)


async def _alertmanager_routing(ctx: CheckContext, alertname: str,
                                labels: dict[str, str]) -> str | None:
    """Where Alertmanager routed the alert: tells "never reached it" from "routed nowhere"."""
    if ctx.alertmanager is None:
        return None
    try:
        alerts = [a for a in await ctx.alertmanager.alerts(alertname)
                  if labels_match(a.labels, labels)]
    except BackendError:
        return None
    if not alerts:
        return f"alert {alertname} has not reached Alertmanager"
    receivers = sorted({r for a in alerts for r in a.receivers})
    return (f"the alert reached Alertmanager ({alerts[0].state}), routed to receiver(s) "
            f"{', '.join(receivers) or 'none'}, but no notification arrived: does the "
            "receiver have an integration pointing here?")
