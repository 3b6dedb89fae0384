"""``signal: alert_policy``: Cloud Monitoring alert policies are sound before a fault.

A policy named by display name must exist, be enabled and valid, notify at least one
notification channel that exists and is enabled (of each required type), carry
documentation, have the expected severity, and each metric threshold or absence
condition's filter must match time series written recently (``timeSeries.list``): a policy
over a misspelled metric never fires. Read through the gcloud alerts (or metrics) backend.
"""

from __future__ import annotations

import difflib
import time
from typing import TYPE_CHECKING, Any

from core.waiting import Seen, eventually
from gates.checks.common import GRACE_S, Judge
from gates.config import AlertPolicyCheck
from gates.context import CheckContext
from reports.model import CheckResult

if TYPE_CHECKING:  # Google's libraries load only when a gcloud backend is built
    from gates.backends.gcloud.monitoring import Channel, GcloudMonitoring, Policy


def policy_source(ctx: CheckContext) -> GcloudMonitoring | None:
    """The Cloud Monitoring API of the gcloud alerts or metrics backend, if one is set."""
    for backend in (ctx.alerts, ctx.metrics):
        monitoring = getattr(backend, "monitoring", None)
        if monitoring is None:
            continue
        # loaded already: a backend holding one was built from gates.backends.gcloud
        from gates.backends.gcloud.monitoring import GcloudMonitoring
        if isinstance(monitoring, GcloudMonitoring):
            return monitoring
    return None


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:g}h" if seconds >= 3600 else f"{seconds / 60:g}m"


def lint(policy: Policy, channels: dict[str, Channel], check: AlertPolicyCheck) -> list[str]:
    """What is wrong with one policy (empty: nothing the API shows)."""
    problems: list[str] = []
    if policy.enabled is False:
        problems.append("disabled")
    elif policy.enabled is None:
        problems.append("its enabled state is not reported")
    if policy.invalid:
        problems.append(f"invalid: {policy.invalid}")
    if not policy.conditions:
        problems.append("no conditions")
    if not policy.channels:
        problems.append("no notification channels: it would fire and notify nobody")
    usable = []
    for name in policy.channels:
        channel = channels.get(name)
        if channel is None:
            problems.append(f"notification channel {name} does not exist")
        elif channel.enabled is False:
            problems.append(f"notification channel {channel.display_name or name} "
                            f"({channel.type}) is disabled")
        else:
            usable.append(channel)
    problems += [f"no enabled {kind} notification channel" for kind in check.channel_types
                 if not any(c.type == kind for c in usable)]
    if check.require_documentation and not policy.documentation.strip():
        problems.append("no documentation: responders get no runbook")
    want = check.policy_severity
    if want and policy.severity.lower() != want:
        have = policy.severity.lower().replace("severity_unspecified", "no severity")
        problems.append(f"severity {have}, expected {want}")
    return problems


async def alert_policy_check(check: AlertPolicyCheck, ctx: CheckContext,
                             j: Judge) -> CheckResult:
    """Every named policy exists and is sound (see the module docstring)."""
    monitoring = policy_source(ctx)
    if monitoring is None:
        return j.result("error", "alert_policy reads Cloud Monitoring: set backends.alerts (or "
                        "backends.metrics) to kind gcloud")
    anchor = j.anchor_time() or time.time()
    evidence: dict[str, Any] = {"query": "alertPolicies.list, notificationChannels.list"
                                + (", timeSeries.list" if check.data_lookback_s else ""),
                                "policies": check.policies}

    async def stale_conditions(policy: Policy) -> list[str]:
        if check.data_lookback_s is None:
            return []
        now = time.time()
        out = []
        for cond in policy.conditions:
            if cond.kind in ("threshold", "absent") and cond.filter and \
                    not await monitoring.has_series(cond.filter, now - check.data_lookback_s,
                                                    now):
                out.append(f"condition {cond.display_name or cond.name!r} matches no time "
                           f"series written in the last {_duration(check.data_lookback_s)} "
                           f"({cond.filter})")
        return out

    async def observe() -> Seen[list[Policy]]:
        policies = await monitoring.policies()
        channels = await monitoring.channels() if any(p.channels for p in policies) else {}
        problems: list[str] = []
        found: list[Policy] = []
        for name in check.policies:
            named = [p for p in policies if p.display_name == name]
            if not named:
                names = sorted({p.display_name for p in policies})
                close = difflib.get_close_matches(name, names, n=2, cutoff=0.5)
                problems.append(f"no alert policy named {name!r} in project "
                                f"{monitoring.project}" + (f" (similar: {', '.join(close)})"
                                                           if close else
                                                           f" ({len(names)} policies)"))
            for policy in named:
                wrong = lint(policy, channels, check) + await stale_conditions(policy)
                problems += [f"policy {name!r}: {what}" for what in wrong]
                found.append(policy)
        if problems:
            return Seen(miss="; ".join(problems))
        return Seen(found)

    out = await eventually(observe, timeout=j.remaining(anchor) + GRACE_S,
                           interval=max(ctx.poll_interval_s, 0.25))

    def passed(found: list[Policy], latency: float) -> str:
        evidence.update(project=monitoring.project, found=[
            {"name": p.name, "display_name": p.display_name, "severity": p.severity,
             "channels": len(p.channels), "conditions": [c.kind for c in p.conditions]}
            for p in found])
        return (f"{len(found)} alert polic{'y' if len(found) == 1 else 'ies'} enabled, "
                "notifying enabled channels" + (", documented" if check.require_documentation
                                                 else "")
                + (", over metrics with data" if check.data_lookback_s else ""))

    result = j.settle(out, anchor=anchor, evidence=evidence, what="sound alert policies",
                      passed=passed, latency_of=lambda _: 0.0)
    if result.status == "fail" and out.last_miss:  # the defects are the message
        evidence["nearest_miss"] = out.last_miss
        return j.result("fail", out.last_miss, evidence=evidence)
    return result
