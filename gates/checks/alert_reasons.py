"""Why an alert signal is missing or proves nothing: the evidence behind the alert checks' words.

Two jobs. "Transitions, not states": tell whether an alert was already active at the
anchor (Prometheus' ``activeAt``, or ``ALERTS`` evaluated at the anchor's time). And name
the real reason a signal did not show: the rule never held, it is held by
``keep_firing_for``, the alert never reached Alertmanager, a silence or an inhibiting
alert suppressed it, the receiver has no integration or does not send resolutions.
Every helper answers ``None`` rather than guess when it could not look.
"""

from __future__ import annotations

import datetime as dt

from core.errors import BackendError
from core.times import rfc3339_seconds
from gates.backends.alertmanager import AlertmanagerClient, AmAlert, Receiver
from gates.backends.prometheus import ActiveAlert, AlertingRule, PrometheusClient
from gates.checks.common import fmt_labels, labels_match
from gates.context import CheckContext


def iso(ts: float) -> str:
    """A unix time as UTC RFC 3339 (what Prometheus and Alertmanager show)."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def before(ts: float, anchor: float, anchor_name: str) -> str:
    """``'<time>, 12.3s before fault_start'``."""
    return f"{iso(ts)}, {anchor - ts:.1f}s before {anchor_name}"


def alert_key(labels: dict[str, str]) -> frozenset[tuple[str, str]]:
    """An alert's identity: its labels without the series-only ones of ``ALERTS``."""
    return frozenset((k, v) for k, v in labels.items() if k not in ("__name__", "alertstate"))


async def firing_at(prom: PrometheusClient, alertname: str, labels: dict[str, str],
                    at: float) -> set[frozenset[tuple[str, str]]]:
    """The alerts (by label set) that were firing at unix time ``at``, from ``ALERTS``."""
    matchers = ",".join([f'alertname="{alertname}"', 'alertstate="firing"',
                         *(f'{k}="{v}"' for k, v in sorted(labels.items()))])
    return {alert_key(s.labels) for s in await prom.query_at(f"ALERTS{{{matchers}}}", at)}


def active_before(alert: ActiveAlert | AmAlert, anchor: float) -> float | None:
    """When the alert became active, if that was before ``anchor`` (else None)."""
    since = rfc3339_seconds(alert.active_at if isinstance(alert, ActiveAlert) else alert.starts_at)
    return since if since is not None and since < anchor else None


async def rule_named(prom: PrometheusClient, name: str) -> AlertingRule | None:
    """The loaded alerting rule called ``name`` (None if there is none or we could not look)."""
    try:
        return next((r for r in await prom.alerting_rules() if r.name == name), None)
    except BackendError:
        return None


def duration(seconds: float) -> str:
    """``90`` -> ``1m30s``, as rule files write durations."""
    s = round(seconds)
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if v) \
        or "0s"


async def why_no_alert(ctx: CheckContext, alertname: str) -> str | None:
    """Name the defect when the rule itself is missing or broken."""
    assert ctx.prometheus is not None
    try:
        rules = await ctx.prometheus.alerting_rules()
    except BackendError:
        return None
    named = [r for r in rules if r.name == alertname]
    if not named:
        return f"no alerting rule named {alertname} is loaded in Prometheus"
    bad = [r for r in named if r.health not in (None, "ok", "unknown")]
    if bad:
        return f"rule {alertname} is unhealthy: {bad[0].last_error or bad[0].health}"
    rule = named[0]
    expr = rule.expr()
    if not expr:
        return None
    try:
        holds = bool(await ctx.prometheus.query(rule.query))
    except BackendError:
        holds = False
    if holds:  # late, not missing: it holds now, the alert did not fire in time
        return (f"rule {alertname}'s condition holds now, but the alert was not firing by the "
                f"deadline (for: {duration(rule.for_s)}): {expr}")
    # Loaded and healthy, yet silent under the fault: its condition never held (a threshold
    # it cannot reach, a label that does not exist). Show the expression that stayed false.
    return f"rule {alertname} is loaded and healthy but its condition never held during the " \
        f"fault: {expr}"


async def why_still_active(prom: PrometheusClient, alerts: list[ActiveAlert],
                           alertname: str) -> str | None:
    """Why a resolution did not come: ``keep_firing_for`` holds it, or its condition holds."""
    rule = await rule_named(prom, alertname)
    held = next((a for a in alerts if a.keep_firing_since), None)
    if held is not None:
        keep = f"keep_firing_for: {duration(rule.keep_firing_for_s)}" if rule is not None \
            and rule.keep_firing_for_s else "keep_firing_for"
        return (f"its condition stopped holding at {held.keep_firing_since}, but the rule's "
                f"{keep} keeps it firing")
    if rule is None:
        return None
    try:
        now = await prom.query(rule.query)
    except BackendError:
        return None
    if now:
        return f"its condition still holds: {rule.expr()}"
    if rule.keep_firing_for_s:
        return f"the rule's keep_firing_for: {duration(rule.keep_firing_for_s)} keeps it firing"
    return None


