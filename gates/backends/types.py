"""One small Protocol per signal, and the normalized evidence every backend returns.

Checks only see these shapes, so a check works unchanged against the sink, Loki,
Elasticsearch, JSON-lines files (logs), Jaeger, Tempo, Zipkin (traces), Sentry (errors),
Slack or PagerDuty (notifications). Backends keep the raw record in ``raw`` for evidence.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.errors import BackendError

# Log levels by rank; an unknown level ranks 0 so it never passes as ERROR.
LEVELS = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "INFORMATION": 9, "NOTICE": 10, "WARN": 13,
          "WARNING": 13, "ERROR": 17, "ERR": 17, "CRITICAL": 21, "FATAL": 21, "EMERGENCY": 21}

# Field names a log line may use for each normalized field (first match wins).
TRACE_ID_KEYS = ("trace_id", "traceId", "trace.id", "traceid", "otelTraceID", "dd.trace_id")
REQUEST_ID_KEYS = ("request_id", "requestId", "request.id", "x_request_id", "http.request_id")
LEVEL_KEYS = ("level", "severity", "severity_text", "log.level", "levelname", "lvl")
SERVICE_KEYS = ("service", "service.name", "service_name", "app", "logger")
MESSAGE_KEYS = ("message", "msg", "body", "event")


def level_rank(level: str | None) -> int:
    """The rank of a level name (0 when unknown)."""
    return LEVELS.get((level or "").strip().upper(), 0)


def dotted(data: Any, path: str) -> Any:
    """``data['a']['b']`` for ``a.b``; a key that itself contains dots is tried first."""
    if not isinstance(data, dict):
        return None
    if path in data:
        return data[path]
    head, _, rest = path.partition(".")
    if not rest:  # case-insensitive leaf: header names (Authorization vs authorization)
        return next((v for k, v in data.items() if isinstance(k, str)
                     and k.lower() == path.lower()), None)
    if head in data:
        return dotted(data[head], rest)
    # case-insensitive header names (Authorization vs authorization)
    for key, value in data.items():
        if isinstance(key, str) and key.lower() == head.lower():
            return dotted(value, rest)
    return None


def first(data: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """The first of ``keys`` present (dotted paths allowed) in ``data``."""
    for key in keys:
        value = dotted(data, key)
        # ECS nests objects ({"service": {"name": ...}}): a mapping is not the value itself
        if value not in (None, "") and not isinstance(value, dict | list):
            return value
    return None


@dataclass(frozen=True)
class LogLine:
    """One log record, whatever stored it."""

    body: str
    service: str | None = None
    level: str | None = None
    trace_id: str | None = None
    request_id: str | None = None
    ts: float | None = None            # when the line was written (unix seconds)
    fields: dict[str, Any] = field(default_factory=dict)  # every structured field

    def get(self, name: str) -> Any:
        """A field by normalized name (level, service, trace_id, ...) or dotted path."""
        normalized = {"level": self.level, "service": self.service, "trace_id": self.trace_id,
                      "request_id": self.request_id, "message": self.body or None,
                      "timestamp": self.ts}
        if normalized.get(name) not in (None, ""):
            return normalized[name]
        return dotted(self.fields, name)

    def text(self) -> str:
        """The body and every field value, for substring scans (secret leaks)."""
        import json
        return self.body + " " + json.dumps(self.fields, default=str, sort_keys=True)


def log_line_from(record: dict[str, Any], *, service: str | None = None,
                  ts: float | None = None, body: str | None = None) -> LogLine:
    """Normalize a structured (JSON) log record using the usual field names."""
    message = body if body is not None else first(record, MESSAGE_KEYS)
    trace = first(record, TRACE_ID_KEYS)
    request = first(record, REQUEST_ID_KEYS)
    level = first(record, LEVEL_KEYS)
    return LogLine(body="" if message is None else str(message),
                   service=service or _str(first(record, SERVICE_KEYS)),
                   level=_str(level), trace_id=str(trace).lower() if trace else None,
                   request_id=_str(request), ts=ts, fields=record)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Span:
    """One span of a trace."""

    trace_id: str
    span_id: str
    name: str
    service: str
    parent_id: str | None = None
    error: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)
    start: float | None = None         # unix seconds

    def describe(self) -> str:
        return f"{self.service}:{self.name}" + (" (error)" if self.error else "")


@dataclass(frozen=True)
class ErrorEvent:
    """One error event (a Sentry event, or what the sink stored of one)."""

    event_id: str
    message: str
    trace_id: str | None
    request_id: str | None
    received_at: float | None
    level: str | None = None
    service: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # the event body, for PII scans

    def text(self) -> str:
        """The message and the whole body, for substring scans (as LogLine.text)."""
        import json
        return self.message + " " + json.dumps(self.raw, default=str, sort_keys=True)


@dataclass(frozen=True)
class ActiveAlert:
    """An alert pending or firing now, whatever engine evaluates it."""

    name: str
    state: str  # "pending" | "firing"
    labels: dict[str, str]
    active_at: str | None
    # set while keep_firing_for holds a firing alert whose condition no longer holds
    keep_firing_since: str | None = None

    def describe(self) -> str:
        shown = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items())
                         if k not in ("alertname",))
        return f"{self.name}{{{shown}}} ({self.state})"


@dataclass(frozen=True)
class Notification:
    """One alert notification as the receiver saw it."""

    alertname: str
    status: str                       # "firing" | "resolved"
    received_at: float                # when it arrived (the source's own timestamp)
    labels: dict[str, str] = field(default_factory=dict)
    where: str = ""                   # receiver / channel / service
    link: str | None = None
    # when the notified alert started (Alertmanager's startsAt), where the receiver says
    starts_at: float | None = None


class LogsBackend(Protocol):
    """Where log lines are looked up."""

    kind: str

    async def lines(self, *, trace_id: str | None = None, request_id: str | None = None,
                    contains: str | None = None, since: float | None = None,
                    limit: int = 1000) -> list[LogLine]:
        """Lines matching every given filter, oldest first."""
        ...

    def describe_query(self, **filters: str) -> str:
        """The query as a human would type it, for evidence."""
        ...


class IncompleteWindow(BackendError):
    """A log window could not be read to its end (too many lines, no way to page on)."""


class WindowedLogs(Protocol):
    """A logs backend that reads every line of a time window, page by page (secret scans)."""

    def window(self, since: float, *, page_size: int = 5000) -> AsyncIterator[list[LogLine]]:
        """Every line stored at or after ``since``, oldest first, a page at a time; raises
        :class:`IncompleteWindow` after the last page it could read if lines were left."""
        ...


async def read_window(logs: LogsBackend, since: float, *,
                      max_lines: int) -> AsyncIterator[list[LogLine]]:
    """The pages of ``logs``' window since ``since``: at most ``max_lines`` lines, else
    :class:`IncompleteWindow` once they are read. A backend without ``window`` answers one
    ``lines(since=...)`` query."""
    pager = getattr(logs, "window", None)
    if pager is None:
        page = await logs.lines(since=since, limit=max_lines + 1)
        yield page[:max_lines]
        if len(page) > max_lines:
            raise IncompleteWindow(f"the window holds more than {max_lines} lines")
        return
    read = 0
    async for page in pager(since, page_size=min(5000, max_lines + 1)):
        left = max_lines - read
        yield page[:left]
        read += min(len(page), left)
        if len(page) > left:
            raise IncompleteWindow(f"the window holds more than {max_lines} lines")


class TracesBackend(Protocol):
    """Where traces are looked up by id."""

    kind: str

    async def trace(self, trace_id: str) -> list[Span]:
        """Every span of the trace stored so far ([] when the trace is not known yet)."""
        ...

    def link(self, trace_id: str) -> str | None:
        """A URL showing the trace, where one can be built."""
        ...


class ErrorsBackend(Protocol):
    """Where error events are looked up."""

    kind: str

    async def events(self, *, trace_id: str | None = None, request_id: str | None = None,
                     since: float | None = None) -> list[ErrorEvent]:
        """Error events tied to the id, oldest first."""
        ...


class AlertsBackend(Protocol):
    """Where alert state is read: Prometheus (the default), or another alerting engine
    (Grafana-managed alerts, Datadog monitors, Cloud Monitoring incidents)."""

    kind: str

    async def alerts(self) -> list[ActiveAlert]:
        """Alerts pending or firing now; ``active_at`` (RFC 3339) is when each began."""
        ...

    async def fired_since(self, alertname: str, labels: dict[str, str], since: float) -> bool:
        """Whether the alert (its labels a superset of ``labels``) fired at any moment
        from ``since`` (unix seconds) until now, even if it has resolved since."""
        ...


class NotificationsBackend(Protocol):
    """Where alert notifications are delivered."""

    kind: str

    async def notifications(self, alertname: str, since: float) -> list[Notification]:
        """Notifications for ``alertname`` received at or after ``since``."""
        ...


@dataclass(frozen=True)
class QueryAnswer:
    """What one query (refId) of a dashboard panel answered: rows of data, or an error."""

    ref_id: str
    rows: int                          # rows with a value besides time, over every frame
    error: str | None = None           # the dashboard tool's own message


class DashboardsBackend(Protocol):
    """Where dashboards are read and their panels' queries run (Grafana)."""

    kind: str

    async def dashboard(self, uid: str) -> dict[str, Any] | None:
        """The dashboard's JSON model (None when no dashboard has that uid)."""
        ...

    async def library_panel(self, uid: str) -> dict[str, Any] | None:
        """A library panel's model (None when there is none with that uid)."""
        ...

    async def datasource(self, ref: Any) -> dict[str, Any] | None:
        """``{uid, type}`` of a panel's datasource reference (None: no such datasource)."""
        ...

    async def query(self, queries: list[dict[str, Any]], start: float,
                    end: float) -> dict[str, QueryAnswer]:
        """Each query's answer by refId over [start, end] (unix seconds)."""
        ...


def close_backends(*backends: object) -> None:
    """Close each backend that holds a client library's connections (``close()``: Google,
    Datadog, Grafana); httpx clients are closed by their owner. Never raises."""
    seen: set[int] = set()
    for backend in backends:
        if backend is None or id(backend) in seen:
            continue
        seen.add(id(backend))
        close = getattr(backend, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):  # closing never fails a run
                close()
