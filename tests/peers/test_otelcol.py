"""A real OpenTelemetry Collector (peers/otelcol, collector v0.165.0) between the
exporters and the stores: spans and logs from the OTel SDK and from the real demo
services pass through it to readygate's sink and to a real Jaeger, the trace and logs
checks pass on what arrived, and a metric check on the Collector's own metrics (scraped by
a real VictoriaMetrics) proves it dropped nothing, and fails when its destination is down."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from core.procs import ProcessSet, start_python_service
from demo.real_backends import collector_config, jaeger_config
from demo.stack import free_port
from gates.backends.config import SignalBackend
from gates.backends.registry import build
from gates.backends.sink import SinkClient, SinkLogs, SinkTraces
from gates.backends.traces import JaegerTraces
from tests.fixtures.demo_system import api_token
from tests.gates.conftest import judge_with, make_probe
from tests.peers.conftest import Peer, peer_binary, running

# The check docs/backends.md tells users to write: the Collector exported spans and
# refused or failed none (its v0.165 metric names carry no _total suffix)
DROPPED_NOTHING = ('sum(otelcol_exporter_sent_spans{{job="{job}"}}) > 0 unless '
                   'sum({{job="{job}", __name__=~"otelcol_exporter_send_failed_spans'
                   '|otelcol_receiver_refused_spans"}}) > 0')


@dataclass
class Collector:
    otlp: str     # OTLP/HTTP base URL
    metrics: str  # its own metrics page
    peer: Peer


@dataclass
class Pipeline:
    sink: str
    jaeger: str         # Jaeger's query API
    good: Collector     # -> sink and Jaeger
    broken: Collector   # -> a port where nothing listens
    vm: str             # VictoriaMetrics scraping both Collectors' metrics


def start_collector(name: str, exporters: dict[str, Any], pipelines: dict[str, list[str]],
                    tmp: Path, stack: ExitStack) -> Collector:
    """The real Collector with these exporters, its own metrics on a free port."""
    otlp, metrics = free_port(), free_port()
    config = collector_config(otlp_port=otlp, metrics_port=metrics,
                              jaeger_otlp="http://unused.invalid",
                              victorialogs="http://unused.invalid")
    config["exporters"] = exporters
    config["service"]["pipelines"] = {
        signal: {"receivers": ["otlp"], "processors": ["batch"], "exporters": names}
        for signal, names in pipelines.items()}
    (tmp / f"{name}.yaml").write_text(yaml.safe_dump(config))
    peer = stack.enter_context(running(name, [str(peer_binary("otelcol")), "--config",
                                              f"file:{tmp / f'{name}.yaml'}"], tmp))
    peer.wait_http(f"http://127.0.0.1:{metrics}/metrics", ok=lambda r: r.status_code == 200)
    peer.wait_http(f"http://127.0.0.1:{otlp}/v1/traces")  # 405 on GET: the receiver listens
    return Collector(f"http://127.0.0.1:{otlp}", f"http://127.0.0.1:{metrics}/metrics", peer)


def direct(**endpoints: str) -> dict[str, Any]:
    """otlp_http exporter settings: no retries, no queue (a failure counts at once)."""
    return {**endpoints, "retry_on_failure": {"enabled": False},
            "sending_queue": {"enabled": False}}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    peer_binary("otelcol")
    tmp = tmp_path_factory.mktemp("otelcol")
    procs = ProcessSet()
    with ExitStack() as stack:
        stack.callback(procs.stop_all)
        sink = asyncio.run(start_python_service(procs, "sink", "sink.server",
                                                ["--db", str(tmp / "sink.db")], log_dir=tmp))
        assert sink.url is not None
        j_otlp, j_query = free_port(), free_port()
        (tmp / "jaeger.yaml").write_text(yaml.safe_dump(jaeger_config(
            otlp_port=j_otlp, query_port=j_query, grpc_port=free_port())))
        jaeger = stack.enter_context(running("jaeger", [
            str(peer_binary("jaeger")), "--config", f"file:{tmp / 'jaeger.yaml'}"], tmp))
        jaeger.wait_http(f"http://127.0.0.1:{j_query}/api/services",
                         ok=lambda r: r.status_code == 200)
        jaeger.wait_http(f"http://127.0.0.1:{j_otlp}/v1/traces")
        good = start_collector("otelcol-good", {
            "otlp_http/sink": direct(endpoint=sink.url),
            "otlp_http/jaeger": direct(traces_endpoint=f"http://127.0.0.1:{j_otlp}/v1/traces"),
        }, {"traces": ["otlp_http/sink", "otlp_http/jaeger"], "logs": ["otlp_http/sink"]},
            tmp, stack)
        down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        broken = start_collector("otelcol-broken", {"otlp_http/down": direct(endpoint=down)},
                                 {"traces": ["otlp_http/down"], "logs": ["otlp_http/down"]},
                                 tmp, stack)
        (tmp / "scrape.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [{"job_name": job, "static_configs": [
                {"targets": [c.metrics.split("//")[1].removesuffix("/metrics")]}]}
                for job, c in (("good", good), ("broken", broken))]}))
        port = free_port()
        vm_url = f"http://127.0.0.1:{port}"
        vm = stack.enter_context(running("victoria-metrics", [
            str(peer_binary("victoriametrics")), f"-httpListenAddr=127.0.0.1:{port}",
            f"-storageDataPath={tmp / 'vm'}", f"-promscrape.config={tmp / 'scrape.yml'}",
            "-search.latencyOffset=0s", "-loggerLevel=WARN"], tmp))
        vm.wait_http(vm_url + "/health", ok=lambda r: r.status_code == 200)
        yield Pipeline(sink.url, f"http://127.0.0.1:{j_query}", good, broken, vm_url)


def send(otlp: str, trace_id: str, *, log: str | None = None) -> None:
    """web -> storage spans of trace ``trace_id`` (and a log line in it) via the real SDK."""
    remote = SpanContext(int(trace_id, 16), int(secrets.token_hex(8), 16), is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.SAMPLED))
    providers = {name: TracerProvider(resource=Resource.create({"service.name": name}))
                 for name in ("web", "storage")}
    for provider in providers.values():
        provider.add_span_processor(SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=otlp + "/v1/traces", timeout=5)))
    logs = LoggerProvider(resource=Resource.create({"service.name": "web"}))
    logs.add_log_record_processor(SimpleLogRecordProcessor(
        OTLPLogExporter(endpoint=otlp + "/v1/logs", timeout=5)))
    with providers["web"].get_tracer("t").start_as_current_span(
            "POST /upload", context=set_span_in_context(NonRecordingSpan(remote))), \
            providers["storage"].get_tracer("t").start_as_current_span("PUT /objects/{id}"):
        if log is not None:  # inside the span: the record carries its trace id
            logs.get_logger("t").emit(severity_number=SeverityNumber.WARN,
                                      severity_text="WARN", body=log)
    for provider in providers.values():
        provider.shutdown()
    logs.shutdown()


def sink_traces(url: str) -> Any:
    return lambda http: SinkTraces(SinkClient(url, http))


def sink_logs(url: str) -> Any:
    return lambda http: SinkLogs(SinkClient(url, http))


def test_sdk_spans_and_logs_pass_through_the_collector_to_jaeger_and_the_sink(
        pipeline: Pipeline) -> None:
    trace_id = secrets.token_hex(16)
    send(pipeline.good.otlp, trace_id, log="upload stored")
    probes = [make_probe(trace_id=trace_id)]
    check = {"signal": "trace", "services": ["web", "storage"], "deadline_s": 10}
    r = judge_with(check, phase="baseline", probes=probes,
                   traces=lambda http: JaegerTraces(pipeline.jaeger, http))
    assert r.status == "pass", r.message
    r = judge_with(check, phase="baseline", probes=probes, traces=sink_traces(pipeline.sink))
    assert r.status == "pass", r.message
    r = judge_with({"signal": "logs", "journey": "upload", "services": ["web"],
                    "deadline_s": 10}, phase="baseline", probes=probes,
                   logs=sink_logs(pipeline.sink))
    assert r.status == "pass", r.message
    # what went to the broken Collector arrived nowhere: the same checks fail
    lost = secrets.token_hex(16)
    send(pipeline.broken.otlp, lost, log="upload stored")
    r = judge_with({**check, "deadline_s": 1.5}, phase="baseline",
                   probes=[make_probe(trace_id=lost)],
                   traces=lambda http: JaegerTraces(pipeline.jaeger, http))
    assert r.status == "fail" and "no spans" in r.message, r.message
    # a probe made per look: it must fall inside the check's phase
    r = judge_with({"signal": "logs", "journey": "upload", "deadline_s": 1.5},
                   phase="baseline", probes=[make_probe(trace_id=lost)],
                   logs=sink_logs(pipeline.sink))
    assert r.status == "fail", r.message


def test_demo_services_through_the_collector_reach_jaeger_and_the_sink(
        pipeline: Pipeline, tmp_path: Path) -> None:
    """web and storage send OTLP to the Collector, Sentry events to the sink."""
    procs = ProcessSet()
    telemetry = ["--sink-url", pipeline.sink, "--otlp-url", pipeline.good.otlp]
    try:
        storage = asyncio.run(start_python_service(procs, "storage", "demo.storage",
                                                   telemetry, log_dir=tmp_path))
        web = asyncio.run(start_python_service(
            procs, "web", "demo.web", ["--storage-url", str(storage.url), *telemetry],
            env={"DEMO_PASSWORD": "pw-peer-test-1", "DEMO_USER": "demo"}, log_dir=tmp_path))
        base = str(web.url)
        token = api_token(base, "demo", "pw-peer-test-1")
        trace_id = secrets.token_hex(16)
        resp = httpx.post(base + "/api/uploads", files={"file": ("p.bin", b"x" * 64)},
                          headers={"Authorization": f"Bearer {token}",
                                   "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
                          timeout=10)
        assert resp.status_code == 201, resp.text
        probes = [make_probe(trace_id=trace_id)]
        r = judge_with({"signal": "trace", "services": ["web", "storage"], "deadline_s": 15},
                       phase="baseline", probes=probes,
                       traces=lambda http: JaegerTraces(pipeline.jaeger, http))
        assert r.status == "pass", r.message
        r = judge_with({"signal": "logs", "journey": "upload", "services": ["web", "storage"],
                        "deadline_s": 15}, phase="baseline", probes=probes,
                       logs=sink_logs(pipeline.sink))
        assert r.status == "pass", r.message
    finally:
        procs.stop_all()


def metric(pipeline: Pipeline, query: str, deadline_s: float) -> Any:
    return judge_with({"signal": "metric", "query": query, "deadline_s": deadline_s},
                      phase="baseline", metrics=lambda http: build(
                          "metrics", SignalBackend(kind="victoriametrics", url=pipeline.vm),
                          http, None))


def test_dropped_nothing_check_passes_and_fails_when_the_destination_is_down(
        pipeline: Pipeline) -> None:
    send(pipeline.good.otlp, secrets.token_hex(16))
    send(pipeline.broken.otlp, secrets.token_hex(16))
    r = metric(pipeline, DROPPED_NOTHING.format(job="good"), 15)
    assert r.status == "pass", r.message
    # the destination refused the connection: failed and refused spans, nothing sent
    r = metric(pipeline, DROPPED_NOTHING.format(job="broken"), 4)
    assert r.status == "fail" and "returned no series" in r.message, r.message
    failed = metric(pipeline, 'sum(otelcol_exporter_send_failed_spans{job="broken"}) > 0', 10)
    assert failed.status == "pass", failed.message
    # a Collector nobody scrapes is no data, never a pass
    r = metric(pipeline, DROPPED_NOTHING.format(job="unscraped"), 1)
    assert r.status == "fail", r.message


def test_scraped_collector_counters_show_exports_and_failures(pipeline: Pipeline) -> None:
    """counter_increases with scrape: reads the Collector's metrics page itself (parsed by
    the names as the page and Prometheus write them, without ``_total``)."""
    stop = threading.Event()

    def traffic() -> None:
        while not stop.wait(0.3):
            send(pipeline.good.otlp, secrets.token_hex(16))
            send(pipeline.broken.otlp, secrets.token_hex(16))

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        sent = judge_with({"signal": "counter_increases",
                           "metric": "otelcol_exporter_sent_spans",
                           "labels": {"exporter": "otlp_http/jaeger"}, "min_increase": 4,
                           "scrape": pipeline.good.metrics, "deadline_s": 10}, phase="baseline")
        failed = judge_with({"signal": "counter_increases",
                             "metric": "otelcol_exporter_send_failed_spans",
                             "min_increase": 4, "scrape": pipeline.broken.metrics,
                             "deadline_s": 10}, phase="baseline")
        none_failed = judge_with({"signal": "counter_increases",
                                  "metric": "otelcol_exporter_send_failed_spans",
                                  "scrape": pipeline.good.metrics, "deadline_s": 2},
                                 phase="baseline")
    finally:
        stop.set()
        thread.join()
    assert sent.status == "pass", sent.message
    assert failed.status == "pass", failed.message
    # the healthy Collector shows no send_failed sample at all until something fails
    assert none_failed.status == "fail" and "no sample" in none_failed.message, \
        none_failed.message
