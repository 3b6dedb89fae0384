"""Whatever a client sends, the sink answers 200 or 400, never 500, and stays queryable.

Bodies are generated JSON built from the keys the decoders look for (so they reach deep
into the flattening code), sent to the session's sink over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sink.conftest import Sink

KEYS = [
    "resourceSpans", "resourceLogs", "resourceMetrics", "resource", "attributes", "key",
    "value", "stringValue", "intValue", "doubleValue", "boolValue", "arrayValue",
    "kvlistValue", "bytesValue", "values", "scopeSpans", "scopeLogs", "scopeMetrics", "scope",
    "name", "spans", "logRecords", "metrics", "gauge", "sum", "histogram",
    "exponentialHistogram", "summary", "dataPoints", "asInt", "asDouble", "count",
    "bucketCounts", "explicitBounds", "quantileValues", "quantile", "positive", "offset",
    "scale", "min", "max", "aggregationTemporality", "isMonotonic", "traceId", "spanId",
    "parentSpanId", "kind", "status", "code", "body", "severityNumber", "severityText",
    "timeUnixNano", "startTimeUnixNano", "endTimeUnixNano", "alerts", "labels", "annotations",
    "receiver", "alertname", "startsAt", "fingerprint", "exception", "type", "tags",
    "contexts", "trace", "trace_id", "message", "logentry", "formatted", "event_id", "level",
]
LEAVES = (st.none() | st.booleans() | st.integers() | st.floats()
          | st.text(max_size=8) | st.sampled_from(["1", "-1", "NaN", "2", "ab" * 8, "zz"]))
DOCS = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=3), inner, max_size=4),
    max_leaves=25)
# Objects whose keys are the decoders' own, with anything as values.
OBJ = st.dictionaries(st.sampled_from(KEYS), DOCS, max_size=6)
POINT_TYPES = ["gauge", "sum", "histogram", "exponentialHistogram", "summary"]
METRIC = st.fixed_dictionaries({"name": LEAVES}, optional={
    kind: st.fixed_dictionaries({"dataPoints": st.lists(OBJ, max_size=3)}, optional={
        "aggregationTemporality": LEAVES, "isMonotonic": LEAVES})
    for kind in POINT_TYPES})


def _otlp(keys: list[str], item: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The OTLP nesting (resource → scope → items) around generated items."""
    for key in reversed(keys):
        item = st.fixed_dictionaries({key: st.lists(item, max_size=2)},
                                     optional={"resource": OBJ, "scope": OBJ})
    return item


# (endpoint, body) pairs: well-nested bodies reach the flattening code, loose ones the checks.
SHAPED = st.one_of(
    st.tuples(st.just("/v1/traces"), _otlp(["resourceSpans", "scopeSpans", "spans"], OBJ)),
    st.tuples(st.just("/v1/logs"), _otlp(["resourceLogs", "scopeLogs", "logRecords"], OBJ)),
    st.tuples(st.just("/v1/metrics"),
              _otlp(["resourceMetrics", "scopeMetrics", "metrics"], METRIC)),
    st.tuples(st.just("/alertmanager/webhook"),
              st.fixed_dictionaries({"alerts": st.lists(OBJ, max_size=3)}, optional={
                  "receiver": LEAVES, "status": LEAVES})),
    st.tuples(st.just("/api/1/store/"), OBJ),
)
ENDPOINTS = ["/v1/traces", "/v1/logs", "/v1/metrics", "/api/1/store/", "/alertmanager/webhook"]
QUERIES = ["/api/logs", "/api/metrics", "/api/errors", "/api/notifications", "/api/stats",
           "/api/storage"]


def _strict(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def client(sink: Sink) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sink.url, timeout=5.0, trust_env=False) as c:
        yield c
    assert sink.proc.alive(), "the sink died under the fuzzing"


@settings(max_examples=200, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(request=st.one_of(SHAPED, st.tuples(st.sampled_from(ENDPOINTS), DOCS)))
def test_any_json_body_is_200_or_400(client: httpx.Client, request: tuple[str, Any]) -> None:
    endpoint, doc = request
    body = json.dumps(doc).encode()  # Python writes NaN/Infinity literals: so may clients
    resp = client.post(endpoint, content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code in (200, 400), resp.text
    if resp.status_code == 400:
        assert _strict(resp.text)["error"]


@settings(max_examples=100, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(events=st.lists(DOCS, max_size=3), header=DOCS)
def test_any_envelope_is_200_or_400(client: httpx.Client, events: list[Any], header: Any) -> None:
    lines = [json.dumps({"event_id": "e"})]
    for event in events:
        lines += [json.dumps(header if isinstance(header, dict) else {"type": "event"}),
                  json.dumps(event)]
    resp = client.post("/api/1/envelope/", content="\n".join(lines).encode())
    assert resp.status_code in (200, 400), resp.text


@settings(max_examples=100, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(endpoint=st.sampled_from(["/v1/traces", "/v1/logs", "/v1/metrics"]), body=st.binary())
def test_any_protobuf_body_is_200_or_400(client: httpx.Client, endpoint: str,
                                         body: bytes) -> None:
    resp = client.post(endpoint, content=body,
                       headers={"Content-Type": "application/x-protobuf"})
    assert resp.status_code in (200, 400), resp.text


NASTY = [
    ("/v1/logs", '{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"doubleValue":'
                 ' NaN}, "attributes": [{"key": "big", "value": {"intValue":'
                 ' "123456789012345678901234"}}, {"key": "inf", "value": {"doubleValue":'
                 ' 1e999}}]}]}]}]}'),
    ("/v1/metrics", '{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "nasty",'
                    ' "histogram": {"dataPoints": [{"count": "1", "sum": -Infinity,'
                    ' "explicitBounds": [Infinity], "attributes": [{"key": "x", "value":'
                    ' {"doubleValue": NaN}}]}]}}]}]}]}'),
    ("/api/1/store/", '{"event_id": "e1", "extra": {"ratio": NaN, "n": 1e999}, "message": 7}'),
    ("/alertmanager/webhook", '{"alerts": [{"labels": {"alertname": "N"}, "startsAt": 1.5,'
                              ' "annotations": {"v": -Infinity}}]}'),
]


def test_stored_nan_infinity_and_huge_numbers_are_answered_as_strict_json(
        client: httpx.Client) -> None:
    """Python's parser takes NaN, Infinity and 1e999; the query API must still answer JSON."""
    for path, body in NASTY:
        resp = client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert resp.status_code == 200, (path, resp.text)
    for path in QUERIES:
        resp = client.get(path, params={"limit": "10000"})
        assert resp.status_code == 200, (path, resp.text[:200])
        _strict(resp.text)
    nasty = _strict(client.get("/api/metrics", params={"name": "nasty"}).text)["metrics"][-1]
    assert nasty["sum"] == "-Infinity" and nasty["details"]["explicit_bounds"] == ["Infinity"]
    assert nasty["attributes"] == {"x": "NaN"}
