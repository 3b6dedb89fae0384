"""The sink decodes every wire format it claims to over HTTP, and answers queries as documented.

Moved from tests/demo/test_sink.py; the real OpenTelemetry exporters are in test_otel_exporters.py.
"""

from __future__ import annotations

import gzip
import json
import secrets
import time
import zlib
from typing import Any

import brotli  # type: ignore[import-untyped]
import pytest
import sentry_sdk
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import (
    LogRecord,
    ResourceLogs,
    ScopeLogs,
    SeverityNumber,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Gauge,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from tests.fixtures.demo_system import eventually
from tests.sink.conftest import Sink

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _kv(key: str, value: str | int) -> KeyValue:
    av = AnyValue(string_value=value) if isinstance(value, str) else AnyValue(int_value=value)
    return KeyValue(key=key, value=av)


def _resource(service: str) -> Resource:
    return Resource(attributes=[_kv("service.name", service)])


def test_otlp_protobuf_traces_are_stored_with_hex_ids_kind_and_status(sink: Sink) -> None:
    trace_id, parent, child = secrets.token_bytes(16), secrets.token_bytes(8), \
        secrets.token_bytes(8)
    req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=_resource("svc-pb"), scope_spans=[ScopeSpans(spans=[
            Span(trace_id=trace_id, span_id=parent, name="GET /x", kind=Span.SPAN_KIND_SERVER,
                 start_time_unix_nano=1_700_000_000_000_000_000,
                 end_time_unix_nano=1_700_000_000_500_000_000,
                 attributes=[_kv("http.route", "/x"), _kv("http.response.status_code", 500)],
                 status=Status(code=Status.STATUS_CODE_ERROR)),
            Span(trace_id=trace_id, span_id=child, parent_span_id=parent, name="call",
                 kind=Span.SPAN_KIND_CLIENT),
        ])])])
    resp = sink.post("/v1/traces", req.SerializeToString(), PROTOBUF)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/x-protobuf"
    spans = sink.get(f"/api/traces/{trace_id.hex()}").json()["spans"]
    by_name = {s["name"]: s for s in spans}
    server = by_name["GET /x"]
    assert server["span_id"] == parent.hex() and server["parent_span_id"] == ""
    assert server["service"] == "svc-pb" and server["kind"] == "SERVER"
    assert server["status_code"] == "ERROR"
    assert server["attributes"] == {"http.route": "/x", "http.response.status_code": 500}
    assert server["end_unix_nano"] - server["start_unix_nano"] == 500_000_000
    assert by_name["call"]["parent_span_id"] == parent.hex()
    assert by_name["call"]["kind"] == "CLIENT" and by_name["call"]["status_code"] == "UNSET"


def _json_traces(trace_id: str, span_id: str) -> dict[str, Any]:
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name",
                                     "value": {"stringValue": "svc-json"}}]},
        "scopeSpans": [{"scope": {"name": "t"}, "spans": [{
            "traceId": trace_id.upper(), "spanId": span_id, "parentSpanId": "",
            "name": "POST /y", "kind": 2, "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": "1700000001000000000",
            "attributes": [{"key": "n", "value": {"intValue": "7"}},
                           {"key": "ok", "value": {"boolValue": True}},
                           {"key": "tags", "value": {"arrayValue": {"values": [
                               {"stringValue": "a"}, {"doubleValue": 1.5}]}}}],
            "status": {"code": 1}}]}]}]}


@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_otlp_json_traces_use_hex_ids_and_may_be_gzipped(sink: Sink,
                                                         encoding: str | None) -> None:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    body = json.dumps(_json_traces(trace_id, span_id)).encode()
    headers = {"Content-Type": "application/json"}
    if encoding:
        body = gzip.compress(body)
        headers["Content-Encoding"] = encoding
    resp = sink.post("/v1/traces", body, headers)
    assert resp.status_code == 200 and resp.json() == {}
    [span] = sink.get(f"/api/traces/{trace_id}").json()["spans"]
    assert span["trace_id"] == trace_id and span["span_id"] == span_id
    assert span["kind"] == "SERVER" and span["status_code"] == "OK"
    assert span["service"] == "svc-json"
    assert span["attributes"] == {"n": 7, "ok": True, "tags": ["a", 1.5]}


def test_unknown_trace_is_an_empty_list(sink: Sink) -> None:
    resp = sink.get(f"/api/traces/{secrets.token_hex(16)}")
    assert resp.status_code == 200 and resp.json()["spans"] == []


