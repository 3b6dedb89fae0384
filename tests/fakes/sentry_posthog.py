"""Fake PostHog (the HogQL query API, and the ``/batch/`` capture endpoint the server SDKs
post to) and fake Sentry incidents API (``/api/0/organizations/{org}/incidents/``)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

COLUMNS = ["uuid", "event", "timestamp", "created_at", "properties"]


def iso(ts: float) -> str:
    """PostHog's and Sentry's UTC time format (microseconds, ``Z``)."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class FakePostHog:
    """One project's events; the query API needs ``Authorization: Bearer <token>``.

    The fake runs a HogQLQuery the way readygate writes it: ``event = {event}``, an optional
    ``properties.$trace_id``/``properties.trace_id = {trace_id}`` and
    ``properties.request_id = {request_id}``, ``timestamp >= toDateTime({since})``, the
    values taken from the query's ``values`` (PostHog's placeholders). A query it cannot
    read answers 400 like PostHog's parser does. ``garbage`` makes it answer nonsense.
    """

    token: str
    project_id: str = "4242"
    events: list[dict[str, Any]] = field(default_factory=list)
    queries: list[dict[str, Any]] = field(default_factory=list)
    garbage: bool = False

    def add(self, event: str = "$exception", *, properties: dict[str, Any] | None = None,
            at: float | None = None, created_at: float | None = None) -> dict[str, Any]:
        """Store an event as PostHog would after ingestion (``created_at``: arrival)."""
        now = time.time()
        row = {"uuid": str(uuid.uuid4()), "event": event, "timestamp": iso(at or now),
               "created_at": iso(created_at or at or now), "properties": properties or {}}
        self.events.append(row)
        return row

    def _run(self, query: dict[str, Any]) -> list[list[Any]] | None:
        text, values = str(query.get("query", "")), query.get("values") or {}
        if query.get("kind") != "HogQLQuery" or not text.startswith("SELECT ") \
                or "FROM events" not in text:
            return None
        for name in re.findall(r"\{(\w+)\}", text):
            if name not in values:
                return None  # PostHog: an unknown placeholder is a query error
        since = dt.datetime.fromisoformat(values["since"].replace("Z", "+00:00")).timestamp()
        rows = []
        for e in self.events:
            props = e["properties"]
            if e["event"] != values["event"]:
                continue
            if dt.datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp() \
                    < since:
                continue
            if "trace_id" in values and values["trace_id"] not in (
                    props.get("$trace_id"), props.get("trace_id")):
                continue
            if "request_id" in values and props.get("request_id") != values["request_id"]:
                continue
            # HogQL answers the JSON properties column as its text
            rows.append([e["uuid"], e["event"], e["timestamp"], e["created_at"],
                         json.dumps(props)])
        return rows

    def app(self) -> Starlette:
        async def query(request: Request) -> Response:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return JSONResponse({"type": "authentication_error", "code": "not_authenticated",
                                     "detail": "Invalid personal API key.", "attr": None},
                                    status_code=401)
            if request.path_params["project_id"] != self.project_id:
                return JSONResponse({"type": "invalid_request", "code": "not_found",
                                     "detail": "Not found.", "attr": None}, status_code=404)
            if self.garbage:
                return Response("<html>upstream timeout</html>", status_code=200,
                                media_type="text/html")
            body = await request.json()
            self.queries.append(body)
            rows = self._run(body.get("query") or {})
            if rows is None:
                return JSONResponse({"type": "validation_error", "code": "query_error",
                                     "detail": "Unable to resolve the query", "attr": None},
                                    status_code=400)
            return JSONResponse({
                "cache_key": uuid.uuid4().hex, "is_cached": False, "columns": COLUMNS,
                "types": [["uuid", "UUID"], ["event", "String"],
                          ["timestamp", "DateTime64(6, 'UTC')"],
                          ["created_at", "DateTime64(6, 'UTC')"], ["properties", "String"]],
                "results": rows, "hasMore": False, "limit": 100, "offset": 0,
                "hogql": body["query"]["query"], "timezone": "UTC", "error": None,
                "query_status": None})

        async def batch(request: Request) -> Response:
            # posthog-python's /batch/: JSON {api_key, batch: [...]}, gzip when asked
            raw = await request.body()
            if request.headers.get("content-encoding") == "gzip":
                raw = gzip.decompress(raw)
            payload = json.loads(raw)
            for event in payload["batch"]:
                self.add(event["event"], properties=event.get("properties") or {})
            return JSONResponse({"status": 1})

        return Starlette(routes=[
            Route("/api/projects/{project_id}/query/", query, methods=["POST"]),
            Route("/batch/", batch, methods=["POST"]),
        ])


@dataclass
class FakeSentryIncidents:
    """An organization's metric-alert incidents (``Authorization: Bearer <token>``)."""

    token: str
    organization: str = "acme"
    incidents: list[dict[str, Any]] = field(default_factory=list)
    garbage: bool = False

    def open(self, rule: str, *, started: float, detected: float | None = None,
             project: str = "web") -> dict[str, Any]:
        """A metric alert rule's new incident, critical."""
        number = len(self.incidents) + 1
        incident = {"id": str(100 + number), "identifier": str(number), "organizationId": "1",
                    "projects": [project], "alertRule": {"id": "7", "name": rule,
                                                         "aggregate": "count()"},
                    "activities": None, "status": 20, "statusMethod": 3, "type": 2,
                    "title": rule, "dateStarted": iso(started),
                    "dateDetected": iso(detected if detected is not None else started),
                    "dateCreated": iso(detected if detected is not None else started),
                    "dateClosed": None}
        self.incidents.append(incident)
        return incident

    @staticmethod
    def close(incident: dict[str, Any], at: float) -> None:
        """Close it; Sentry truncates dateClosed to the minute."""
        closed = dt.datetime.fromtimestamp(at, dt.UTC).replace(second=0, microsecond=0)
        incident.update(status=2, dateClosed=closed.strftime("%Y-%m-%dT%H:%M:%SZ"))

    def app(self) -> Starlette:
        async def incidents(request: Request) -> Response:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return JSONResponse({"detail": "Invalid token"}, status_code=401)
            if request.path_params["org"] != self.organization:
                return JSONResponse({"detail": "The requested resource does not exist"},
                                    status_code=404)
            if self.garbage:
                return JSONResponse({"detail": "not a list"})
            start = request.query_params.get("start")
            since = dt.datetime.fromisoformat(start).replace(tzinfo=dt.UTC).timestamp() \
                if start else 0.0

            def closed_before(i: dict[str, Any]) -> bool:
                closed = i["dateClosed"]
                return closed is not None and dt.datetime.fromisoformat(
                    closed.replace("Z", "+00:00")).timestamp() < since
            rows = [i for i in self.incidents if not closed_before(i)]
            return JSONResponse(sorted(rows, key=lambda i: i["dateStarted"], reverse=True))

        return Starlette(routes=[Route("/api/0/organizations/{org}/incidents/", incidents)])
