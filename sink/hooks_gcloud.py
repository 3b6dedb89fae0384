"""Cloud Monitoring webhook notifications (``POST /webhooks/gcloud``, schema version 1.2).

A webhook notification channel posts ``{"version": "1.2", "incident": {...}}`` when an
incident opens and again when it closes. Each becomes one notifications row: the alert's
name is the policy's display name (``policy_name``), ``state`` open is "firing" and closed
is "resolved", ``started_at``/``ended_at`` (unix seconds) become RFC 3339 times, and the
incident id is the row's fingerprint (gates/backends/gcloud/alerts.py pairs them by it).
Labels: the monitored resource's, the metric's and the policy's user labels, plus
``condition``, ``resource_type``, ``metric_type`` and ``severity`` where given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from core.times import rfc3339, rfc3339_seconds
from sink.formats import BadPayload, Json, notification_row

RECEIVER = "gcloud"
_STATES = {"open": "firing", "acknowledged": "firing", "closed": "resolved"}


def _time(value: Any, what: str) -> str | None:
    """Unix seconds (Cloud Monitoring's form; RFC 3339 accepted too) as RFC 3339 UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            seconds = rfc3339_seconds(value)
            if seconds is None:
                raise BadPayload(f"incident {what} is not a time: {value[:40]!r}") from None
            return rfc3339(seconds)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadPayload(f"incident {what} is not a time")
    return rfc3339(float(value))


def _labels(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadPayload(f"incident {what} must be an object")
    return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}


def incident_rows(payload: Json, received_at: float) -> list[Json]:
    """One notifications row for the webhook's incident."""
    incident = payload.get("incident")
    if not isinstance(incident, Mapping):
        raise BadPayload("Cloud Monitoring webhook payload has no incident object")
    policy = incident.get("policy_name")
    incident_id = incident.get("incident_id")
    state = str(incident.get("state") or "").lower()
    if not isinstance(policy, str) or not policy:
        raise BadPayload("incident has no policy_name")
    if not isinstance(incident_id, str) or not incident_id:
        raise BadPayload("incident has no incident_id")
    if state not in _STATES:
        raise BadPayload(f"incident state {incident.get('state')!r} is not open or closed")
    resource = incident.get("resource")
    metric = incident.get("metric")
    metadata = incident.get("metadata")
    labels = {
        **_labels(resource.get("labels") if isinstance(resource, Mapping) else None,
                  "resource.labels"),
        **_labels(metric.get("labels") if isinstance(metric, Mapping) else None,
                  "metric.labels"),
        **_labels(metadata.get("user_labels") if isinstance(metadata, Mapping) else None,
                  "metadata.user_labels"),
        **_labels(incident.get("policy_user_labels"), "policy_user_labels")}
    extra = {"condition": incident.get("condition_name"),
             "resource_type": resource.get("type") if isinstance(resource, Mapping) else None,
             "metric_type": metric.get("type") if isinstance(metric, Mapping) else None,
             "severity": incident.get("severity")}
    labels.update({k: str(v) for k, v in extra.items() if isinstance(v, str) and v})
    documentation = incident.get("documentation")
    doc = documentation.get("content") if isinstance(documentation, Mapping) else documentation
    annotations = {k: str(v) for k, v in (("summary", incident.get("summary")),
                                          ("url", incident.get("url")),
                                          ("documentation", doc),
                                          ("observed_value", incident.get("observed_value")),
                                          ("threshold_value", incident.get("threshold_value")))
                   if v not in (None, "")}
    return [notification_row(
        received_at=received_at, receiver=RECEIVER, status=_STATES[state], alertname=policy,
        labels=labels, annotations=annotations,
        starts_at=_time(incident.get("started_at"), "started_at"),
        ends_at=_time(incident.get("ended_at"), "ended_at"), fingerprint=incident_id,
        payload={"version": payload.get("version"), "incident_id": incident_id,
                 "scoping_project_id": incident.get("scoping_project_id"),
                 "state": state})]
