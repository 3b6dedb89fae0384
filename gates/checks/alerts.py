"""Alert checks: fires, stays quiet, rule hygiene, resolves, not silenced, notified.

Transitions, not states: a check anchored on an event passes only on a signal that began
after it. An alert already active at the anchor (``activeAt`` before it, or firing in
``ALERTS`` at its time), a notification that arrived before it, or one whose alert started
before it, proves nothing about the fault and fails, saying so. Healthy means silent:
``no_alert`` fails on a pending alert too, and on any rule whose condition held in the
window. gates/checks/alert_reasons.py finds the words for a miss.
"""

from __future__ import annotations

import difflib
import time
from typing import Any

import httpx

from core.errors import BackendError
from core.http import REQUEST_ERRORS
from core.times import rfc3339_seconds
from core.waiting import Seen, eventually
from gates.backends.alertmanager import AmAlert
from gates.backends.prometheus import AlertingRule, PrometheusClient
from gates.backends.types import ActiveAlert, Notification
from gates.checks import alert_reasons as why
from gates.checks.common import GRACE_S, Judge, fmt_labels, labels_match
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

# How far before the anchor notifications are read, to tell "arrived before the anchor"
# (the alert was already firing) from "never arrived".
NOTIFICATION_LOOKBACK_S = 600.0

_HEALTHY = ("either the system is not healthy or the rule fires on a healthy system")


def _want(alertname: str, labels: dict[str, str]) -> str:
    return f"{alertname}{fmt_labels(labels) if labels else ''}"


