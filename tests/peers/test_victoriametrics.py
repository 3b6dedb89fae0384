"""The ``victoriametrics`` metrics kind against a real VictoriaMetrics single node that
scrapes a prometheus-client app (``-promscrape.config``): metric, metric_contract and
counter_increases pass on the signal and fail without it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from demo.stack import free_port
from gates.backends.config import SignalBackend
from gates.backends.prometheus import PrometheusClient
from gates.backends.registry import build
from gates.checks import judge
from gates.context import Anchors, CheckContext
from reports.model import CheckResult
from tests.fakes.server import serve
from tests.gates.conftest import CHECK
from tests.peers.conftest import peer_binary, running


@dataclass
class VM:
    url: str
    requests: Counter
    fault: Gauge


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VM]:
    binary = peer_binary("victoriametrics")
    tmp = tmp_path_factory.mktemp("vm")
    registry = CollectorRegistry()
    requests = Counter("rg_requests", "requests", ["service", "route"], registry=registry)
    fault = Gauge("rg_fault", "1 while a fault is on", ["service"], registry=registry)
    requests.labels("web", "/a").inc()
    requests.labels("web", "/idle").inc()
    fault.labels("web").set(0)

    async def metrics(request: Any) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    with serve(Starlette(routes=[Route("/metrics", metrics)])) as app_url:
        (tmp / "scrape.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [{"job_name": "app", "static_configs": [
                {"targets": [app_url.split("//")[1]]}]}]}))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [str(binary), f"-httpListenAddr=127.0.0.1:{port}",
                f"-storageDataPath={tmp / 'data'}", f"-promscrape.config={tmp / 'scrape.yml'}",
                # VictoriaMetrics hides the newest 30 s of samples from queries by default
                # (they may still change); a check polling for fresh samples needs them
                "-search.latencyOffset=0s", "-loggerLevel=WARN"]
        with running("victoria-metrics", argv, tmp) as peer:
            peer.wait_http(url + "/health", ok=lambda r: r.status_code == 200)

            def scraped(r: httpx.Response) -> bool:
                body = r.json()
                return bool(body.get("data", {}).get("result"))

            peer.wait_http(url + "/api/v1/query?query=rg_fault", ok=scraped)
            yield VM(url, requests, fault)


def check(vm: VM, spec: dict[str, Any], *, phase: str = "baseline",
          anchors: Anchors | None = None) -> CheckResult:
    async def go() -> CheckResult:
        async with httpx.AsyncClient(trust_env=False) as http:
            # built through the registry exactly as `backends.metrics: {kind: victoriametrics}`
            metrics = build("metrics", SignalBackend(kind="victoriametrics", url=vm.url),
                            http, None)
            assert isinstance(metrics, PrometheusClient)
            ctx = CheckContext(
                prometheus=None, metrics=metrics, sink=None,
                anchors=anchors or Anchors(phase_start={phase: time.time()},
                                           fault_start=time.time()),
                probe_results=[], poll_interval_s=0.2, http=http)
            return await judge(CHECK.validate_python(spec), ctx, phase)
    return asyncio.run(go())


def test_metric_contract_passes_and_fails_on_victoriametrics(vm: VM) -> None:
    ok = {"rg_requests_total": ["service", "route"], "rg_fault": ["service"]}
    r = check(vm, {"signal": "metric_contract", "metrics": ok})
    assert r.status == "pass", r.message
    r = check(vm, {"signal": "metric_contract", "deadline_s": 1.5,
                   "metrics": {"rg_requests_total": ["pod"], "rg_request_totl": []}})
    assert r.status == "fail"
    assert "lack label 'pod'" in r.message
    assert "rg_request_totl missing (similar: rg_requests_total" in r.message


def test_counter_increases_on_victoriametrics_and_fails_when_idle(vm: VM) -> None:
    stop = threading.Event()

    def load() -> None:
        while not stop.wait(0.1):
            vm.requests.labels("web", "/a").inc()

    thread = threading.Thread(target=load)
    thread.start()
    try:
        r = check(vm, {"signal": "counter_increases", "metric": "rg_requests_total",
                       "labels": {"route": "/a"}, "min_increase": 3, "deadline_s": 8})
    finally:
        stop.set()
        thread.join()
    assert r.status == "pass", r.message
    r = check(vm, {"signal": "counter_increases", "metric": "rg_requests_total",
                   "labels": {"route": "/idle"}, "deadline_s": 2.5})
    assert r.status == "fail" and "increased by 0" in r.message


def test_metric_condition_turns_true_after_the_fault_and_not_before(vm: VM) -> None:
    query = 'rg_fault{service="web"} > 0'
    fault_start = time.time()
    anchors = Anchors(phase_start={"fault": fault_start}, fault_start=fault_start)
    vm.fault.labels("web").set(1)
    try:
        r = check(vm, {"signal": "metric", "query": query, "deadline_s": 8}, phase="fault",
                  anchors=anchors)
        assert r.status == "pass", r.message
    finally:
        vm.fault.labels("web").set(0)
    r = check(vm, {"signal": "metric", "query": 'rg_fault{service="db"} > 0',
                   "deadline_s": 1}, phase="fault")
    assert r.status == "fail", r.message


def test_the_clock_look_reads_victoriametrics_engine_time_not_its_latency_offset(vm: VM) -> None:
    # VictoriaMetrics evaluates time() 30 s back (-search.latencyOffset) but states the
    # evaluation time truly: the clock look must read the latter, or every run on
    # VictoriaMetrics would stop as "30 s behind"; and its answers are not stale
    from gates.backends.clock import ENGINE_SOURCE, read_clocks

    async def go() -> tuple[Any, list[Any]]:
        async with httpx.AsyncClient(trust_env=False) as http:
            client = PrometheusClient(vm.url, http)
            readings = await read_clocks([("metrics", client)])
            return client, (readings, await client.query("vector(1)"))

    client, (readings, samples) = asyncio.run(go())
    assert [r.source for r in readings] == [ENGINE_SOURCE]
    assert abs(readings[0].offset_s) - readings[0].uncertainty_s <= 0.5, readings
    assert client.engine_offset_s is not None and samples[0].value == 1.0