def test_otlp_logs_protobuf_and_json_are_queryable_by_every_filter(sink: Sink) -> None:
    trace_id, span_id = secrets.token_bytes(16), secrets.token_bytes(8)
    request_id = "req-" + secrets.token_hex(4)
    pb = ExportLogsServiceRequest(resource_logs=[ResourceLogs(
        resource=_resource("svc-logs"), scope_logs=[ScopeLogs(log_records=[
            LogRecord(time_unix_nano=1_700_000_000_000_000_000,
                      severity_number=SeverityNumber.SEVERITY_NUMBER_ERROR,
                      severity_text="ERROR", body=AnyValue(string_value="storage failed"),
                      trace_id=trace_id, span_id=span_id,
                      attributes=[_kv("request_id", request_id)]),
        ])])])
    assert sink.post("/v1/logs", pb.SerializeToString(), PROTOBUF).status_code == 200
    doc = {"resourceLogs": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "svc-logs"}}]},
        "scopeLogs": [{"logRecords": [{
            "timeUnixNano": "1700000000100000000", "severityNumber": 9, "severityText": "INFO",
            "body": {"stringValue": "all good"}, "traceId": trace_id.hex(),
            "spanId": span_id.hex(),
            "attributes": [{"key": "request_id", "value": {"stringValue": request_id}}]}]}]}]}
    body = zlib.compress(json.dumps(doc).encode())
    resp = sink.post("/v1/logs", body, {"Content-Type": "application/json",
                                          "Content-Encoding": "deflate"})
    assert resp.status_code == 200

    by_trace = sink.rows("logs", trace_id=trace_id.hex())
    assert [log["body"] for log in by_trace] == ["storage failed", "all good"]
    first = by_trace[0]
    assert first["service"] == "svc-logs" and first["severity_number"] == 17
    assert first["span_id"] == span_id.hex()
    assert first["attributes"] == {"request_id": request_id}
    assert isinstance(first["received_at"], float)
    assert abs(first["received_at"] - time.time()) < 60
    assert len(sink.rows("logs", request_id=request_id)) == 2
    assert [log["body"] for log in sink.rows("logs", request_id=request_id, level="error")] == \
        ["storage failed"]
    assert [log["body"] for log in sink.rows("logs", request_id=request_id, contains="good")] == \
        ["all good"]
    assert sink.rows("logs", request_id=request_id, service="other") == []
    assert len(sink.rows("logs", request_id=request_id, limit="1")) == 1


def _event(trace_id: str, request_id: str) -> dict[str, Any]:
    return {"event_id": secrets.token_hex(16), "level": "error", "platform": "python",
            "tags": {"service": "web", "request_id": request_id},
            "contexts": {"trace": {"trace_id": trace_id, "span_id": secrets.token_hex(8)}},
            "exception": {"values": [{"type": "ConnectError", "value": "refused"},
                                     {"type": "StorageError", "value": "storage failed"}]}}


def _envelope(event: dict[str, Any], with_length: bool) -> bytes:
    payload = json.dumps(event).encode()
    header: dict[str, Any] = {"type": "event"}
    if with_length:
        header["length"] = len(payload)
        payload += b"\n"  # length-delimited payloads may still contain or end in a newline
    session = b'{"type":"session"}\n{"sid":"x"}\n'
    return (json.dumps({"event_id": event["event_id"]}).encode() + b"\n" + session
            + json.dumps(header).encode() + b"\n" + payload)


@pytest.mark.parametrize(("encoding", "with_length"),
                         [(None, False), (None, True), ("gzip", True), ("deflate", False),
                          ("br", True)])
def test_sentry_envelopes_are_decoded_in_every_encoding(sink: Sink, encoding: str | None,
                                                        with_length: bool) -> None:
    trace_id, request_id = secrets.token_hex(16), "env-" + secrets.token_hex(4)
    event = _event(trace_id, request_id)
    body = _envelope(event, with_length)
    headers = {"Content-Type": "application/x-sentry-envelope"}
    if encoding:
        headers["Content-Encoding"] = encoding
        body = {"gzip": gzip.compress, "deflate": zlib.compress,
                "br": brotli.compress}[encoding](body)
    resp = sink.post("/api/1/envelope/", body, headers)
    assert resp.status_code == 200, resp.text
    [err] = sink.get("/api/errors", trace_id=trace_id).json()["errors"]
    assert err["event_id"] == event["event_id"] and err["service"] == "web"
    assert err["exception_type"] == "StorageError"
    assert err["message"] == "StorageError: storage failed"
    assert err["request_id"] == request_id and err["level"] == "error"
    assert err["event"]["exception"] == event["exception"]


