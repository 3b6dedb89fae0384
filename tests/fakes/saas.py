"""Fake Slack Web API (``conversations.history``), PagerDuty REST (``/incidents``) and
Sentry web API (``/api/0/projects/{org}/{project}/events/``)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeSlack:
    """Channels of messages; requires ``Authorization: Bearer <token>`` like Slack."""

    token: str
    channels: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def post(self, channel: str, text: str = "", *, attachments: list[dict[str, Any]] |
             None = None, ts: float | None = None) -> dict[str, Any]:
        """Store a message as Alertmanager's slack_configs would post it."""
        message = {"type": "message", "user": "U0ALERTMGR", "text": text,
                   "ts": f"{ts or time.time():.6f}", **({"attachments": attachments}
                                                         if attachments else {})}
        self.channels.setdefault(channel, []).append(message)
        return message

    def app(self) -> Starlette:
        async def history(request: Request) -> Response:
            form = await request.form()
            params = {**request.query_params, **{k: str(v) for k, v in form.items()}}
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return JSONResponse({"ok": False, "error": "invalid_auth"})
            channel = params.get("channel", "")
            if channel not in self.channels:
                return JSONResponse({"ok": False, "error": "channel_not_found"})
            oldest = float(params.get("oldest") or 0)
            messages = [m for m in self.channels[channel] if float(m["ts"]) >= oldest]
            return JSONResponse({"ok": True, "messages": list(reversed(messages)),
                                 "has_more": False, "pin_count": 0,
                                 "response_metadata": {"next_cursor": ""}})

        return Starlette(routes=[Route("/conversations.history", history,
                                       methods=["POST", "GET"])])


@dataclass
class FakePagerDuty:
    """Incidents; requires ``Authorization: Token token=<token>`` like PagerDuty."""

    token: str
    incidents: list[dict[str, Any]] = field(default_factory=list)

    def trigger(self, title: str, *, at: float | None = None,
                service_id: str = "PSVC1") -> dict[str, Any]:
        number = len(self.incidents) + 1
        incident = {"id": f"Q{number:04d}", "type": "incident", "incident_number": number,
                    "title": title, "status": "triggered", "created_at": iso(at or time.time()),
                    "html_url": f"https://example.pagerduty.com/incidents/Q{number:04d}",
                    "service": {"id": service_id, "type": "service_reference",
                                "summary": "web"}, "urgency": "high"}
        self.incidents.append(incident)
        return incident

    def resolve(self, incident: dict[str, Any], at: float | None = None) -> None:
        incident.update(status="resolved", resolved_at=iso(at or time.time()),
                        last_status_change_at=iso(at or time.time()))

    def app(self) -> Starlette:
        async def incidents(request: Request) -> Response:
            if request.headers.get("authorization") != f"Token token={self.token}":
                return JSONResponse({"error": {"message": "Unauthorized", "code": 2006}},
                                    status_code=401)
            q = request.query_params
            since = dt.datetime.fromisoformat(q["since"]).timestamp() if "since" in q else 0
            statuses = q.getlist("statuses[]")
            services = q.getlist("service_ids[]")
            rows = [i for i in self.incidents
                    if dt.datetime.fromisoformat(i["created_at"].replace("Z", "+00:00"))
                    .timestamp() >= since - 1
                    and (not statuses or i["status"] in statuses)
                    and (not services or i["service"]["id"] in services)]
            return JSONResponse({"incidents": rows, "limit": 100, "offset": 0, "more": False,
                                 "total": None})

        return Starlette(routes=[Route("/incidents", incidents)])


@dataclass
class FakeSentry:
    """Events of one project; requires ``Authorization: Bearer <token>``."""

    token: str
    organization: str = "acme"
    project: str = "web"
    events: list[dict[str, Any]] = field(default_factory=list)

    def capture(self, message: str, *, trace_id: str | None = None,
                request_id: str | None = None, user: dict[str, Any] | None = None,
                request: dict[str, Any] | None = None, at: float | None = None) -> dict[str, Any]:
        """Store an event in the shape ``GET .../events/?full=true`` lists it."""
        event_id = uuid.uuid4().hex
        tags = [{"key": "level", "value": "error"}]
        if trace_id:
            tags.append({"key": "trace", "value": trace_id})
        if request_id:
            tags.append({"key": "request_id", "value": request_id})
        event = {"id": event_id, "eventID": event_id, "groupID": "1", "title": message,
                 "message": message, "dateCreated": iso(at or time.time()),
                 "dateReceived": iso(at or time.time()), "event.type": "error",
                 "platform": "python", "tags": tags, "user": user,
                 "contexts": {"trace": {"trace_id": trace_id, "type": "trace"}}
                 if trace_id else {},
                 "entries": [{"type": "request", "data": request}] if request else []}
        self.events.append(event)
        return event

    def app(self) -> Starlette:
        async def events(request: Request) -> Response:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return JSONResponse({"detail": "Invalid token"}, status_code=401)
            p = request.path_params
            if (p["org"], p["project"]) != (self.organization, self.project):
                return JSONResponse({"detail": "The requested resource does not exist"},
                                    status_code=404)
            start = request.query_params.get("start")
            since = dt.datetime.fromisoformat(start + "+00:00").timestamp() if start else 0
            rows = [e for e in self.events
                    if dt.datetime.fromisoformat(e["dateCreated"].replace("Z", "+00:00"))
                    .timestamp() >= since - 1]
            return JSONResponse(list(reversed(rows)))

        return Starlette(routes=[Route("/api/0/projects/{org}/{project}/events/", events)])
