"""Shared observability plumbing for the demo services: JSON logs, OTLP, metrics, Sentry.

Both demo services (``web`` and ``storage``) emit the same kinds of evidence the same
way, so readygate's checks can be pointed at either. Everything here is deliberately
plain: one :class:`Telemetry` per process, one ASGI middleware per app.

Sabotage knobs (``DEMO_SABOTAGE``) live here too, because several of them break the
plumbing itself (no trace ids in logs, no route label, no error reporting).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import sentry_sdk
from opentelemetry import propagate, trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CollectorRegistry, Counter, Histogram
from sentry_sdk.scope import register_external_propagation_context
from starlette.routing import BaseRoute, Match

KNOBS: frozenset[str] = frozenset({
    "no_propagation",
    "no_trace_ids_in_logs",
    "errors_at_info",
    "drop_route_label",
    "leak_password",
    # the password logged the ways real services leak it, each one readygate must catch:
    "leak_password_url",      # URL-encoded: a form body and a query string
    "leak_password_basic",    # a Basic Authorization header (base64 of user:password)
    "leak_password_json",     # a JSON request body, escaped again inside the log line
    "leak_password_split",    # in two halves, in two fields of one record
    "leak_password_startup",  # a config dump at start-up, before any run begins
    "ready_always_200",
    "no_error_reporting",
    "no_frontend_error_reporting",  # the page's browser SDKs drop every report (beforeSend)
    "health_ignores_storage",
})

# Short batch delays so a span or log line reaches the sink well within a second.
BATCH_DELAY_MS = 200
# Exporters must give up quickly when the sink is gone, or shutdown outlives SIGTERM's grace.
EXPORT_TIMEOUT_S = 2.0

SENTRY_PROJECTS: Mapping[str, int] = {"web": 1, "storage": 2}

request_id_var: ContextVar[str | None] = ContextVar("demo_request_id", default=None)

_SEVERITY: Mapping[int, SeverityNumber] = {
    logging.DEBUG: SeverityNumber.DEBUG,
    logging.INFO: SeverityNumber.INFO,
    logging.WARNING: SeverityNumber.WARN,
    logging.ERROR: SeverityNumber.ERROR,
    logging.CRITICAL: SeverityNumber.FATAL,
}


class SabotageError(ValueError):
    """DEMO_SABOTAGE names a knob that does not exist."""


def parse_sabotage(raw: str | None) -> frozenset[str]:
    """The set of knobs in a comma-separated DEMO_SABOTAGE value; unknown knobs raise."""
    knobs = frozenset(k.strip() for k in (raw or "").split(",") if k.strip())
    unknown = sorted(knobs - KNOBS)
    if unknown:
        raise SabotageError(f"unknown DEMO_SABOTAGE knob(s) {', '.join(map(repr, unknown))};"
                            f" known: {', '.join(sorted(KNOBS))}")
    return knobs


def sabotage_or_exit(raw: str | None, prog: str) -> frozenset[str]:
    """Like :func:`parse_sabotage`, but a bad value ends the process with exit code 3."""
    try:
        return parse_sabotage(raw)
    except SabotageError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        sys.exit(3)


def sentry_dsn(sink_url: str, service: str) -> str:
    """The Sentry DSN a demo service reports to: the sink, one project per service."""
    parts = urlsplit(sink_url)
    return f"{parts.scheme}://readygate@{parts.netloc}/{SENTRY_PROJECTS[service]}"


def _otel_ids() -> tuple[str, str] | None:
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return trace.format_trace_id(ctx.trace_id), trace.format_span_id(ctx.span_id)


class _ContextFilter(logging.Filter):
    """Stamps trace/span/request ids on a record while still in the caller's context."""

    def __init__(self, with_trace_ids: bool) -> None:
        super().__init__()
        self.with_trace_ids = with_trace_ids

    def filter(self, record: logging.LogRecord) -> bool:
        ids = _otel_ids() if self.with_trace_ids else None
        record.trace_id = ids[0] if ids else None
        record.span_id = ids[1] if ids else None
        fields: dict[str, Any] = dict(getattr(record, "fields", None) or {})
        rid = request_id_var.get()
        if rid is not None:
            fields.setdefault("request_id", rid)
        record.fields = fields
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, service, message, trace_id, span_id, fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "message": record.getMessage(),
            "trace_id": getattr(record, "trace_id", None),
            "span_id": getattr(record, "span_id", None),
        }
        doc.update(getattr(record, "fields", None) or {})
        if record.exc_info and record.exc_info[0] is not None:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class OtlpLogHandler(logging.Handler):
    """Sends the same records over OTLP logs, with the extra fields as attributes."""

    def __init__(self, provider: LoggerProvider, service: str) -> None:
        super().__init__()
        self._logger = provider.get_logger(f"demo.{service}")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            attributes: dict[str, Any] = {
                k: v for k, v in (getattr(record, "fields", None) or {}).items()
                if isinstance(v, str | bool | int | float)
            }
            attributes["logger.name"] = record.name
            if getattr(record, "trace_id", None):
                context: Context | None = None  # the current context carries the span
            else:
                # An empty Context is falsy and the SDK would fall back to the current one,
                # so "no trace ids" must be spelled as a context holding the invalid span.
                context = trace.set_span_in_context(trace.INVALID_SPAN)
            self._logger.emit(
                timestamp=int(record.created * 1e9),
                context=context,
                severity_number=_SEVERITY.get(record.levelno, SeverityNumber.INFO),
                severity_text=record.levelname,
                body=record.getMessage(),
                attributes=attributes,
            )
        except Exception:  # pragma: no cover - logging must never break a request
            self.handleError(record)