async def describe_suppression(am: AlertmanagerClient, alert: AmAlert) -> str | None:
    """``silenced by <id> (...)`` or ``inhibited by <source alert>``; None if neither."""
    if alert.silenced_by:
        sid = alert.silenced_by[0]
        try:
            silence = await am.silence(sid)
        except BackendError:
            return f"{alert.describe()} is silenced by silence {sid}"
        return (f"{alert.describe()} is silenced by silence {sid} (created by "
                f"{silence.get('createdBy', '?')}: {silence.get('comment', '')!r}, until "
                f"{silence.get('endsAt')})")
    if alert.inhibited_by:
        try:
            by_fp = {a.fingerprint: a for a in await am.alerts() if a.fingerprint}
        except BackendError:
            by_fp = {}
        sources = [by_fp[fp].describe() if fp in by_fp else f"the alert with fingerprint {fp}"
                   for fp in alert.inhibited_by]
        return f"{alert.describe()} is inhibited by {', '.join(sources)} (an inhibit rule)"
    return None


async def _receivers(am: AlertmanagerClient) -> dict[str, Receiver] | None:
    try:
        return await am.receivers()
    except BackendError:
        return None


def _named(names: list[str], receivers: dict[str, Receiver] | None) -> str:
    def one(name: str) -> str:
        r = receivers.get(name) if receivers else None
        return f"{name} ({', '.join(r.integrations)})" if r and r.integrations else name
    return ", ".join(one(n) for n in names) or "none"


async def not_in_alertmanager(ctx: CheckContext, alertname: str,
                              labels: dict[str, str]) -> str:
    """Why Alertmanager does not hold the alert: not firing, or Prometheus did not send it."""
    want = f"{alertname}{fmt_labels(labels) if labels else ''}"
    prom = ctx.prometheus
    if prom is None:
        return f"alert {want} is not in Alertmanager"
    try:
        firing = [a for a in await prom.alerts() if a.name == alertname
                  and a.state == "firing" and labels_match(a.labels, labels)]
    except BackendError:
        return f"alert {want} is not in Alertmanager"
    if not firing:
        return (f"alert {want} is not firing in Prometheus, so nothing was sent to "
                "Alertmanager")
    try:
        managers = await prom.alertmanagers()
    except BackendError:
        managers = []
    return (f"alert {firing[0].describe()} is firing in Prometheus but has not reached "
            "Alertmanager: Prometheus sends alerts to "
            + (", ".join(managers) if managers else "no Alertmanager at all"))


async def why_not_notified(ctx: CheckContext, alertname: str, labels: dict[str, str],
                           anchor: float, anchor_name: str, backend_kind: str) -> str | None:
    """Where Alertmanager took the alert when its firing notification did not arrive."""
    am = ctx.alertmanager
    if am is None:
        return None
    try:
        held = [a for a in await am.alerts(alertname) if labels_match(a.labels, labels)]
    except BackendError:
        return None
    if not held:
        return await not_in_alertmanager(ctx, alertname, labels)
    active = [a for a in held if a.state == "active"]
    if not active:
        suppressed = next((a for a in held if a.state == "suppressed"), None)
        why = await describe_suppression(am, suppressed) if suppressed is not None else None
        return why or f"{held[0].describe()} is in Alertmanager but not processed yet"
    alert = active[0]
    since = active_before(alert, anchor)
    if since is not None:
        return (f"Alertmanager has held {alert.describe()} since "
                f"{before(since, anchor, anchor_name)}: it was already firing, so the fault "
                "brought no new notification")
    receivers = await _receivers(am)
    silent = [n for n in alert.receivers if receivers is not None and n in receivers
              and not receivers[n].integrations]
    if alert.receivers and len(silent) == len(alert.receivers):
        return (f"Alertmanager routed {alert.describe()} to receiver {', '.join(silent)}, which "
                "has no integration: it notifies nobody")
    return (f"Alertmanager holds {alert.describe()} and routed it to receiver(s) "
            f"{_named(alert.receivers, receivers)}, but nothing arrived at the {backend_kind} "
            "notifications backend: does that integration point there?")


async def why_not_resolved(ctx: CheckContext, alertname: str, labels: dict[str, str],
                           receivers_notified: list[str]) -> str | None:
    """Why no resolved notification came although the firing one did."""
    if ctx.prometheus is not None:
        try:
            active = [a for a in await ctx.prometheus.alerts()
                      if a.name == alertname and labels_match(a.labels, labels)]
        except BackendError:
            active = []
        if active:
            why = await why_still_active(ctx.prometheus, active, alertname)
            return (f"alert {active[0].describe()} is still active in Prometheus (since "
                    f"{active[0].active_at})" + (f": {why}" if why else ""))
    am = ctx.alertmanager
    if am is None:
        return None
    receivers = await _receivers(am)
    known = [receivers[n] for n in receivers_notified if receivers and n in receivers]
    mute = [r for r in known if r.integrations and not r.sends_resolved]
    if known and len(mute) == len(known):
        return (f"receiver {', '.join(r.name for r in mute)} does not send resolved "
                f"notifications (its {', '.join(mute[0].integrations)} integration has "
                "send_resolved: false)")
    try:
        still = [a for a in await am.alerts(alertname) if labels_match(a.labels, labels)]
    except BackendError:
        still = []
    if still:
        return f"Alertmanager still holds {still[0].describe()} (since {still[0].starts_at})"
    return None
