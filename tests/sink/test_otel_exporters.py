"""The real OpenTelemetry SDK exporters (OTLP/HTTP and OTLP/gRPC) reach the sink, all signals.

Each test instruments a small "service" with its own providers (never the global ones),
exports spans, logs and metrics to the sink, and reads them back through the query API
and through readygate's own sink backend.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http._log_exporter import (
    OTLPLogExporter as HttpLogExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.metrics import Observation
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from gates.backends.sink import SinkClient
from tests.sink.conftest import Sink

EXPORT_TIMEOUT_S = 5.0


def exporters(sink: Sink, transport: str, compression: str | None
              ) -> tuple[SpanExporter, LogRecordExporter, MetricExporter]:
    """The SDK's own exporters for one transport, pointed at the sink."""
    if transport == "grpc":
        assert sink.grpc is not None
        gz = grpc.Compression.Gzip if compression == "gzip" else None
        common: dict[str, Any] = {"endpoint": sink.grpc, "insecure": True,
                                  "timeout": EXPORT_TIMEOUT_S, "compression": gz}
        return (GrpcSpanExporter(**common), GrpcLogExporter(**common),
                GrpcMetricExporter(**common))
    http_compression = HttpCompression(compression) if compression else None
    kw: dict[str, Any] = {"timeout": EXPORT_TIMEOUT_S, "compression": http_compression}
    return (HttpSpanExporter(endpoint=f"{sink.url}/v1/traces", **kw),
            HttpLogExporter(endpoint=f"{sink.url}/v1/logs", **kw),
            HttpMetricExporter(endpoint=f"{sink.url}/v1/metrics", **kw))


@dataclass
class Sent:
    """What the instrumented service sent."""

    service: str
    trace_id: str
    server_span_id: str
    request_id: str


def instrumented_request(sink: Sink, transport: str, compression: str | None) -> Sent:
    """One request of an instrumented service: two spans, a log line, four instruments."""
    service = f"svc-{transport}-{secrets.token_hex(3)}"
    request_id = "req-" + secrets.token_hex(4)
    resource = Resource.create({"service.name": service, "deployment.environment": "test"})
    span_exporter, log_exporter, metric_exporter = exporters(sink, transport, compression)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    # An hour-long interval: only the explicit flush below exports.
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    try:
        tracer = tracer_provider.get_tracer("tests.sink")
        logger = logger_provider.get_logger("tests.sink")
        meter = meter_provider.get_meter("tests.sink")
        requests = meter.create_counter("http.server.requests", unit="1")
        duration = meter.create_histogram("http.server.duration", unit="s")
        in_flight = meter.create_up_down_counter("http.server.active_requests")
        meter.create_observable_gauge("process.threads", callbacks=[
            lambda _options: [Observation(7, {"kind": "worker"})]])
        with tracer.start_as_current_span("POST /upload", kind=SpanKind.SERVER,
                                          attributes={"http.route": "/upload"}) as server:
            in_flight.add(1)
            with tracer.start_as_current_span("storage put", kind=SpanKind.CLIENT) as client:
                client.set_status(Status(StatusCode.ERROR, "storage failed"))
            logger.emit(severity_number=SeverityNumber.ERROR, severity_text="ERROR",
                        body="upload failed", attributes={"request_id": request_id})
            requests.add(2, {"route": "/upload", "status": "500"})
            duration.record(0.25, {"route": "/upload"})
            duration.record(1.5, {"route": "/upload"})
            in_flight.add(-1)
        context = server.get_span_context()
        assert tracer_provider.force_flush(int(EXPORT_TIMEOUT_S * 1000))
        assert logger_provider.force_flush(int(EXPORT_TIMEOUT_S * 1000))
        assert meter_provider.force_flush(int(EXPORT_TIMEOUT_S * 1000))
    finally:
        tracer_provider.shutdown()
        logger_provider.shutdown()
        meter_provider.shutdown()
    return Sent(service, format(context.trace_id, "032x"), format(context.span_id, "016x"),
                request_id)


TRANSPORTS = [("http", None), ("http", "gzip"), ("http", "deflate"), ("grpc", None),
              ("grpc", "gzip")]