class Telemetry:
    """A service's tracer, logger, metrics registry and Sentry client, set up once."""

    def __init__(self, service: str, sink_url: str, sabotage: frozenset[str],
                 otlp_url: str | None = None) -> None:
        self.service = service
        self.sink_url = sink_url.rstrip("/")
        # OTLP traces and logs go here (an OpenTelemetry Collector, say); Sentry events
        # always go to the sink
        self.otlp_url = (otlp_url or sink_url).rstrip("/")
        self.sabotage = sabotage
        resource = Resource.create({"service.name": service})

        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"{self.otlp_url}/v1/traces", timeout=EXPORT_TIMEOUT_S),
            schedule_delay_millis=BATCH_DELAY_MS))
        trace.set_tracer_provider(self.tracer_provider)
        self.tracer = self.tracer_provider.get_tracer(f"demo.{service}")

        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(BatchLogRecordProcessor(
            OTLPLogExporter(endpoint=f"{self.otlp_url}/v1/logs", timeout=EXPORT_TIMEOUT_S),
            schedule_delay_millis=BATCH_DELAY_MS))
        self.log = self._setup_logging()

        self.registry = CollectorRegistry(auto_describe=True)
        # Dropping the route label is one of the sabotage knobs readygate must catch.
        self.labels: tuple[str, ...] = (
            ("method", "status") if "drop_route_label" in sabotage
            else ("method", "route", "status"))
        self.requests_total = Counter("http_requests_total", "HTTP requests served.",
                                      self.labels, registry=self.registry)
        self.request_duration = Histogram("http_request_duration_seconds",
                                          "HTTP request duration in seconds.", self.labels,
                                          registry=self.registry)

        self.error_reporting = "no_error_reporting" not in sabotage
        if self.error_reporting:
            self._setup_sentry()

    def _setup_logging(self) -> logging.Logger:
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setFormatter(JsonFormatter(self.service))
        # Library warnings (exporter retries, uvicorn) go to stderr as JSON but never
        # over OTLP: an exporter complaining through its own exporter would loop.
        root = logging.getLogger()
        root.handlers[:] = [stderr]
        root.setLevel(logging.WARNING)
        stderr.addFilter(_ContextFilter("no_trace_ids_in_logs" not in self.sabotage))

        log = logging.getLogger(f"demo.{self.service}")
        log.handlers[:] = []
        log.propagate = False
        log.setLevel(logging.INFO)
        log.addFilter(_ContextFilter("no_trace_ids_in_logs" not in self.sabotage))
        log.addHandler(stderr)
        log.addHandler(OtlpLogHandler(self.logger_provider, self.service))
        return log

    def _setup_sentry(self) -> None:
        sentry_sdk.init(
            dsn=sentry_dsn(self.sink_url, self.service),
            send_default_pii=False,
            traces_sample_rate=0.0,  # OpenTelemetry does the tracing
            # No auto integrations: the logging one would turn every ERROR line into a
            # second, duplicate event, and the ASGI ones would start Sentry transactions.
            default_integrations=False,
            auto_enabling_integrations=False,
            # Stack frame locals could hold a password or a token; events must not.
            include_local_variables=False,
            # sentry-sdk 2.x picks brotli whenever the module imports; gzip is the
            # encoding every receiver understands. (The option is typed as the
            # CompressionAlgo enum, but the transport compares plain strings.)
            _experiments={"transport_compression_algo": "gzip"},  # type: ignore[typeddict-item]
        )
        sentry_sdk.set_tag("service", self.service)
        # Events take their contexts.trace from the active OpenTelemetry span, so an
        # error can be found by the trace id readygate sent.
        register_external_propagation_context(_otel_ids)

    def report_error(self, error: BaseException | str, **tags: str) -> None:
        """Send an exception or message to Sentry, tagged with the current ids."""
        if not self.error_reporting:
            return
        ids = _otel_ids()
        scope_tags = {"service": self.service, **tags}
        rid = request_id_var.get()
        if rid:
            scope_tags["request_id"] = rid
        if ids:
            scope_tags["trace_id"] = ids[0]
        with sentry_sdk.new_scope() as scope:
            for key, value in scope_tags.items():
                scope.set_tag(key, value)
            if isinstance(error, BaseException):
                scope.capture_exception(error)
            else:
                scope.capture_message(error, level="error")

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """Add the current trace context (and request id) to outgoing headers."""
        if "no_propagation" not in self.sabotage:
            propagate.inject(headers)
        rid = request_id_var.get()
        if rid:
            headers["X-Request-ID"] = rid

    def shutdown(self) -> None:
        """Flush spans, logs and errors; called from the app's lifespan on SIGTERM."""
        with contextlib.suppress(Exception):
            self.tracer_provider.shutdown()
        with contextlib.suppress(Exception):
            self.logger_provider.shutdown()
        if self.error_reporting:
            with contextlib.suppress(Exception):
                sentry_sdk.flush(timeout=EXPORT_TIMEOUT_S)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Scrapes are not traffic: counting them would drown the series readygate watches.
