"""Sentry alert webhooks (``POST /webhooks/sentry``) as notifications rows.

Three payloads Sentry sends to a webhook URL:

- metric alerts (an internal integration's alert action, header ``Sentry-Hook-Resource:
  metric_alert``): ``action`` is ``critical``, ``warning`` or ``resolved``; the incident is
  ``data.metric_alert`` and the rule ``data.metric_alert.alert_rule`` (its ``name`` is the
  alert name);
- issue alerts (``Sentry-Hook-Resource: event_alert``): ``action`` is ``triggered``, the rule
  ``data.triggered_rule``, the event ``data.event``; an issue alert never resolves;
- the legacy WebHooks plugin of issue alert rules: ``triggering_rules``, ``project_slug``,
  ``level``, ``url`` and the ``event``.

Other Sentry webhooks (installation, issue, comment, seer) carry no alert: they are accepted
and store nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sink.formats import BadPayload, Json, notification_row

RECEIVER = "sentry"
_METRIC_ACTIONS = {"critical": "firing", "warning": "firing", "resolved": "resolved"}


def _str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadPayload(f"sentry webhook {what} must be an object")
    return value


def _event_tags(event: Mapping[str, Any]) -> dict[str, str]:
    tags = event.get("tags")
    if isinstance(tags, Mapping):
        return {str(k): str(v) for k, v in tags.items()}
    out: dict[str, str] = {}
    for tag in tags if isinstance(tags, list) else []:
        if isinstance(tag, list | tuple) and len(tag) == 2:
            out[str(tag[0])] = str(tag[1])
        elif isinstance(tag, Mapping) and "key" in tag:
            out[str(tag["key"])] = str(tag.get("value"))
    return out


def _labels(**values: Any) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v not in (None, "", [])}


def _metric_alert(payload: Json, data: Mapping[str, Any], received_at: float) -> list[Json]:
    action = str(payload.get("action") or "")
    if action not in _METRIC_ACTIONS:
        raise BadPayload(f"sentry metric alert action {action!r} is not one of "
                         f"{', '.join(sorted(_METRIC_ACTIONS))}")
    incident = _obj(data.get("metric_alert"), "data.metric_alert")
    rule = _obj(incident.get("alert_rule"), "data.metric_alert.alert_rule")
    name = _str(rule.get("name")) or _str(incident.get("title"))
    if name is None:
        raise BadPayload("sentry metric alert names no alert rule")
    projects = incident.get("projects") or rule.get("projects") or []
    labels = _labels(source="sentry", kind="metric_alert",
                     severity=action if action != "resolved" else None,
                     projects=",".join(map(str, projects)) if isinstance(projects, list)
                     else projects, environment=rule.get("environment"),
                     incident=incident.get("identifier") or incident.get("id"))
    annotations = _labels(title=data.get("description_title"),
                          description=data.get("description_text"), web_url=data.get("web_url"))
    return [notification_row(
        received_at=received_at, receiver=RECEIVER, status=_METRIC_ACTIONS[action],
        alertname=name, labels=labels, annotations=annotations,
        starts_at=_str(incident.get("date_started")), ends_at=_str(incident.get("date_closed")),
        fingerprint=f"sentry-incident-{incident.get('id')}",
        payload={"action": action, "resource": "metric_alert"})]


def _issue_alert(payload: Json, data: Mapping[str, Any], received_at: float) -> list[Json]:
    event = _obj(data.get("event"), "data.event")
    issue_alert = _obj(data.get("issue_alert"), "data.issue_alert")
    name = _str(data.get("triggered_rule")) or _str(issue_alert.get("title"))
    if name is None:
        raise BadPayload("sentry issue alert names no triggered_rule")
    return [_issue_row(name, event, received_at, issue=event.get("issue_id"),
                       web_url=event.get("web_url"), resource="event_alert")]


def _issue_row(name: str, event: Mapping[str, Any], received_at: float, *, issue: Any,
               web_url: Any, resource: str, project: Any = None, level: Any = None) -> Json:
    tags = _event_tags(event)
    labels = _labels(source="sentry", kind="issue_alert", issue=issue,
                     level=level or event.get("level") or tags.get("level"),
                     project=project or event.get("project"),
                     environment=event.get("environment") or tags.get("environment"),
                     release=event.get("release") or tags.get("release"))
    annotations = _labels(title=event.get("title") or event.get("message"),
                          culprit=event.get("culprit"), web_url=web_url,
                          event_id=event.get("event_id"))
    # The alert began with the event that triggered it.
    when = event.get("datetime")
    if when is None and isinstance(event.get("timestamp"), str):
        when = event["timestamp"]
    return notification_row(
        received_at=received_at, receiver=RECEIVER, status="firing", alertname=name,
        labels=labels, annotations=annotations, starts_at=_str(when),
        fingerprint=f"sentry-issue-{issue}", payload={"resource": resource})


def _legacy_plugin(payload: Json, received_at: float) -> list[Json]:
    rules = payload.get("triggering_rules")
    if not isinstance(rules, list):
        raise BadPayload("sentry webhook triggering_rules must be a list")
    event = _obj(payload.get("event"), "event")
    names = [str(r) for r in rules if r not in (None, "")] or \
        [str(payload.get("message") or payload.get("culprit") or "Sentry issue")]
    return [_issue_row(name, event, received_at, issue=payload.get("id"),
                       web_url=payload.get("url"), resource="webhooks_plugin",
                       project=payload.get("project_slug") or payload.get("project"),
                       level=payload.get("level")) for name in names]


def sentry_rows(payload: Json, received_at: float) -> list[Json]:
    """Notifications rows of a Sentry webhook: metric alerts fire and resolve, issue alerts
    fire; a Sentry webhook about something else stores nothing."""
    if "triggering_rules" in payload:
        return _legacy_plugin(payload, received_at)
    if "action" not in payload or "data" not in payload:
        raise BadPayload("not a Sentry webhook: no action and data, nor triggering_rules")
    data = _obj(payload.get("data"), "data")
    if "metric_alert" in data:
        return _metric_alert(payload, data, received_at)
    if "event" in data and ("triggered_rule" in data or "issue_alert" in data):
        return _issue_alert(payload, data, received_at)
    return []
