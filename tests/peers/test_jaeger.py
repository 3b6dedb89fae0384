"""The ``jaeger`` traces backend against a real Jaeger v2 (in-memory storage) that received
spans over OTLP/HTTP: from the OpenTelemetry SDK, and from the real demo services."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from core.procs import ProcessSet, start_python_service
from demo.real_backends import jaeger_config as real_jaeger_config
from demo.stack import free_port
from gates.backends.traces import JaegerTraces
from tests.fixtures.demo_system import api_token, eventually
from tests.gates.conftest import judge_with, make_probe
from tests.peers.conftest import peer_binary, running


@dataclass
class Jaeger:
    query: str   # query API / UI base URL
    otlp: str    # OTLP/HTTP base URL (append /v1/traces)


def jaeger_config(otlp: int, query: int, grpc: int) -> dict[str, object]:
    """Jaeger v2's all-in-one pipeline on loopback ports of our choosing (the demo's)."""
    return real_jaeger_config(otlp_port=otlp, query_port=query, grpc_port=grpc)


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    binary = peer_binary("jaeger")
    tmp = tmp_path_factory.mktemp("jaeger")
    otlp, query, grpc = free_port(), free_port(), free_port()
    (tmp / "jaeger.yaml").write_text(yaml.safe_dump(jaeger_config(otlp, query, grpc)))
    with running("jaeger", [str(binary), "--config", f"file:{tmp / 'jaeger.yaml'}"],
                 tmp) as peer:
        peer.wait_http(f"http://127.0.0.1:{query}/api/services",
                       ok=lambda r: r.status_code == 200)
        peer.wait_http(f"http://127.0.0.1:{otlp}/v1/traces")  # 405 on GET: it listens
        yield Jaeger(f"http://127.0.0.1:{query}", f"http://127.0.0.1:{otlp}")


def send_spans(jaeger: Jaeger, trace_id: str, *, storage_error: bool = False) -> None:
    """web:POST /upload -> storage:PUT /objects/{id}, exported by the real OTel SDK."""
    providers = {name: TracerProvider(resource=Resource.create({"service.name": name}))
                 for name in ("web", "storage")}
    for provider in providers.values():
        provider.add_span_processor(SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=jaeger.otlp + "/v1/traces", timeout=5)))
    # the probe's traceparent: the trace id readygate sent becomes the trace's id
    remote = SpanContext(int(trace_id, 16), int(secrets.token_hex(8), 16), is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.SAMPLED))
    web = providers["web"].get_tracer("t")
    storage = providers["storage"].get_tracer("t")
    with web.start_as_current_span("POST /upload",
                                   context=set_span_in_context(NonRecordingSpan(remote))), \
            storage.start_as_current_span(
                "PUT /objects/{id}", attributes={"http.route": "/objects/{id}"}) as span:
        if storage_error:
            span.set_status(Status(StatusCode.ERROR, "disk full"))
    for provider in providers.values():
        provider.shutdown()


def test_trace_check_reads_sdk_spans_from_real_jaeger(jaeger: Jaeger) -> None:
    trace_id = secrets.token_hex(16)
    send_spans(jaeger, trace_id)
    probes = [make_probe(trace_id=trace_id)]
    traces = {"traces": lambda http: JaegerTraces(jaeger.query, http)}
    r = judge_with({"signal": "trace", "services": ["web", "storage"], "deadline_s": 10,
                    "spans": [{"service": "storage",
                               "attributes": {"http.route": "/objects/*"}}]},
                   phase="baseline", probes=probes, **traces)
    assert r.status == "pass", r.message
    r = judge_with({"signal": "trace", "services": ["web", "db"], "deadline_s": 0.5},
                   phase="baseline", probes=probes, **traces)
    assert r.status == "fail" and "missing db" in r.message
    # an id Jaeger never saw: its 404 is no data (a fail at the deadline), not an error
    r = judge_with({"signal": "trace", "deadline_s": 0.5}, phase="baseline",
                   probes=[make_probe(trace_id=secrets.token_hex(16))], **traces)
    assert r.status == "fail" and "no spans" in r.message


def test_error_span_pass_and_fail_on_real_jaeger(jaeger: Jaeger) -> None:
    good, bad = secrets.token_hex(16), secrets.token_hex(16)
    send_spans(jaeger, good, storage_error=True)
    send_spans(jaeger, bad)                    # the fault left no error mark on the span
    traces = {"traces": lambda http: JaegerTraces(jaeger.query, http)}
    check = {"signal": "trace_error_span", "span": {"service": "storage"}, "deadline_s": 10}
    r = judge_with(check, probes=[make_probe(ok=False, trace_id=good)], **traces)
    assert r.status == "pass", r.message
    assert r.evidence["link"] == f"{jaeger.query}/trace/{good}"
    r = judge_with({**check, "deadline_s": 1.5},
                   probes=[make_probe(ok=False, trace_id=bad)], **traces)
    assert r.status == "fail" and "none has error status" in r.message


def test_jaeger_spans_carry_ids_services_and_parents(jaeger: Jaeger) -> None:
    """The real answer's quirks: hex ids, processes map, CHILD_OF references."""
    trace_id = secrets.token_hex(16)
    send_spans(jaeger, trace_id)

    async def spans() -> list[object]:
        async with httpx.AsyncClient(trust_env=False) as http:
            return list(await JaegerTraces(jaeger.query, http).trace(trace_id))

    found = eventually(lambda: len(got := asyncio.run(spans())) == 2 and got, timeout=10,
                       what="two spans in jaeger")
    by_service = {s.service: s for s in found}  # type: ignore[attr-defined]
    assert set(by_service) == {"web", "storage"}
    assert by_service["storage"].parent_id == by_service["web"].span_id
    assert all(s.trace_id == trace_id for s in by_service.values())


def test_demo_services_traces_reach_real_jaeger(jaeger: Jaeger, tmp_path: Path) -> None:
    """The real demo web and storage export to Jaeger instead of the sink."""
    procs = ProcessSet()
    try:
        # --sink-url is where the demo sends OTLP (/v1/traces); Jaeger takes the traces and
        # refuses the logs and Sentry events, which the services shrug off
        storage = asyncio.run(start_python_service(
            procs, "storage", "demo.storage", ["--sink-url", jaeger.otlp], log_dir=tmp_path))
        web = asyncio.run(start_python_service(
            procs, "web", "demo.web", ["--storage-url", str(storage.url),
                                       "--sink-url", jaeger.otlp],
            env={"DEMO_PASSWORD": "pw-peer-test-1", "DEMO_USER": "demo"}, log_dir=tmp_path))
        base = str(web.url)
        token = api_token(base, "demo", "pw-peer-test-1")
        trace_id = secrets.token_hex(16)
        resp = httpx.post(base + "/api/uploads", files={"file": ("p.bin", b"x" * 64)},
                          headers={"Authorization": f"Bearer {token}",
                                   "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
                          timeout=10)
        assert resp.status_code == 201, resp.text
        traces = {"traces": lambda http: JaegerTraces(jaeger.query, http)}
        r = judge_with({"signal": "trace", "services": ["web", "storage"], "deadline_s": 15},
                       phase="baseline", probes=[make_probe(trace_id=trace_id)], **traces)
        assert r.status == "pass", r.message
    finally:
        procs.stop_all()
