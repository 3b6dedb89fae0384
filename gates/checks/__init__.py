"""Checks with deadlines: each one looks for a signal and ends pass / fail / error.

An absent signal is a ``fail``; "could not look" (backend down, bad query) is an
``error``; neither is ever a ``pass``. A signal that arrives after its deadline fails as
late, with its arrival time. Every result carries the measured latency from its anchor,
the deadline, the evidence and, on failure, the nearest miss. One module per signal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from core.errors import BackendError
from gates.checks.alerts import (
    alert_check,
    alert_not_silenced_check,
    alert_resolves_check,
    alert_rule_check,
    no_alert_check,
    notification_check,
)
from gates.checks.common import Judge
from gates.checks.dashboards import dashboard_check
from gates.checks.errors import error_event_check, pii_scrubbed_check
from gates.checks.gcloud_policies import alert_policy_check
from gates.checks.hygiene import hygiene_check
from gates.checks.logs import (
    log_budget_check,
    log_fields_check,
    log_levels_check,
    logs_check,
    secret_leak_check,
)
from gates.checks.metrics import counter_increases_check, metric_check, metric_contract_check
from gates.checks.probe import health_check, probe_check
from gates.checks.slo import slo_check
from gates.checks.traces import trace_attributes_check, trace_check, trace_error_span_check
from gates.config import Check
from gates.context import CheckContext
from reports.model import CheckResult

RUNNERS: dict[str, Callable[[Any, CheckContext, Judge], Awaitable[CheckResult]]] = {
    "alert": alert_check,
    "notification": notification_check,
    "no_alert": no_alert_check,
    "alert_rule": alert_rule_check,
    "alert_resolves": alert_resolves_check,
    "alert_not_silenced": alert_not_silenced_check,
    "alert_policy": alert_policy_check,
    "trace": trace_check,
    "trace_error_span": trace_error_span_check,
    "trace_attributes": trace_attributes_check,
    "logs": logs_check,
    "log_fields": log_fields_check,
    "log_levels": log_levels_check,
    "log_budget": log_budget_check,
    "secret_leak": secret_leak_check,
    "metric": metric_check,
    "metric_contract": metric_contract_check,
    "counter_increases": counter_increases_check,
    "error_event": error_event_check,
    "pii_scrubbed": pii_scrubbed_check,
    "probe": probe_check,
    "health": health_check,
    "slo": slo_check,
    "dashboard": dashboard_check,
}
"""Signal name -> the coroutine that judges it (every signal of the config's Check union)."""

MULTI_RUNNERS: dict[str, Callable[[Any, CheckContext, Judge], Awaitable[list[CheckResult]]]] = {
    "hygiene": hygiene_check,
}
"""Signals whose one config check ends in several results (e.g. the four hygiene checks)."""

_WORST = {"fail": 0, "error": 1, "skipped": 2, "pass": 3}


async def judge(check: Check, ctx: CheckContext, phase: str) -> CheckResult:
    """Run one check to its verdict. Never raises for the system's or a backend's faults.

    A check with several results (``hygiene``) answers its worst critical one here; the
    scenario runner uses :func:`judge_all` to keep every result.
    """
    if check.signal in MULTI_RUNNERS:
        results = await judge_all(check, ctx, phase)
        blocking = [r for r in results if r.severity == "critical"] or results
        return min(blocking, key=lambda r: _WORST[r.status])
    j = Judge(check, ctx, phase)
    try:
        return await RUNNERS[check.signal](check, ctx, j)
    except BackendError as exc:
        return j.result("error", f"could not look: {exc}")


async def judge_all(check: Check, ctx: CheckContext, phase: str) -> list[CheckResult]:
    """Every result of one check (one for most signals, several for ``hygiene``)."""
    if check.signal not in MULTI_RUNNERS:
        return [await judge(check, ctx, phase)]
    j = Judge(check, ctx, phase)
    try:
        return await MULTI_RUNNERS[check.signal](check, ctx, j)
    except BackendError as exc:
        return [j.result("error", f"could not look: {exc}")]


__all__ = ["MULTI_RUNNERS", "RUNNERS", "Judge", "judge", "judge_all"]