def test_legacy_store_endpoint_and_trace_id_from_tags(sink: Sink) -> None:
    trace_id = secrets.token_hex(16)
    event = {"event_id": secrets.token_hex(16), "message": "plain message", "level": "warning",
             "tags": [["trace_id", trace_id]]}
    assert sink.post("/api/2/store/", json.dumps(event).encode(),
                 {"Content-Type": "application/json"}).status_code == 200
    [err] = sink.get("/api/errors", trace_id=trace_id).json()["errors"]
    assert err["service"] == "2"  # the project id when there is no service tag
    assert err["message"] == "plain message" and err["level"] == "warning"


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_the_real_sentry_sdk_client_reaches_the_sink(sink: Sink,
                                                     compression: str | None) -> None:
    host = sink.url.split("://", 1)[1]
    # Without the option sentry-sdk 2.x sends brotli (the module is installed here).
    experiments: Any = {"transport_compression_algo": compression} if compression else {}
    # Not sentry_sdk.init: a bare client leaves the test process's global hub alone.
    client = sentry_sdk.Client(dsn=f"http://readygate@{host}/1", default_integrations=False,
                               _experiments=experiments)
    marker = "sdk-" + secrets.token_hex(6)
    try:
        with sentry_sdk.isolation_scope() as scope:
            scope.set_client(client)
            scope.set_tag("request_id", marker)
            scope.set_tag("service", "web")
            try:
                raise RuntimeError(marker)
            except RuntimeError as exc:
                sentry_sdk.capture_exception(exc)
        client.flush(timeout=5)
    finally:
        client.close(timeout=5)
    errors = eventually(
        lambda: sink.get("/api/errors", request_id=marker).json()["errors"],
        what="the SDK's event")
    assert errors[0]["exception_type"] == "RuntimeError"
    assert errors[0]["service"] == "web"


def test_alertmanager_webhook_stores_one_row_per_alert(sink: Sink) -> None:
    since = time.time()
    name = "TestAlert" + secrets.token_hex(3)
    payload = {
        "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
        "receiver": "readygate", "groupLabels": {"alertname": name},
        "commonLabels": {"alertname": name}, "commonAnnotations": {},
        "externalURL": "http://alertmanager", "alerts": [
            {"status": "firing", "labels": {"alertname": name, "service": "web"},
             "annotations": {"summary": "web is down"}, "startsAt": "2024-01-01T00:00:00Z",
             "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "aaa"},
            {"status": "resolved", "labels": {"alertname": name, "service": "storage"},
             "annotations": {}, "startsAt": "2024-01-01T00:00:00Z",
             "endsAt": "2024-01-01T00:05:00Z", "generatorURL": "", "fingerprint": "bbb"}]}
    resp = sink.post("/alertmanager/webhook", json.dumps(payload).encode(),
                 {"Content-Type": "application/json"})
    assert resp.status_code == 200
    rows = sink.get("/api/notifications", alertname=name).json()["notifications"]
    assert [r["fingerprint"] for r in rows] == ["aaa", "bbb"]
    first = rows[0]
    assert first["receiver"] == "readygate" and first["status"] == "firing"
    assert first["labels"] == {"alertname": name, "service": "web"}
    assert first["annotations"] == {"summary": "web is down"}
    assert first["starts_at"] == "2024-01-01T00:00:00Z"
    assert first["received_at"] >= since
    resolved = sink.get("/api/notifications", alertname=name, status="resolved").json()
    assert [r["fingerprint"] for r in resolved["notifications"]] == ["bbb"]
    later = sink.get("/api/notifications", alertname=name, since=str(time.time() + 60))
    assert later.json()["notifications"] == []


def test_stats_and_health(sink: Sink) -> None:
    assert sink.get("/-/healthy").status_code == 200
    stats = sink.get("/api/stats").json()
    assert set(stats) == {"spans", "logs", "metrics", "errors", "notifications"}
    assert all(isinstance(n, int) for n in stats.values())
    storage = sink.get("/api/storage").json()
    assert storage["max_bytes"] == 256 * 1024 * 1024 and storage["retention_s"] == 3600
    assert 0 < storage["used_bytes"] <= storage["max_bytes"]
    assert storage["dropped_rows"] == {"age": 0, "size": 0}


@pytest.mark.parametrize(("path", "body", "headers"), [
    ("/v1/traces", b"\xff\x00garbage", PROTOBUF),
    ("/v1/metrics", b"\xff\x00garbage", PROTOBUF),
    ("/v1/logs", b"{not json", {"Content-Type": "application/json"}),
    ("/v1/metrics", b"[1, 2]", {"Content-Type": "application/json"}),
    ("/v1/traces", b'{"resourceSpans": [null]}', {"Content-Type": "application/json"}),
    ("/v1/traces", b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": '
                   b'"soon"}]}]}]}', {"Content-Type": "application/json"}),
    ("/v1/logs", b'{"resourceLogs": [{"resource": "web"}]}', {"Content-Type": "application/json"}),
    ("/v1/metrics", b'{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "m", '
                    b'"sum": {"dataPoints": [{"asInt": "99999999999999999999"}]}}]}]}]}',
     {"Content-Type": "application/json"}),
    ("/v1/metrics", b'{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "m", '
                    b'"gauge": {"dataPoints": [{"asInt": true}]}}]}]}]}',
     {"Content-Type": "application/json"}),
    ("/v1/logs", b"x", {"Content-Encoding": "zstd"}),
    ("/api/1/envelope/", b"x", {"Content-Encoding": "gzip"}),
    ("/api/1/envelope/", b'{}\n{"type":"event"}\n{broken', {}),
    ("/api/1/store/", b"[]", {"Content-Type": "application/json"}),
    ("/alertmanager/webhook", b"{}", {}),
    ("/alertmanager/webhook", b'{"alerts": [{"labels": ["alertname", "X"]}]}', {}),
    ("/alertmanager/webhook", b"[" * 100_000, {}),
])
def test_bad_requests_are_answered_400_with_the_reason(sink: Sink, path: str, body: bytes,
                                                       headers: dict[str, str]) -> None:
    resp = sink.post(path, body, headers)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]


