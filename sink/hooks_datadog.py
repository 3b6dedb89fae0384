"""Datadog webhooks (``POST /webhooks/datadog``) as notifications rows.

Datadog's Webhooks integration posts a payload the user writes, with ``$VARIABLES`` that
Datadog fills in. readygate reads this one (docs/backends.md shows where to paste it)::

    {"id": "$ID", "monitor_id": "$ALERT_ID", "title": "$ALERT_TITLE",
     "transition": "$ALERT_TRANSITION", "date": "$DATE", "scope": "$ALERT_SCOPE",
     "tags": "$TAGS", "cycle_key": "$ALERT_CYCLE_KEY", "priority": "$ALERT_PRIORITY",
     "link": "$LINK"}

``title`` is ``[Triggered on {host:web-1}] <monitor name>``: the monitor name after the
transition (and priority) prefix is the alert name; an ``alertname`` key, when written,
wins. ``Triggered`` is a firing notification that started at ``date`` (epoch
milliseconds), ``Recovered`` a resolved one; other transitions (``Warn``, ``No Data``,
``Re-Triggered``, ``Renotify``, ...) are not a new alert nor its end, and are not stored.
The labels are the scope's and the tags' ``key:value`` pairs, and ``monitor_id``.
"""

from __future__ import annotations

import re
from typing import Any

from core.times import rfc3339
from sink.formats import BadPayload, Json, notification_row

RECEIVER = "datadog"
_STATUS = {"Triggered": "firing", "Recovered": "resolved"}
# "[P1] [Triggered on {host:web-1,env:prod}] " before the monitor's name
_PREFIX = re.compile(r"^\s*(?:\[P[1-5]\]\s*)?\[(?:Re-)?(?:Triggered|Recovered|Warn|No Data|"
                     r"Renotify|Warn Recovered|No Data Recovered)(?: on \{[^}]*\})?\]\s*")
_UNFILLED = re.compile(r"^\$[A-Z_]+$")


def _field(payload: Json, key: str, *, required: bool = False) -> str | None:
    value = payload.get(key)
    if value in (None, ""):
        if required:
            raise BadPayload(f"datadog webhook has no '{key}': use the payload template of "
                             "docs/backends.md")
        return None
    text = str(value)
    if _UNFILLED.match(text):
        # Datadog left the variable as written: the template or the notification is wrong
        if required:
            raise BadPayload(f"datadog webhook '{key}' is the unfilled variable {text}")
        return None
    return text


def _pairs(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        key, colon, value = item.strip().partition(":")
        if colon and key:
            out[key] = value
    return out


def _rfc3339(value: str | None) -> str | None:
    """``$DATE`` (epoch milliseconds, or seconds) as RFC 3339."""
    if value is None:
        return None
    try:
        at = float(value)
    except ValueError:
        raise BadPayload(f"datadog webhook date {value[:40]!r} is not an epoch time") from None
    seconds = at / 1000.0 if at > 1e11 else at
    return rfc3339(seconds)


def alertname_of(title: str) -> str:
    """The monitor's name in a notification title (the transition prefix removed)."""
    return _PREFIX.sub("", title, count=1).strip()


def datadog_rows(payload: Json, received_at: float) -> list[Json]:
    """One row for a Triggered or Recovered notification, none for other transitions."""
    transition = _field(payload, "transition", required=True)
    title = _field(payload, "title", required=True)
    assert transition is not None and title is not None
    status = _STATUS.get(transition.strip())
    if status is None:
        return []
    alertname = _field(payload, "alertname") or alertname_of(title)
    if not alertname:
        raise BadPayload(f"datadog webhook title {title[:80]!r} names no monitor")
    monitor_id = _field(payload, "monitor_id")
    scope = _field(payload, "scope")
    labels: dict[str, Any] = {**_pairs(_field(payload, "tags")), **_pairs(scope)}
    labels.update({k: v for k, v in (("monitor_id", monitor_id),
                                     ("priority", _field(payload, "priority"))) if v})
    at = _rfc3339(_field(payload, "date"))
    cycle = _field(payload, "cycle_key")
    return [notification_row(
        received_at=received_at, receiver=RECEIVER, status=status, alertname=alertname,
        labels=labels, annotations={"title": title, **({"link": link} if (
            link := _field(payload, "link")) else {})},
        starts_at=at if status == "firing" else None,
        ends_at=at if status == "resolved" else None,
        fingerprint=cycle or (f"{monitor_id}:{scope or '*'}" if monitor_id else None),
        payload={k: v for k, v in payload.items() if isinstance(k, str)})]