async def alert_check(check: AlertCheck, ctx: CheckContext, j: Judge) -> CheckResult:
    """The alert starts firing (in Prometheus, or the alerts backend) after the anchor, in time."""
    if ctx.alerts is None:
        return j.result("skipped", "no prometheus (or alerts) backend configured")
    source = ctx.alerts
    prom = ctx.prometheus_alerts()  # Prometheus' ALERTS history and rules explain a miss
    anchor = j.anchor_time()
    if anchor is None:
        return j.result("skipped", f"anchor {check.anchor} did not happen")
    want = _want(check.alertname, check.labels)
    at_anchor: set[frozenset[tuple[str, str]]] | None = None

    async def firing_at_anchor() -> set[frozenset[tuple[str, str]]]:
        # Looked up once, when a candidate shows: ALERTS at the anchor's time is history.
        nonlocal at_anchor
        if at_anchor is None:
            # another engine has no ALERTS history: active_at alone dates the alert
            at_anchor = set() if prom is None else \
                await why.firing_at(prom, check.alertname, check.labels, anchor)
        return at_anchor

    already_active: dict[str, Any] = {}

    async def stale(alert: ActiveAlert) -> str | None:
        """Why ``alert`` was already active at the anchor (None: it began after it)."""
        since = why.active_before(alert, anchor)
        firing_then = why.alert_key(alert.labels) in await firing_at_anchor()
        if since is None and not firing_then:
            return None
        active_at = rfc3339_seconds(alert.active_at)
        already_active.update(alert=alert.describe(), active_at=alert.active_at,
                              firing_at_anchor=firing_then, active_after_s=None
                              if active_at is None else round(active_at - anchor, 3))
        # without ALERTS history (another engine) only "active" is known, not which state
        state = "firing" if firing_then else ("pending" if prom is not None else "active")
        return (f"{alert.describe()} already {state} before {check.anchor} (active since "
                + (why.before(since, anchor, check.anchor) if since is not None
                   else f"{alert.active_at}; ALERTS shows it firing at {check.anchor}") + ")")

    async def observe() -> Seen[ActiveAlert]:
        alerts = await source.alerts()
        same = [a for a in alerts if a.name == check.alertname]
        old: list[str] = []
        for alert in same:
            if not labels_match(alert.labels, check.labels):
                continue
            already = await stale(alert)
            if already is not None:
                old.append(already)
            elif alert.state == "firing":
                return Seen(alert)
        if old:
            return Seen(miss=f"{'; '.join(old)}: an alert active before {check.anchor} "
                        "proves nothing about it")
        others = [a.describe() for a in alerts if a.name != check.alertname]
        if same:
            return Seen(miss=f"seen instead: {', '.join(a.describe() for a in same)}")
        if others:
            return Seen(miss=f"firing instead: {', '.join(others)}")
        return Seen(miss="no alert pending or firing")

    out = await eventually(observe, timeout=j.remaining(anchor) + GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence: dict[str, Any] = {"query": "GET /api/v1/alerts" if prom is not None else
                                f"{source.kind} alert state", "alert": want}
    if "prometheus" in ctx.links and prom is not None:
        evidence["link"] = f"{ctx.links['prometheus']}/alerts"
    if out.found is not None:
        alert = out.found
        active_at = rfc3339_seconds(alert.active_at)
        latency = (out.observed_at or time.time()) - anchor
        evidence.update(matched=alert.describe(), active_at=alert.active_at,
                        active_after_s=None if active_at is None else round(active_at - anchor, 3))
        if latency > check.deadline_s:
            return j.result("fail", f"alert {want} fired late: {latency:.1f}s after "
                            f"{check.anchor} (deadline {check.deadline_s:g}s)",
                            latency=latency, evidence=evidence)
        return j.result("pass", f"alert {want} firing {latency:.1f}s after {check.anchor}",
                        latency=latency, evidence=evidence)
    if out.error is not None:
        return j.result("error", f"could not look for alert {want}: {out.error}",
                        evidence=evidence)
    evidence["nearest_miss"] = out.last_miss
    if " already " in (out.last_miss or ""):
        evidence["already_active"] = already_active
        return j.result("fail", f"alert {out.last_miss}", evidence=evidence)
    # Pending but not firing is its own near miss; otherwise ask the rule why.
    seen = (out.last_miss or "").startswith("seen instead")
    reason = None if seen or prom is None else await why.why_no_alert(ctx, check.alertname)
    return j.result("fail", f"alert {want} not firing {check.deadline_s:g}s after "
                    f"{check.anchor}; {reason or out.last_miss}", evidence=evidence)


async def _expr_of(prom: PrometheusClient, alertname: str) -> str:
    rule = await why.rule_named(prom, alertname)
    return f"; its expression: {rule.expr()}" if rule is not None and rule.expr() else ""


async def _rules_that_held(prom: PrometheusClient, rules: list[AlertingRule], start: float,
                           end: float, window_s: float) -> tuple[list[str], list[str]]:
    """Each rule's expression over [start, end]: what held, and the rules left out
    (unhealthy ones: the alert_rule check names those)."""
    held: list[str] = []
    skipped: list[str] = []
    for rule in rules:
        if rule.health == "err" or not rule.query:
            skipped.append(rule.name)
            continue
        # Every second (or the group's interval if shorter): a rule evaluated once a minute
        # could have caught the condition at any of them. At most ~1000 points per rule.
        step = max(min(rule.interval_s or 1.0, 1.0), (end - start) / 1000, 0.1)
        series = await prom.query_range(rule.query, start, end, step)
        points = sorted(t for _, values in series for t, _ in values)
        if not points:
            continue
        labels, values = next((s for s in series if s[1]), series[0])
        shown = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
        outlasts = (f"; its for: {why.duration(rule.for_s)} outlasts the "
                    f"{round(window_s, 1):g}s window, "
                    "so no alert showed yet" if rule.for_s > window_s else "")
        held.append(f"rule {rule.name}'s condition held during the window ({len(points)} "
                    f"evaluation(s) from +{max(0.0, points[0] - start):.1f}s, e.g. {{{shown}}} "
                    f"= {values[0][1]:g}){outlasts}: {rule.expr()}")
    return held, skipped


async def no_alert_check(check: NoAlertCheck, ctx: CheckContext, j: Judge) -> CheckResult:
    """Nothing pending or firing in the healthy window, and no rule's condition held in it."""
    if ctx.alerts is None:
        return j.result("skipped", "no prometheus (or alerts) backend configured")
    source = ctx.alerts
    prom = ctx.prometheus_alerts()
    start = ctx.anchors.phase_start.get(j.phase, time.time())
    watched = set(check.alertnames)
    looked = 0

    async def observe() -> Seen[ActiveAlert]:
        nonlocal looked
        alerts = await source.alerts()
        looked += 1
        # A pending alert is a condition that already holds on the healthy system: with a
        # for: longer than the window it would page right after, so it fails like a firing one.
        for state in ("firing", "pending"):
            for alert in alerts:
                if alert.state == state and (not watched or alert.name in watched):
                    return Seen(alert)
        return Seen(miss=None)

    out = await eventually(observe, timeout=start + check.window_s - time.time(),
                           interval=max(ctx.poll_interval_s, 0.25))
    evidence: dict[str, Any] = {"query": "GET /api/v1/alerts" if prom is not None else
                                f"{source.kind} alert state", "window_s": check.window_s,
                                "polls": looked}
    if out.found is not None:
        alert = out.found
        name = _want(alert.name, {k: v for k, v in alert.labels.items() if k != "alertname"})
        evidence[alert.state] = alert.describe()
        what = "fired" if alert.state == "firing" else (
            "was pending (its condition held; it fires once its for: has passed)")
        return j.result("fail", f"alert {name} {what} during the healthy {j.phase}: "
                        f"{_HEALTHY}{'' if prom is None else await _expr_of(prom, alert.name)}",
                        latency=out.elapsed_s, evidence=evidence)
    if out.error is not None or looked == 0:
        return j.result("error", f"could not watch alerts during {j.phase}: {out.error}",
                        evidence=evidence)
    if not check.evaluate_rules or prom is None:
        if check.evaluate_rules:  # only Prometheus' rules can be evaluated over the window
            evidence["rules_evaluated"] = f"no: {source.kind} rules cannot be evaluated here"
        return j.result("pass", f"no alert pending or firing during {check.window_s:.0f}s of "
                        f"healthy {j.phase}", evidence=evidence)
    end = min(start + check.window_s, time.time())
    try:
        rules = [r for r in await prom.alerting_rules() if not watched or r.name in watched]
        held, skipped = await _rules_that_held(prom, rules, start, end, check.window_s)
    except BackendError as exc:
        return j.result("error", f"could not evaluate the alerting rules over the {j.phase}: "
                        f"{exc}", evidence=evidence)
    evidence.update(rules_evaluated=len(rules) - len(skipped), rules_skipped=skipped,
                    query="GET /api/v1/alerts; GET /api/v1/rules; query_range of each rule")
    missing = sorted(watched - {r.name for r in rules})
    if missing or not rules:
        # a silence from rules that are not there proves nothing
        return j.result("fail", "no alerting rule " + (f"named {', '.join(missing)} "
                        if missing else "") + "is loaded in Prometheus: its silence during "
                        f"the {j.phase} proves nothing", evidence=evidence)
    if held:
        evidence["held"] = held
        return j.result("fail", f"{held[0]} ({_HEALTHY})"
                        + (f"; {len(held) - 1} more rule(s) held" if len(held) > 1 else ""),
                        evidence=evidence)
    return j.result("pass", f"no alert pending or firing during {check.window_s:.0f}s of "
                    f"healthy {j.phase}, and none of {len(rules) - len(skipped)} alerting "
                    "rules' conditions held", evidence=evidence)


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
        return (f"runbook_url {url} does not answer ({type(exc).__name__}; a wiki CI cannot "
                "reach: set runbook_must_answer: false to check the rule alone)"), None
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
                     if not labels.get(name) and name not in check.labels]
        # An expected value, not just a present one: critical downgraded to info pages nobody.
        problems += [f"{key}={labels[key]}, expected {key}={value}" if labels.get(key)
                     else f"no '{key}' label (expected {key}={value})"
                     for key, value in sorted(check.labels.items())
                     if str(labels.get(key, "")) != value]
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
    """Having fired since the fault began, the alert is neither pending nor firing in time."""
    if ctx.alerts is None:
        return j.result("skipped", "no prometheus (or alerts) backend configured")
    source = ctx.alerts
    prom = ctx.prometheus_alerts()
    anchor = j.anchor_time()
    if anchor is None:
        return j.result("skipped", f"anchor {check.anchor} did not happen")
    want = _want(check.alertname, check.labels)
    matchers = ",".join([f'alertname="{check.alertname}"', 'alertstate="firing"',
                         *(f'{k}="{v}"' for k, v in sorted(check.labels.items()))])
    # A resolution is only evidence if the alert fired during this run: one that never
    # fired "resolves" trivially, and that must not pass.
    since = ctx.anchors.fault_start or min(ctx.anchors.phase_start.values(), default=anchor)
    since_name = "fault_start" if ctx.anchors.fault_start else "the run's start"
    evidence: dict[str, Any] = {"query": "GET /api/v1/alerts", "alert": want,
                                "fired_query": f"max_over_time(ALERTS{{{matchers}}}[<since "
                                f"{since_name}>])"}
    fired = False
    still: list[ActiveAlert] = []

    async def fired_since() -> bool:
        # Every ALERTS sample written since the anchor of the run, however short-lived.
        return await source.fired_since(check.alertname, check.labels, since)

    async def observe() -> Seen[bool]:
        nonlocal fired, still
        still = [a for a in await source.alerts()
                 if a.name == check.alertname and labels_match(a.labels, check.labels)]
        if still:
            return Seen(miss="still " + ", ".join(
                f"{a.describe()} since {a.active_at}" for a in still))
        fired = fired or await fired_since()
        if not fired:
            return Seen(miss=f"alert {want} never fired since {since_name}, so it cannot "
                        "resolve")
        return Seen(True)

    out = await eventually(observe, timeout=j.remaining(anchor) + GRACE_S,
                           interval=ctx.poll_interval_s)
    result = j.settle(out, anchor=anchor, evidence=evidence, what=f"resolution of {want}",
                      passed=lambda _, lat: f"alert {want} resolved {lat:.1f}s after "
                      f"{check.anchor}")
    if result.status != "fail" or out.found is not None:
        return result
    if still:
        reason = None if prom is None else \
            await why.why_still_active(prom, still, check.alertname)
        evidence["why"] = reason
        return j.result("fail", f"alert {want} did not resolve within {check.deadline_s:g}s of "
                        f"{check.anchor}: {out.last_miss}" + (f"; {reason}" if reason else ""),
                        evidence=evidence)
    if out.last_miss and " never fired " in out.last_miss:
        return j.result("fail", out.last_miss, evidence=evidence)
    return result