@pytest.mark.parametrize(("path", "params"), [("/api/logs", {"limit": "many"}),
                                              ("/api/metrics", {"since": "yesterday"}),
                                              ("/api/notifications", {"since": "now"})])
def test_bad_queries_are_answered_400(sink: Sink, path: str, params: dict[str, str]) -> None:
    resp = sink.get(path, **params)
    assert resp.status_code == 400 and resp.json()["error"]


def test_metrics_was_404_and_is_now_accepted_empty(sink: Sink) -> None:
    """An SDK exporting nothing but an empty batch gets 200 (it used to log a 404 every 5 s)."""
    resp = sink.post("/v1/metrics", ExportMetricsServiceRequest().SerializeToString(), PROTOBUF)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/x-protobuf"


def test_otlp_json_metrics_every_point_type_with_its_details(sink: Sink) -> None:
    service = "svc-mjson-" + secrets.token_hex(3)
    attrs = [{"key": "route", "value": {"stringValue": "/x"}}]
    doc = {"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}},
                                    {"key": "host.name", "value": {"stringValue": "h1"}}]},
        "scopeMetrics": [{"scope": {"name": "json-test"}, "metrics": [
            {"name": "requests", "unit": "1", "description": "served", "sum": {
                "aggregationTemporality": 2, "isMonotonic": True, "dataPoints": [
                    {"attributes": attrs, "startTimeUnixNano": "1700000000000000000",
                     "timeUnixNano": "1700000005000000000", "asInt": "9007199254740993"}]}},
            {"name": "temperature", "gauge": {"dataPoints": [
                {"timeUnixNano": "1700000005000000000", "asDouble": 21.5},
                {"timeUnixNano": "1700000006000000000", "asDouble": "NaN"}]}},
            {"name": "latency", "unit": "s", "histogram": {
                "aggregationTemporality": "AGGREGATION_TEMPORALITY_DELTA", "dataPoints": [
                    {"count": "3", "sum": 1.75, "bucketCounts": ["1", "2", "0"],
                     "explicitBounds": [0.5, 1.0], "min": 0.25, "max": 1.0}]}},
            {"name": "sizes", "exponentialHistogram": {"aggregationTemporality": 2,
                                                       "dataPoints": [
                {"count": "2", "sum": 5, "scale": 1, "zeroCount": "0",
                 "positive": {"offset": 2, "bucketCounts": ["1", "1"]}}]}},
            {"name": "rpc", "summary": {"dataPoints": [
                {"count": "4", "sum": 2.0, "quantileValues": [{"quantile": 0.5, "value": 0.4},
                                                              {"quantile": 1.0, "value": 0.9}]}
            ]}},
            {"name": "no-data-yet"},
        ]}]}]}
    since = time.time()
    resp = sink.post("/v1/metrics", gzip.compress(json.dumps(doc).encode()),
                     {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert resp.status_code == 200 and resp.json() == {}
    points = {p["name"]: p for p in sink.rows("metrics", service=service)}
    assert set(points) == {"requests", "temperature", "latency", "sizes", "rpc"}
    requests = points["requests"]
    assert requests["value"] == 9007199254740993  # int64 stays exact (a double would not)
    assert requests["type"] == "sum" and requests["monotonic"] is True
    assert requests["temporality"] == "CUMULATIVE" and requests["unit"] == "1"
    assert requests["attributes"] == {"route": "/x"} and requests["scope"] == "json-test"
    assert requests["resource"] == {"service.name": service, "host.name": "h1"}
    assert requests["time_unix_nano"] - requests["start_unix_nano"] == 5_000_000_000
    assert requests["received_at"] >= since
    gauges = sink.rows("metrics", service=service, name="temperature")
    assert [g["value"] for g in gauges] == [21.5, "NaN"]  # non-finite: the JSON-mapping string
    assert gauges[0]["temporality"] is None and gauges[0]["monotonic"] is None
    latency = points["latency"]
    assert (latency["type"], latency["temporality"]) == ("histogram", "DELTA")
    assert (latency["value"], latency["count"], latency["sum"]) == (None, 3, 1.75)
    assert latency["details"] == {"bucket_counts": [1, 2, 0], "explicit_bounds": [0.5, 1.0],
                                  "min": 0.25, "max": 1.0}
    assert points["sizes"]["type"] == "exponential_histogram"
    assert points["sizes"]["details"]["positive"] == {"offset": 2, "bucket_counts": [1, 1]}
    assert points["rpc"]["type"] == "summary" and points["rpc"]["count"] == 4
    assert points["rpc"]["details"]["quantiles"][1] == {"quantile": 1.0, "value": 0.9}
    assert [p["name"] for p in sink.rows("metrics", service=service, type="summary")] == ["rpc"]
    assert sink.rows("metrics", service=service, since=str(time.time() + 60)) == []
    assert len(sink.rows("metrics", service=service, limit="2")) == 2


def test_otlp_protobuf_metrics_are_stored_like_json(sink: Sink) -> None:
    service = "svc-mpb-" + secrets.token_hex(3)
    req = ExportMetricsServiceRequest(resource_metrics=[ResourceMetrics(
        resource=_resource(service), scope_metrics=[ScopeMetrics(metrics=[
            Metric(name="queue_depth", unit="1", gauge=Gauge(data_points=[
                NumberDataPoint(as_int=-3, time_unix_nano=1_700_000_000_000_000_000,
                                attributes=[_kv("queue", "uploads")])])),
            Metric(name="bytes_total", sum=Sum(
                aggregation_temporality=AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA,
                is_monotonic=False, data_points=[NumberDataPoint(as_double=0.0)])),
        ])])])
    resp = sink.post("/v1/metrics", req.SerializeToString(), PROTOBUF)
    assert resp.status_code == 200
    assert ExportMetricsServiceResponse.FromString(resp.content) is not None
    points = {p["name"]: p for p in sink.rows("metrics", service=service)}
    assert points["queue_depth"]["value"] == -3
    assert points["queue_depth"]["attributes"] == {"queue": "uploads"}
    # 0.0 is the proto3 default but sits in a oneof: it is a value, not "no value".
    assert points["bytes_total"]["value"] == 0.0
    assert points["bytes_total"]["monotonic"] is False
    assert points["bytes_total"]["temporality"] == "DELTA"


def test_alertmanager_is_one_webhook_vendor_among_the_others(sink: Sink) -> None:
    """/webhooks/alertmanager stores what /alertmanager/webhook stores; an unknown vendor is
    404 naming every known one."""
    name = f"Vendor{secrets.token_hex(4)}"
    payload = {"receiver": "readygate", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": name}, "annotations": {},
         "startsAt": "2024-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "", "fingerprint": "ccc"}]}
    for path in ("/alertmanager/webhook", "/webhooks/alertmanager"):
        resp = sink.post(path, json.dumps(payload).encode(), {"Content-Type": "application/json"})
        assert resp.status_code == 200 and resp.json() == {"stored": 1}, resp.text
    rows = sink.get("/api/notifications", alertname=name).json()["notifications"]
    assert len(rows) == 2 and rows[0]["labels"] == rows[1]["labels"] == {"alertname": name}
    assert {k: v for k, v in rows[0].items() if k not in ("id", "received_at")} == \
        {k: v for k, v in rows[1].items() if k not in ("id", "received_at")}

    unknown = sink.post("/webhooks/nagios", b"{}", {"Content-Type": "application/json"})
    assert unknown.status_code == 404
    error = unknown.json()["error"]
    assert "'nagios'" in error
    assert all(v in error for v in ("alertmanager", "datadog", "gcloud", "grafana", "sentry"))
