"""PostHog's query API: ``$exception`` events (or any named event) by trace or request id.

``POST /api/projects/{project_id}/query/`` with a ``HogQLQuery`` (a personal API key with
the ``query:read`` scope). The ids and times go in the query's ``values`` and are referenced
as ``{placeholders}``, never spliced into the HogQL text. The trace id is read from the
``$trace_id`` property (PostHog's SDKs set it from the active OpenTelemetry span) or a plain
``trace_id`` property; the request id from ``request_id``. An event's arrival time is its
``created_at`` (when PostHog ingested it), else its client ``timestamp``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from core.errors import BackendError
from core.times import rfc3339, rfc3339_seconds
from gates.backends.base import HttpBackend
from gates.backends.types import ErrorEvent

POSTHOG_URL = "https://us.posthog.com"
EXCEPTION_EVENT = "$exception"
_LOOKBACK_S = 3600.0
_LIMIT = 200
_COLUMNS = ("uuid", "event", "timestamp", "created_at", "properties")


def _exception(properties: dict[str, Any]) -> tuple[str | None, str | None]:
    listed = properties.get("$exception_list")
    if isinstance(listed, list) and listed and isinstance(listed[0], dict):
        first = listed[0]  # PostHog lists the caught (outermost) exception first
        return (str(first["type"]) if first.get("type") else None,
                str(first["value"]) if first.get("value") else None)
    kind, value = properties.get("$exception_type"), properties.get("$exception_message")
    return (str(kind) if kind else None, str(value) if value else None)


class PostHogErrors(HttpBackend):
    """A PostHog project's events of one name (``$exception`` by default), by trace or
    request id, read through the HogQL query API."""

    kind = "posthog"

    def __init__(self, base_url: str | None, client: httpx.AsyncClient, *, project_id: str,
                 token: str | None, event: str = EXCEPTION_EVENT, timeout_s: float = 5.0) -> None:
        super().__init__(base_url or POSTHOG_URL, client, token=token, timeout_s=timeout_s)
        self.project_id = project_id
        self.event = event

    def hogql(self, *, trace_id: str | None, request_id: str | None) -> str:
        """The HogQL the look runs (values stay in placeholders)."""
        where = ["event = {event}", "timestamp >= toDateTime({since})"]
        if trace_id:
            where.append("(properties.$trace_id = {trace_id} OR properties.trace_id = {trace_id})")
        if request_id:
            where.append("properties.request_id = {request_id}")
        return (f"SELECT {', '.join(_COLUMNS)} FROM events WHERE {' AND '.join(where)} "
                f"ORDER BY timestamp ASC LIMIT {_LIMIT}")

    async def events(self, *, trace_id: str | None = None, request_id: str | None = None,
                     since: float | None = None) -> list[ErrorEvent]:
        start = since if since is not None else time.time() - _LOOKBACK_S
        values: dict[str, Any] = {"event": self.event,
                                  "since": rfc3339(start - 1.0, fraction=False)}
        if trace_id:
            values["trace_id"] = trace_id.lower()
        if request_id:
            values["request_id"] = request_id
        body = await self.request_json(
            "POST", f"/api/projects/{self.project_id}/query/",
            json={"query": {"kind": "HogQLQuery", "values": values,
                            "query": self.hogql(trace_id=trace_id, request_id=request_id)},
                  "name": "readygate error_event"})
        events = [self._event(row) for row in self._rows(body)]
        # The query has second resolution; `since` itself is exact.
        return sorted((e for e in events if since is None or e.received_at is None
                       or e.received_at >= since), key=lambda e: e.received_at or 0)

    def _rows(self, body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, dict):
            raise BackendError("posthog answered a query result that is not an object")
        if body.get("error"):
            raise BackendError(f"posthog query failed: {str(body['error'])[:200]}")
        results, columns = body.get("results"), body.get("columns")
        if not isinstance(results, list) or not isinstance(columns, list):
            raise BackendError("posthog answered without results and columns lists")
        if not all(isinstance(r, list) and len(r) == len(columns) for r in results):
            raise BackendError("posthog answered result rows that do not match its columns")
        return [dict(zip((str(c) for c in columns), r, strict=True)) for r in results]

    def _event(self, row: dict[str, Any]) -> ErrorEvent:
        properties = row.get("properties")
        if isinstance(properties, str):  # HogQL answers a JSON column as its text
            try:
                properties = json.loads(properties)
            except ValueError:
                raise BackendError("posthog answered event properties that are not JSON") from None
        if not isinstance(properties, dict):
            raise BackendError("posthog answered an event without a properties object")
        kind, value = _exception(properties)
        message = f"{kind}: {value}" if kind and value else kind or value or str(row.get("event"))
        trace = properties.get("$trace_id") or properties.get("trace_id")
        return ErrorEvent(
            event_id=str(row.get("uuid")), message=message,
            trace_id=str(trace).lower() if trace else None,
            request_id=str(properties["request_id"]) if properties.get("request_id") else None,
            received_at=(rfc3339_seconds(row.get("created_at"))
                         or rfc3339_seconds(row.get("timestamp"))),
            level=str(properties.get("$exception_level") or "error"),
            service=str(properties["service"]) if properties.get("service") else None,
            raw={"uuid": row.get("uuid"), "event": row.get("event"),
                 "timestamp": row.get("timestamp"), "properties": properties})
