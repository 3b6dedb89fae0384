"""Grafana's webhook contact point (Grafana 9+ alerting) -> notifications rows.

Point a webhook contact point at ``<sink>/webhooks/grafana``. Its body is Alertmanager's
webhook payload (``receiver``, ``status``, ``alerts[]`` with ``labels``, ``annotations``,
``startsAt``, ``endsAt``, ``fingerprint``) plus Grafana's own fields (``orgId``,
``title``, ``state``, ``message``; per alert ``values``, ``dashboardURL``, ``panelURL``,
``silenceURL``), as Grafana's "Configure the webhook notifier" page documents it. Every
alert becomes one row; the body's other fields are kept in ``payload``. Legacy (Grafana 8
dashboard) alerting's body (``ruleName``, ``evalMatches``, no ``alerts[]``) is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sink.formats import BadPayload, Json, notification_row

_STATUSES = ("firing", "resolved")


def _strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadPayload(f"grafana webhook: {what} must be an object")
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def grafana_rows(payload: Json, received_at: float) -> list[Json]:
    """One notifications row per alert of a Grafana webhook contact point's body."""
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        if "ruleName" in payload or "evalMatches" in payload:
            raise BadPayload("grafana webhook: legacy alerting's body (ruleName, evalMatches); "
                             "readygate reads Grafana 9+ alerting's webhook (alerts[])")
        raise BadPayload("grafana webhook payload has no alerts[] list")
    receiver = _text(payload.get("receiver")) or ""
    rest = {k: v for k, v in payload.items() if k != "alerts"}
    rows = []
    for alert in alerts:
        if not isinstance(alert, Mapping):
            raise BadPayload("grafana webhook: every alert must be an object")
        labels = _strings(alert.get("labels"), "alert labels")
        alertname = labels.get("alertname")
        if not alertname:
            raise BadPayload("grafana webhook: an alert without labels.alertname")
        status = _text(alert.get("status") or payload.get("status"))
        if status not in _STATUSES:
            raise BadPayload(f"grafana webhook: alert status {status!r} is neither firing nor "
                             "resolved")
        rows.append(notification_row(
            received_at=received_at, receiver=receiver, status=status, alertname=alertname,
            labels=labels, annotations=_strings(alert.get("annotations"), "alert annotations"),
            starts_at=_text(alert.get("startsAt")), ends_at=_text(alert.get("endsAt")),
            fingerprint=_text(alert.get("fingerprint")), payload=rest))
    return rows