async def alert_not_silenced_check(check: AlertNotSilencedCheck, ctx: CheckContext,
                                   j: Judge) -> CheckResult:
    """The alert reaches Alertmanager active (not silenced, not inhibited) after the anchor."""
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
        fresh = [a for a in active if why.active_before(a, anchor) is None]
        if fresh:
            return Seen(fresh[0])
        if active:
            since = why.active_before(active[0], anchor)
            assert since is not None
            return Seen(miss=f"{active[0].describe()} already active in Alertmanager before "
                        f"{check.anchor} (since {why.before(since, anchor, check.anchor)}): it "
                        "proves nothing about the fault")
        if not alerts:
            return Seen(miss=await why.not_in_alertmanager(ctx, check.alertname, check.labels))
        return Seen(miss=await why.describe_suppression(am, alerts[0])
                    or f"{alerts[0].describe()} not active yet")

    out = await eventually(observe, timeout=j.remaining(anchor) + GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence: dict[str, Any] = {"query": f'GET /api/v2/alerts?filter=alertname="'
                                f'{check.alertname}"', "alert": want,
                                "link": f"{am.base_url}/#/alerts"}
    result = j.settle(out, anchor=anchor, evidence=evidence, what=f"active alert {want}",
                      passed=lambda a, lat: f"alert {a.describe()} active in Alertmanager, "
                      f"not silenced or inhibited, {lat:.1f}s after {check.anchor}")
    if result.status == "fail" and out.found is None and out.last_miss and any(
            word in out.last_miss for word in (" silenced by ", " inhibited by ", " already ")):
        return j.result("fail", out.last_miss, evidence=evidence)
    return result


def _pick(rows: list[Notification], check: NotificationCheck, anchor: float,
          fired_since: float) -> Seen[Notification]:
    """The notification that proves the transition, or the nearest miss."""
    name, where = check.alertname, check.anchor
    # the alert's own rows only, whatever the backend did with the name it was asked for
    mine = [r for r in rows if r.alertname == name and labels_match(r.labels, check.labels)]
    fresh = [r for r in mine if r.received_at >= anchor]

    def started_after(row: Notification, at: float) -> bool:
        return row.starts_at is None or row.starts_at >= at

    if check.status == "firing":
        firing = [r for r in fresh if r.status == "firing"]
        new = [r for r in firing if started_after(r, anchor)]
        if new:
            return Seen(new[0])
        if firing:  # re-sent for an alert that was firing already (repeat, group change)
            old = firing[0]
            assert old.starts_at is not None
            return Seen(miss=f"a {name} firing notification arrived "
                        f"{old.received_at - anchor:.1f}s after {where}, but its alert started "
                        f"at {why.before(old.starts_at, anchor, where)}: it was already firing "
                        "before the fault")
        # Per alert, the last word before the anchor: "firing" with no "resolved" after it
        # says the alert was still firing then (a receiver may not send resolutions, so
        # this says what arrived, not more).
        last: dict[frozenset[tuple[str, str]], Notification] = {}
        for r in sorted((r for r in mine if r.received_at < anchor), key=lambda r: r.received_at):
            last[frozenset(r.labels.items())] = r
        unresolved = [r for r in last.values() if r.status == "firing"]
        if unresolved:
            newest = max(unresolved, key=lambda r: r.received_at)
            return Seen(miss=f"no notification for {name} since {where}; the last one before "
                        f"{where} ({anchor - newest.received_at:.1f}s earlier) said firing and "
                        "none resolved it")
    else:
        # A resolution proves recovery only if this run's alert was notified firing: a stray
        # "resolved" (an earlier incident, a reloaded Alertmanager) proves nothing.
        fired = [r for r in mine if r.status == "firing" and r.received_at >= fired_since
                 and started_after(r, fired_since)]
        resolved = [r for r in fresh if r.status == "resolved"]
        ours = [r for r in resolved if started_after(r, fired_since)]
        if ours and fired:
            return Seen(ours[0])
        if ours:
            return Seen(miss=f"a {name} resolved notification arrived, but no firing one since "
                        "fault_start: it proves nothing")
        if resolved:
            old = resolved[0]
            assert old.starts_at is not None
            return Seen(miss=f"a {name} resolved notification arrived, but for an alert that "
                        f"started at {why.before(old.starts_at, fired_since, 'fault_start')}: "
                        "not this fault's")
    others = [r for r in rows if r.received_at >= anchor]
    if others:
        seen = ", ".join(f"{r.alertname} {r.status}" for r in others[:3])
        return Seen(miss=f"received instead: {seen}")
    return Seen(miss=f"no notification for {name} since {where}")


async def notification_check(check: NotificationCheck, ctx: CheckContext,
                             j: Judge) -> CheckResult:
    """A notification of a change after the anchor arrives in time (its arrival time counts)."""
    backend = ctx.notifications
    if backend is None:
        return j.result("skipped", "no notifications backend configured")
    anchor = j.anchor_time()
    if anchor is None:
        return j.result("skipped", f"anchor {check.anchor} did not happen")
    deadline_at = anchor + check.deadline_s
    fired_since = ctx.anchors.fault_start or min(ctx.anchors.phase_start.values(),
                                                 default=anchor)
    rows: list[Notification] = []

    async def observe() -> Seen[Notification]:
        nonlocal rows
        rows = await backend.notifications(
            check.alertname, min(anchor, fired_since) - NOTIFICATION_LOOKBACK_S)
        return _pick(rows, check, anchor, fired_since)

    out = await eventually(observe, timeout=deadline_at - time.time() + GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence: dict[str, Any] = {"backend": backend.kind, "alertname": check.alertname,
                                "status_wanted": check.status}
    if backend.kind == "sink":
        evidence["query"] = f"GET /api/notifications?alertname={check.alertname}"
    if out.found is not None:
        row = out.found
        latency = row.received_at - anchor
        evidence.update(receiver=row.where, labels=row.labels, received_at=row.received_at,
                        starts_at=row.starts_at)
        if row.link:
            evidence["link"] = row.link
        if latency > check.deadline_s:
            return j.result("fail", f"{check.alertname} {check.status} notification arrived "
                            f"late: {latency:.1f}s after {check.anchor} (deadline "
                            f"{check.deadline_s:g}s)", latency=latency, evidence=evidence)
        return j.result("pass", f"{check.alertname} {check.status} notification delivered "
                        f"{latency:.1f}s after {check.anchor}", latency=latency,
                        evidence=evidence)
    if out.error is not None:
        return j.result("error", f"could not look for notifications: {out.error}",
                        evidence=evidence)
    evidence["nearest_miss"] = out.last_miss
    if check.status == "resolved":
        notified = sorted({r.where for r in rows if r.status == "firing"
                           and r.received_at >= fired_since and r.where})
        reason = await why.why_not_resolved(ctx, check.alertname, check.labels, notified)
    else:
        reason = await why.why_not_notified(ctx, check.alertname, check.labels, anchor,
                                            check.anchor, backend.kind)
    if reason:
        evidence["why"] = reason
    return j.result("fail", f"no {check.alertname} {check.status} notification within "
                    f"{check.deadline_s:g}s of {check.anchor}; {out.last_miss}"
                    + (f"; {reason}" if reason else ""), evidence=evidence)