@pytest.mark.parametrize(("transport", "compression"), TRANSPORTS)
def test_the_sdk_exporters_deliver_spans_logs_and_metrics(sink: Sink, transport: str,
                                                          compression: str | None) -> None:
    sent = instrumented_request(sink, transport, compression)
    # Rows are committed before the export is answered: no waiting needed.
    spans = {s["name"]: s for s in sink.get(f"/api/traces/{sent.trace_id}").json()["spans"]}
    assert set(spans) == {"POST /upload", "storage put"}
    server, client = spans["POST /upload"], spans["storage put"]
    assert server["span_id"] == sent.server_span_id and server["parent_span_id"] == ""
    assert server["kind"] == "SERVER" and server["service"] == sent.service
    assert server["attributes"] == {"http.route": "/upload"}
    assert client["parent_span_id"] == sent.server_span_id
    assert client["kind"] == "CLIENT" and client["status_code"] == "ERROR"

    [log] = sink.rows("logs", trace_id=sent.trace_id)
    assert log["body"] == "upload failed" and log["service"] == sent.service
    assert log["severity_text"] == "ERROR" and log["severity_number"] == 17
    assert log["span_id"] == sent.server_span_id
    assert log["attributes"] == {"request_id": sent.request_id}
    assert [r["body"] for r in sink.rows("logs", request_id=sent.request_id)] == ["upload failed"]

    points = {p["name"]: p for p in sink.rows("metrics", service=sent.service)}
    assert set(points) == {"http.server.requests", "http.server.duration",
                           "http.server.active_requests", "process.threads"}
    requests = points["http.server.requests"]
    assert requests["value"] == 2 and requests["type"] == "sum"
    assert requests["monotonic"] is True and requests["temporality"] == "CUMULATIVE"
    assert requests["attributes"] == {"route": "/upload", "status": "500"}
    assert requests["resource"]["deployment.environment"] == "test"
    assert requests["scope"] == "tests.sink"
    duration = points["http.server.duration"]
    assert duration["type"] == "histogram" and duration["unit"] == "s"
    assert (duration["count"], duration["sum"]) == (2, 1.75)
    assert sum(duration["details"]["bucket_counts"]) == 2
    assert (duration["details"]["min"], duration["details"]["max"]) == (0.25, 1.5)
    active = points["http.server.active_requests"]
    assert active["value"] == 0 and active["monotonic"] is False
    gauge = points["process.threads"]
    assert gauge["type"] == "gauge" and gauge["value"] == 7
    assert gauge["attributes"] == {"kind": "worker"}


def test_readygate_sink_backend_reads_the_metrics(sink: Sink) -> None:
    """gates.backends.sink (HTTP only) sees what an SDK exported over gRPC."""
    since = time.time()
    sent = instrumented_request(sink, "grpc", None)

    async def read() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(trust_env=False) as http:
            client = SinkClient(sink.url, http)
            return await client.metrics(name="http.server.requests", service=sent.service,
                                        since=f"{since:.6f}")
    points = asyncio.run(read())
    # The flush exports the cumulative counter, and the provider's shutdown once more.
    assert points and all(p["value"] == 2 and p["received_at"] >= since for p in points)


def test_grpc_export_the_sink_cannot_store_is_invalid_argument(sink: Sink) -> None:
    """A protobuf-valid request with a time SQLite cannot hold is refused, not a crash."""
    assert sink.grpc is not None
    bad = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(
        spans=[Span(trace_id=secrets.token_bytes(16), span_id=secrets.token_bytes(8),
                    name="far future", start_time_unix_nano=2**64 - 1)])])])
    with grpc.insecure_channel(sink.grpc) as channel:
        stub = TraceServiceStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.RpcError) as caught:
            stub.Export(bad, timeout=EXPORT_TIMEOUT_S)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "out of range" in (caught.value.details() or "")
        ok = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(
            spans=[Span(trace_id=secrets.token_bytes(16), span_id=secrets.token_bytes(8),
                        name="fine")])])])
        assert stub.Export(ok, timeout=EXPORT_TIMEOUT_S) is not None