UNTRACKED_PATHS = frozenset({"/metrics"})


class ObservabilityMiddleware:
    """Per request: a SERVER span (child of any incoming traceparent), metrics, access log."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry,
                 routes: Callable[[], Sequence[BaseRoute]]) -> None:
        self.app = app
        self.telemetry = telemetry
        self.routes = routes

    def _route_template(self, scope: Scope) -> str:
        for route in self.routes():
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(getattr(route, "path", scope["path"]))
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACKED_PATHS:
            await self.app(scope, receive, send)
            return
        tel = self.telemetry
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        method = scope["method"]
        route = self._route_template(scope)
        request_id = headers.get("x-request-id") or uuid.uuid4().hex
        rid_token = request_id_var.set(request_id)
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"],
                                      (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        parent = propagate.extract(headers)
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "http.route": route,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
            "http.request.header.x-request-id": request_id,
        }
        if "user-agent" in headers:
            attributes["user_agent.original"] = headers["user-agent"]
        try:
            with tel.tracer.start_as_current_span(
                    f"{method} {route}", context=parent, kind=SpanKind.SERVER,
                    attributes=attributes, record_exception=False,
                    set_status_on_exception=False) as span:
                try:
                    await self.app(scope, receive, send_wrapper)
                except Exception as exc:
                    status = 500
                    span.record_exception(exc)
                    tel.report_error(exc)
                    tel.log.exception("unhandled error",
                                      extra={"fields": {"error.type": type(exc).__name__}})
                    raise
                finally:
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
                    elapsed = time.perf_counter() - started
                    labels = {"method": method, "route": route, "status": str(status)}
                    values = [labels[name] for name in tel.labels]
                    tel.requests_total.labels(*values).inc()
                    tel.request_duration.labels(*values).observe(elapsed)
                    tel.log.info(f"{method} {route} {status}", extra={"fields": {
                        "request_id": request_id, "method": method, "route": route,
                        "path": scope["path"], "status": status,
                        "duration_ms": round(elapsed * 1000, 3)}})
        finally:
            request_id_var.reset(rid_token)

