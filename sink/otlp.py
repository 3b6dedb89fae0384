"""OTLP export requests (traces, logs, metrics) flattened into rows, from either transport.

OTLP/HTTP bodies arrive as protobuf or JSON; OTLP/gRPC requests arrive as protobuf
messages. All three are turned into the same JSON-form dict (``MessageToDict`` for
protobuf) and flattened by one function per signal, so both transports store identical
rows. Ids are lowercase hex; non-finite doubles are kept as the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"`` (as the protobuf JSON mapping spells them) so every
answer of the query API stays valid JSON.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# No types-protobuf stubs in the venv; these names are all the sink needs.
from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from sink.formats import BadPayload, Json, loads

SPAN_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER",
              5: "CONSUMER"}
STATUS_CODES = {0: "UNSET", 1: "OK", 2: "ERROR"}
TEMPORALITIES = {0: "UNSPECIFIED", 1: "DELTA", 2: "CUMULATIVE"}
# The OTLP metric data fields and the ``type`` the sink stores for each.
METRIC_TYPES = {"gauge": "gauge", "sum": "sum", "histogram": "histogram",
                "exponentialHistogram": "exponential_histogram",
                "exponential_histogram": "exponential_histogram", "summary": "summary"}

Flatten = Callable[[Json, bool, float], list[Json]]


def _id_hex(value: Any, ids_are_base64: bool) -> str:
    """An OTLP trace/span id as lowercase hex ('' when absent)."""
    if not value:
        return ""
    text = str(value)
    if ids_are_base64:
        return base64.b64decode(text, validate=True).hex()
    return text.lower()


def double(value: Any) -> float | str:
    """An OTLP double: a float, or the JSON-mapping string of a non-finite one."""
    number = float(value)
    if math.isfinite(number):
        return number
    return "NaN" if math.isnan(number) else "Infinity" if number > 0 else "-Infinity"


def _int(value: Any) -> int:
    """An OTLP (u)int64, which OTLP JSON writes as a string; absent is 0."""
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    return int(value or 0)


def any_value(value: Any) -> Any:
    """An OTLP AnyValue (JSON form) as a plain Python value."""
    if not isinstance(value, Mapping):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        return _int(value["intValue"])
    if "doubleValue" in value:
        return double(value["doubleValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return attributes_dict((value["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes_dict(attrs: Iterable[Any]) -> Json:
    """OTLP ``[{key, value}]`` attributes as a dict."""
    return {str(kv.get("key")): any_value(kv.get("value")) for kv in attrs or []
            if isinstance(kv, Mapping)}


def _enum(value: Any, names: Mapping[int, str], prefix: str) -> str:
    if isinstance(value, int):
        return names.get(value, str(value))
    text = str(value or "")
    if not text:
        return names[0]
    if text.isdigit():
        return names.get(int(text), text)
    return text.removeprefix(prefix)


def _resource_attributes(resource: Any) -> Json:
    return attributes_dict((resource or {}).get("attributes", []))


def _service(resource_attrs: Mapping[str, Any]) -> str:
    return str(resource_attrs.get("service.name") or "unknown")


def _get(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    # The OTLP JSON spec says lowerCamelCase, but receivers must accept snake_case too.
    return obj.get(camel, obj.get(snake))


def span_rows(doc: Json, ids_are_base64: bool, received_at: float) -> list[Json]:
    """Flatten an ExportTraceServiceRequest (JSON form) into span rows."""
    rows: list[Json] = []
    for rs in _get(doc, "resourceSpans", "resource_spans") or []:
        service = _service(_resource_attributes(rs.get("resource")))
        for ss in _get(rs, "scopeSpans", "scope_spans") or []:
            for span in ss.get("spans") or []:
                status = span.get("status") or {}
                rows.append({
                    "received_at": received_at,
                    "trace_id": _id_hex(_get(span, "traceId", "trace_id"), ids_are_base64),
                    "span_id": _id_hex(_get(span, "spanId", "span_id"), ids_are_base64),
                    "parent_span_id": _id_hex(_get(span, "parentSpanId", "parent_span_id"),
                                              ids_are_base64),
                    "name": str(span.get("name", "")),
                    "service": service,
                    "kind": _enum(span.get("kind", 0), SPAN_KINDS, "SPAN_KIND_"),
                    "status_code": _enum(status.get("code", 0), STATUS_CODES, "STATUS_CODE_"),
                    "start_unix_nano": _int(_get(span, "startTimeUnixNano",
                                                 "start_time_unix_nano")),
                    "end_unix_nano": _int(_get(span, "endTimeUnixNano", "end_time_unix_nano")),
                    "attributes": attributes_dict(span.get("attributes") or []),
                })
    return rows


def log_rows(doc: Json, ids_are_base64: bool, received_at: float) -> list[Json]:
    """Flatten an ExportLogsServiceRequest (JSON form) into log rows."""
    rows: list[Json] = []
    for rl in _get(doc, "resourceLogs", "resource_logs") or []:
        service = _service(_resource_attributes(rl.get("resource")))
        for sl in _get(rl, "scopeLogs", "scope_logs") or []:
            for rec in _get(sl, "logRecords", "log_records") or []:
                body = any_value(rec.get("body"))
                attrs = attributes_dict(rec.get("attributes") or [])
                severity = _get(rec, "severityNumber", "severity_number") or 0
                time_ns = _int(_get(rec, "timeUnixNano", "time_unix_nano")) or _int(
                    _get(rec, "observedTimeUnixNano", "observed_time_unix_nano"))
                rows.append({
                    "received_at": received_at,
                    "time_unix_nano": time_ns,
                    "service": service,
                    "severity_text": str(_get(rec, "severityText", "severity_text") or ""),
                    "severity_number": int(severity) if str(severity).isdigit() else 0,
                    "body": body if isinstance(body, str) else json.dumps(body, default=str),
                    "trace_id": _id_hex(_get(rec, "traceId", "trace_id"), ids_are_base64),
                    "span_id": _id_hex(_get(rec, "spanId", "span_id"), ids_are_base64),
                    "request_id": str(attrs["request_id"]) if "request_id" in attrs else None,
                    "attributes": attrs,
                })
    return rows


def _optional_double(point: Mapping[str, Any], key: str) -> float | str | None:
    return double(point[key]) if point.get(key) is not None else None


def _buckets(buckets: Any) -> Json:
    buckets = buckets or {}
    return {"offset": _int(buckets.get("offset")),
            "bucket_counts": [_int(c) for c in _get(buckets, "bucketCounts", "bucket_counts")
                              or []]}


def _point_details(kind: str, point: Mapping[str, Any]) -> Json:
    """What a point holds beyond value/count/sum: buckets, bounds, quantiles, min, max."""
    details: Json = {}
    if kind == "histogram":
        details["bucket_counts"] = [_int(c) for c in
                                    _get(point, "bucketCounts", "bucket_counts") or []]
        details["explicit_bounds"] = [double(b) for b in
                                      _get(point, "explicitBounds", "explicit_bounds") or []]
    elif kind == "exponential_histogram":
        details["scale"] = _int(point.get("scale"))
        details["zero_count"] = _int(_get(point, "zeroCount", "zero_count"))
        details["positive"] = _buckets(point.get("positive"))
        details["negative"] = _buckets(point.get("negative"))
    elif kind == "summary":
        details["quantiles"] = [
            {"quantile": double(q.get("quantile") or 0), "value": double(q.get("value") or 0)}
            for q in _get(point, "quantileValues", "quantile_values") or []]
    for key in ("min", "max"):
        if point.get(key) is not None:
            details[key] = double(point[key])
    return details


def _point_value(kind: str, point: Mapping[str, Any]) -> tuple[Any, int | None, Any]:
    """(value, count, sum) of one data point; gauges and sums have a value, the rest count+sum."""
    if kind in ("gauge", "sum"):
        if _get(point, "asInt", "as_int") is not None:
            return _int(_get(point, "asInt", "as_int")), None, None
        if _get(point, "asDouble", "as_double") is not None:
            return double(_get(point, "asDouble", "as_double")), None, None
        return None, None, None
    return None, _int(point.get("count")), _optional_double(point, "sum")


def metric_rows(doc: Json, ids_are_base64: bool, received_at: float) -> list[Json]:
    """Flatten an ExportMetricsServiceRequest (JSON form) into one row per data point."""
    del ids_are_base64  # metrics carry ids only in exemplars, which the sink does not keep
    rows: list[Json] = []
    for rm in _get(doc, "resourceMetrics", "resource_metrics") or []:
        resource = _resource_attributes(rm.get("resource"))
        service = _service(resource)
        for sm in _get(rm, "scopeMetrics", "scope_metrics") or []:
            scope = str((sm.get("scope") or {}).get("name") or "")
            for metric in sm.get("metrics") or []:
                field = next((f for f in METRIC_TYPES if metric.get(f) is not None), None)
                if field is None:
                    continue  # a metric without data (allowed by the spec): nothing to store
                kind, data = METRIC_TYPES[field], metric[field]
                temporality = _get(data, "aggregationTemporality", "aggregation_temporality")
                monotonic = _get(data, "isMonotonic", "is_monotonic")
                for point in _get(data, "dataPoints", "data_points") or []:
                    value, count, total = _point_value(kind, point)
                    rows.append({
                        "received_at": received_at,
                        "service": service,
                        "scope": scope,
                        "name": str(metric.get("name") or ""),
                        "description": str(metric.get("description") or ""),
                        "unit": str(metric.get("unit") or ""),
                        "type": kind,
                        "temporality": (None if kind in ("gauge", "summary") else
                                        _enum(temporality or 0, TEMPORALITIES,
                                              "AGGREGATION_TEMPORALITY_")),
                        "monotonic": None if kind != "sum" else bool(monotonic),
                        "time_unix_nano": _int(_get(point, "timeUnixNano", "time_unix_nano")),
                        "start_unix_nano": _int(_get(point, "startTimeUnixNano",
                                                     "start_time_unix_nano")),
                        "value": value,
                        "count": count,
                        "sum": total,
                        "attributes": attributes_dict(point.get("attributes") or []),
                        "resource": resource,
                        "details": _point_details(kind, point),
                    })
    return rows


@dataclass(frozen=True)
class Signal:
    """One OTLP signal: its messages, how it is flattened, and the table it lands in."""

    name: str
    request: type[Any]
    response: type[Any]
    flatten: Flatten
    table: str


TRACES = Signal("traces", ExportTraceServiceRequest, ExportTraceServiceResponse, span_rows,
                "spans")
LOGS = Signal("logs", ExportLogsServiceRequest, ExportLogsServiceResponse, log_rows, "logs")
METRICS = Signal("metrics", ExportMetricsServiceRequest, ExportMetricsServiceResponse,
                 metric_rows, "metrics")


def message_rows(signal: Signal, message: Any, received_at: float) -> list[Json]:
    """The rows of a decoded protobuf export request (OTLP/gRPC, or OTLP/HTTP protobuf)."""
    doc = MessageToDict(message, use_integers_for_enums=True)
    return rows_of(signal, doc, True, received_at)


def rows_of(signal: Signal, doc: Json, ids_are_base64: bool, received_at: float) -> list[Json]:
    """Flatten ``doc``; a body of the wrong shape is a :class:`BadPayload`, never a crash."""
    try:
        return signal.flatten(doc, ids_are_base64, received_at)
    except BadPayload:
        raise
    except (ValueError, TypeError, AttributeError, KeyError, RecursionError) as exc:
        raise BadPayload(f"malformed OTLP {signal.name} payload: {exc}") from exc


def decode_http(signal: Signal, body: bytes, content_type: str, received_at: float
                ) -> list[Json]:
    """The rows of an OTLP/HTTP request body, JSON or protobuf by its Content-Type."""
    if "json" in content_type:
        try:
            doc = loads(body or b"{}")
        except ValueError as exc:
            raise BadPayload(f"invalid OTLP JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise BadPayload("OTLP JSON body must be an object")
        return rows_of(signal, doc, False, received_at)  # OTLP JSON carries hex ids
    message = signal.request()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise BadPayload(f"invalid OTLP protobuf: {exc}") from exc
    return message_rows(signal, message, received_at)
