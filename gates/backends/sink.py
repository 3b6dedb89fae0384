"""readygate's embedded sink: traces, logs, errors and Alertmanager notifications."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from core.errors import BackendError
from core.times import rfc3339_seconds
from gates.backends.base import HttpBackend
from gates.backends.types import (
    ErrorEvent,
    IncompleteWindow,
    LogLine,
    Notification,
    Span,
)


def _list(body: Any, key: str) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get(key), list):
        raise BackendError(f"sink answered without a '{key}' list")
    # Dropping malformed items would turn garbage into "no data" (a fail): it is an error.
    if not all(isinstance(item, dict) for item in body[key]):
        raise BackendError(f"sink answered a '{key}' list with malformed items")
    return list(body[key])


class SinkClient(HttpBackend):
    """Queries the embedded sink's JSON API."""

    kind = "sink"

    async def trace_spans(self, trace_id: str) -> list[dict[str, Any]]:
        return _list(await self.get_json(f"/api/traces/{trace_id}"), "spans")

    async def logs(self, **params: str) -> list[dict[str, Any]]:
        return _list(await self.get_json("/api/logs", params), "logs")

    async def errors(self, **params: str) -> list[dict[str, Any]]:
        return _list(await self.get_json("/api/errors", params), "errors")

    async def notifications(self, **params: str) -> list[dict[str, Any]]:
        return _list(await self.get_json("/api/notifications", params), "notifications")

    async def metrics(self, **params: str) -> list[dict[str, Any]]:
        """OTLP metric points (filters: name, service, type, since, limit); docs/sink.md."""
        return _list(await self.get_json("/api/metrics", params), "metrics")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _sink_line(row: dict[str, Any]) -> LogLine:
    attrs = row.get("attributes") if isinstance(row.get("attributes"), dict) else {}
    fields = {**(attrs or {}), "service": row.get("service"), "level": row.get("severity_text"),
              "trace_id": row.get("trace_id") or None, "span_id": row.get("span_id") or None,
              "body": row.get("body")}
    ns = row.get("time_unix_nano") or 0
    return LogLine(body=str(row.get("body") or ""), service=row.get("service"),
                   level=row.get("severity_text") or None, trace_id=row.get("trace_id") or None,
                   request_id=(attrs or {}).get("request_id") or row.get("request_id"),
                   ts=float(ns) / 1e9 if ns else row.get("received_at"),
                   fields={k: v for k, v in fields.items() if v not in (None, "")})


class SinkLogs:
    """The sink as a :class:`LogsBackend`."""

    kind = "sink"

    def __init__(self, sink: SinkClient) -> None:
        self.sink = sink

    async def lines(self, *, trace_id: str | None = None, request_id: str | None = None,
                    contains: str | None = None, since: float | None = None,
                    limit: int = 1000) -> list[LogLine]:
        params = {k: v for k, v in (("trace_id", trace_id), ("request_id", request_id),
                                    ("contains", contains)) if v}
        rows = await self.sink.logs(**params, limit=str(limit))
        return [_sink_line(r) for r in rows
                if since is None or float(r.get("received_at") or 0) >= since]

    async def window(self, since: float, *, page_size: int = 5000
                     ) -> AsyncIterator[list[LogLine]]:
        """Every line that arrived at or after ``since``, a page at a time (by arrival)."""
        cursor, seen = since, 0  # rows at exactly ``cursor`` already yielded
        while True:
            # repr: the exact float, so ``received_at >= cursor`` neither skips nor repeats
            rows = await self.sink.logs(since=repr(cursor), limit=str(page_size))
            try:
                times = [float(r["received_at"]) for r in rows]
            except (KeyError, TypeError, ValueError):
                raise BackendError("sink answered a log row without received_at") from None
            fresh = rows[seen:] if times[:seen] == [cursor] * seen else rows
            if fresh:
                yield [_sink_line(r) for r in fresh]
            if len(rows) < page_size:
                return
            if times[-1] == cursor:
                raise IncompleteWindow(f"more than {page_size} log lines arrived at one "
                                       "instant: the sink cannot page past them")
            cursor = times[-1]
            seen = sum(1 for at in times if at == cursor)

    def describe_query(self, **filters: str) -> str:
        return "GET /api/logs?" + "&".join(f"{k}={v}" for k, v in filters.items())


class SinkTraces:
    """The sink as a :class:`TracesBackend`."""

    kind = "sink"

    def __init__(self, sink: SinkClient) -> None:
        self.sink = sink

    async def trace(self, trace_id: str) -> list[Span]:
        rows = await self.sink.trace_spans(trace_id)
        return [Span(trace_id=str(r.get("trace_id")), span_id=str(r.get("span_id")),
                     name=str(r.get("name")), service=str(r.get("service")),
                     parent_id=r.get("parent_span_id") or None,
                     error=r.get("status_code") == "ERROR",
                     attributes=_dict(r.get("attributes")),
                     start=(r.get("start_unix_nano") or 0) / 1e9 or None) for r in rows]

    def link(self, trace_id: str) -> str | None:
        return f"{self.sink.base_url}/api/traces/{trace_id}"


class SinkErrors:
    """The sink's Sentry receiver as an :class:`ErrorsBackend`."""

    kind = "sink"

    def __init__(self, sink: SinkClient) -> None:
        self.sink = sink

    async def events(self, *, trace_id: str | None = None, request_id: str | None = None,
                     since: float | None = None) -> list[ErrorEvent]:
        params = {k: v for k, v in (("trace_id", trace_id), ("request_id", request_id)) if v}
        rows = await self.sink.errors(**params)
        return [ErrorEvent(event_id=str(r.get("event_id")), message=str(r.get("message") or ""),
                           trace_id=r.get("trace_id"), request_id=r.get("request_id"),
                           received_at=r.get("received_at"), level=r.get("level"),
                           service=r.get("service"),
                           raw=_dict(r.get("event")))
                for r in rows if since is None or float(r.get("received_at") or 0) >= since]


class SinkNotifications:
    """The sink's Alertmanager webhook receiver as a :class:`NotificationsBackend`."""

    kind = "sink"

    def __init__(self, sink: SinkClient) -> None:
        self.sink = sink

    async def notifications(self, alertname: str, since: float) -> list[Notification]:
        rows = await self.sink.notifications(alertname=alertname, since=f"{since:.6f}")
        return [Notification(alertname=str(r.get("alertname")), status=str(r.get("status")),
                             received_at=float(r.get("received_at") or 0),
                             labels=dict(r.get("labels") or {}), where=str(r.get("receiver")),
                             starts_at=rfc3339_seconds(r.get("starts_at")))
                for r in rows if float(r.get("received_at") or 0) >= since]


