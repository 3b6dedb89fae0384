"""Sentry's web API: a project's error events (``/api/0/projects/{org}/{project}/events/``) and
an organization's metric-alert incidents (``/api/0/organizations/{org}/incidents/``)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import httpx

from core.errors import BackendError
from core.times import rfc3339_seconds
from gates.backends.base import HttpBackend
from gates.backends.types import ErrorEvent, Notification

SENTRY_URL = "https://sentry.io"
_LOOKBACK_S = 3600.0


def _tags(event: dict[str, Any]) -> dict[str, str]:
    tags = event.get("tags") or []
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    return {str(t.get("key")): str(t.get("value")) for t in tags if isinstance(t, dict)}


class SentryErrors(HttpBackend):
    """A Sentry project's events, read with an auth token (scope ``project:read``)."""

    kind = "sentry"

    def __init__(self, base_url: str | None, client: httpx.AsyncClient, *, organization: str,
                 project: str, token: str | None, timeout_s: float = 5.0) -> None:
        super().__init__(base_url or SENTRY_URL, client, token=token, timeout_s=timeout_s)
        self.organization = organization
        self.project = project

    async def events(self, *, trace_id: str | None = None, request_id: str | None = None,
                     since: float | None = None) -> list[ErrorEvent]:
        start = since if since is not None else time.time() - _LOOKBACK_S
        body = await self.get_json(
            f"/api/0/projects/{self.organization}/{self.project}/events/",
            {"full": "true", "start": dt.datetime.fromtimestamp(start, dt.UTC)
             .strftime("%Y-%m-%dT%H:%M:%S"),
             "end": dt.datetime.fromtimestamp(time.time() + 60, dt.UTC)
             .strftime("%Y-%m-%dT%H:%M:%S")})
        if not isinstance(body, list):
            raise BackendError("sentry answered a malformed events list")
        out = []
        for e in body:
            if not isinstance(e, dict):
                continue
            tags = _tags(e)
            for entry in e.get("entries") or []:  # the API nests the request among entries
                if isinstance(entry, dict) and entry.get("type") == "request":
                    e = {**e, "request": e.get("request") or entry.get("data")}
            trace_ctx = (e.get("contexts") or {}).get("trace") or {}
            trace = trace_ctx.get("trace_id") or tags.get("trace") or tags.get("trace_id")
            event = ErrorEvent(
                event_id=str(e.get("eventID") or e.get("id")),
                message=str(e.get("message") or e.get("title") or ""),
                trace_id=str(trace).lower() if trace else None,
                request_id=tags.get("request_id"),
                received_at=rfc3339_seconds(e.get("dateReceived") or e.get("dateCreated")),
                level=tags.get("level"), service=tags.get("service"), raw=e)
            if (trace_id and event.trace_id != trace_id.lower()) or \
                    (request_id and event.request_id != request_id):
                continue
            # Sentry's dates have 1 s resolution: allow that much before ``since``
            if since is not None and event.received_at is not None and \
                    event.received_at < since - 1.0:
                continue
            out.append(event)
        return sorted(out, key=lambda ev: ev.received_at or 0)

    def link(self, event: ErrorEvent) -> str:
        """The event's page in Sentry."""
        return (f"{self.base_url}/organizations/{self.organization}/projects/{self.project}"
                f"/events/{event.event_id}/")


# Sentry's IncidentStatus: OPEN 1, CLOSED 2, WARNING 10, CRITICAL 20.
INCIDENT_CLOSED = 2
# The incidents API truncates dateClosed to the minute.
_CLOSED_RESOLUTION_S = 60.0


class SentryIncidents(HttpBackend):
    """Sentry metric alerts that fired, read from the incidents API (for users who route no
    Sentry webhook to ``readygate sink``): an incident of the alert rule named like the alert
    is a firing notification at ``dateDetected``, and a closed one a resolved notification."""

    kind = "sentry"

    def __init__(self, base_url: str | None, client: httpx.AsyncClient, *, organization: str,
                 token: str | None, project: str | None = None, timeout_s: float = 5.0) -> None:
        super().__init__(base_url or SENTRY_URL, client, token=token, timeout_s=timeout_s)
        self.organization = organization
        self.project = project

    async def notifications(self, alertname: str, since: float) -> list[Notification]:
        # `start` keeps incidents still open or closed after it (the API's own filter)
        params: dict[str, str] = {"start": dt.datetime.fromtimestamp(since - 60, dt.UTC)
                                  .strftime("%Y-%m-%dT%H:%M:%S"), "per_page": "100"}
        body = await self.get_json(f"/api/0/organizations/{self.organization}/incidents/",
                                   params)
        if not isinstance(body, list) or not all(isinstance(i, dict) for i in body):
            raise BackendError("sentry answered a malformed incidents list")
        now = time.time()
        out: list[Notification] = []
        for inc in body:
            rule = inc.get("alertRule") if isinstance(inc.get("alertRule"), dict) else {}
            name = str(rule.get("name") or inc.get("title") or "")
            projects = inc.get("projects") if isinstance(inc.get("projects"), list) else []
            if name != alertname or (self.project and self.project not in projects):
                continue
            started = rfc3339_seconds(inc.get("dateStarted"))
            detected = rfc3339_seconds(inc.get("dateDetected")) or started
            labels = {"alertname": name, "incident": str(inc.get("identifier") or inc.get("id")),
                      "projects": ",".join(str(p) for p in projects)}
            link = (f"{self.base_url}/organizations/{self.organization}/alerts/"
                    f"{inc.get('identifier')}/")
            if detected is not None and detected >= since:
                out.append(Notification(name, "firing", detected, labels, "sentry incidents",
                                        link, starts_at=started))
            closed = rfc3339_seconds(inc.get("dateClosed"))
            if inc.get("status") == INCIDENT_CLOSED and closed is not None \
                    and closed + _CLOSED_RESOLUTION_S >= since:
                # Closed some time in that minute, and no later than now: take the latest
                # time it can have been, so a late resolution is never read as on time.
                at = max(since, min(closed + _CLOSED_RESOLUTION_S, now))
                out.append(Notification(name, "resolved", at, labels, "sentry incidents", link,
                                        starts_at=started))
        return sorted(out, key=lambda n: n.received_at)
