"""Metric and alert checks against the real Prometheus and Alertmanager (Debian packages):
a small app exposes prometheus-client metrics that the test moves; rules fire on them."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
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
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from core.procs import ManagedProcess
from demo.stack import free_port
from gates.backends.alertmanager import AlertmanagerClient
from gates.backends.prometheus import ActiveAlert, PrometheusClient
from gates.checks import judge
from gates.context import Anchors, CheckContext
from reports.model import CheckResult, verdict_of
from tests.fakes.server import serve
from tests.gates.conftest import CHECK

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("prometheus-alertmanager") is None,
    reason="needs the prometheus and prometheus-alertmanager Debian packages")


@dataclass
class Real:
    prometheus: str
    alertmanager: str
    app: str
    requests: Counter
    fault: Gauge


def _start(name: str, argv: list[str], url: str, tmp: Path) -> ManagedProcess:
    proc = ManagedProcess(name, argv, log_path=tmp / f"{name}.log")
    proc.start()
    asyncio.run(proc.wait_http(url + "/-/ready", timeout=20,
                               ok=lambda r: r.status_code == 200))
    return proc


def _rules(app: str) -> dict[str, Any]:
    return {"groups": [{"name": "rg", "interval": "1s", "rules": [
        {"alert": "RgFault", "expr": "rg_fault > 0", "for": "0s",
         "labels": {"severity": "critical"},
         "annotations": {"runbook_url": f"{app}/runbooks/RgFault"}},
        {"alert": "RgNoSeverity", "expr": "rg_fault > 100",
         "annotations": {"runbook_url": f"{app}/runbooks/missing"}},
        # two left-hand series against one: an evaluation error, so the rule is unhealthy
        {"alert": "RgBroken", "expr": "rg_requests_total + on() vector(1) > 0",
         "labels": {"severity": "warning"},
         "annotations": {"runbook_url": f"{app}/runbooks/RgFault"}},
    ]}]}


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Real]:
    tmp = tmp_path_factory.mktemp("prom")
    registry = CollectorRegistry()
    requests = Counter("rg_requests", "requests", ["service", "route"], registry=registry)
    fault = Gauge("rg_fault", "1 while a fault is on", ["service"], registry=registry)
    requests.labels("web", "/a").inc()
    requests.labels("web", "/idle").inc()
    fault.labels("web").set(0)

    async def runbook(request: Any) -> PlainTextResponse:
        return PlainTextResponse("runbook")

    async def metrics(request: Any) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(routes=[Route("/runbooks/RgFault", runbook), Route("/metrics", metrics)])
    with serve(app) as app_url:
        am_port, prom_port = free_port(), free_port()
        am_url, prom_url = f"http://127.0.0.1:{am_port}", f"http://127.0.0.1:{prom_port}"
        (tmp / "am.yml").write_text(yaml.safe_dump({
            "route": {"receiver": "null", "group_wait": "0s", "group_interval": "1s"},
            "receivers": [{"name": "null"}]}))
        (tmp / "rules.yml").write_text(yaml.safe_dump(_rules(app_url)))
        (tmp / "prom.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(tmp / "rules.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [
                {"targets": [f"127.0.0.1:{am_port}"]}]}]},
            "scrape_configs": [{"job_name": "app",
                                "static_configs": [{"targets": [app_url.split("//")[1]]}]}]}))
        am = _start("alertmanager", ["prometheus-alertmanager", f"--config.file={tmp / 'am.yml'}",
                                     f"--storage.path={tmp / 'am'}", "--cluster.listen-address=",
                                     f"--web.listen-address=127.0.0.1:{am_port}"], am_url, tmp)
        prom = None
        try:
            prom = _start("prometheus", [
                "prometheus", f"--config.file={tmp / 'prom.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--web.console.templates=", "--web.console.libraries="], prom_url, tmp)
            # discovery applies on a 5 s tick (FIELD-NOTES): wait for the first good scrape
            deadline = time.monotonic() + 30
            while True:
                targets = httpx.get(prom_url + "/api/v1/targets", timeout=2).json()["data"]
                if any(t["health"] == "up" for t in targets["activeTargets"]):
                    break
                assert time.monotonic() < deadline, f"target never up: {targets}"
                time.sleep(0.1)
            yield Real(prom_url, am_url, app_url, requests, fault)
        finally:
            if prom is not None:
                prom.stop()
            am.stop()


def check(real: Real, spec: dict[str, Any], *, phase: str = "baseline",
          anchors: Anchors | None = None) -> CheckResult:
    async def go() -> CheckResult:
        async with httpx.AsyncClient(trust_env=False) as http:
            ctx = CheckContext(
                prometheus=PrometheusClient(real.prometheus, http), sink=None,
                anchors=anchors or Anchors(phase_start={phase: time.time()},
                                           fault_start=time.time()),
                probe_results=[], poll_interval_s=0.1, http=http,
                alertmanager=AlertmanagerClient(real.alertmanager, http),
                services={"app": real.app}, links={"prometheus": real.prometheus})
            return await judge(CHECK.validate_python(spec), ctx, phase)
    return asyncio.run(go())


# -- metrics --------------------------------------------------------------------------

def test_metric_contract_passes_and_fails_via_prometheus_and_scrape(real: Real) -> None:
    ok = {"rg_requests_total": ["service", "route"], "rg_fault": ["service"]}
    assert check(real, {"signal": "metric_contract", "metrics": ok}).status == "pass"
    # 2 s: on a loaded machine one late scrape makes the series stale for a moment; the
    # last poll's miss, not the first, is what the message reports
    r = check(real, {"signal": "metric_contract", "deadline_s": 2,
                     "metrics": {"rg_requests_total": ["pod"], "rg_request_totl": []}})
    assert r.status == "fail"
    assert "2 of 2 series lack label 'pod'" in r.message
    assert "rg_request_totl missing (similar: rg_requests_total" in r.message
    r = check(real, {"signal": "metric_contract", "scrape": "app", "metrics": ok})
    assert r.status == "pass" and r.evidence["source"].startswith("scrape http://")
    r = check(real, {"signal": "metric_contract", "scrape": "app", "deadline_s": 0.3,
                     "metrics": {"rg_requests_total": ["pod"]}})
    assert r.status == "fail" and "lack label 'pod'" in r.message


def test_counter_increases_while_load_runs_and_fails_when_idle(real: Real) -> None:
    stop = threading.Event()

    def load() -> None:  # the "load": requests counted every 0.1 s until the check settles
        while not stop.wait(0.1):
            real.requests.labels("web", "/a").inc()

    thread = threading.Thread(target=load)
    thread.start()
    try:
        r = check(real, {"signal": "counter_increases", "metric": "rg_requests_total",
                         "labels": {"route": "/a"}, "min_increase": 3, "deadline_s": 8})
        s = check(real, {"signal": "counter_increases", "metric": "rg_requests_total",
                         "labels": {"route": "/a"}, "scrape": "app", "min_increase": 2,
                         "deadline_s": 3})
    finally:
        stop.set()
        thread.join()
    assert r.status == "pass", r.message
    assert s.status == "pass", s.message
    r = check(real, {"signal": "counter_increases", "metric": "rg_requests_total",
                     "labels": {"route": "/idle"}, "deadline_s": 2.5})
    assert r.status == "fail" and "increased by 0" in r.message


# -- alerts ---------------------------------------------------------------------------

def test_alert_rule_hygiene(real: Real) -> None:
    r = check(real, {"signal": "alert_rule", "alertname": "RgFault"})
    assert r.status == "pass" and "runbook answers 200" in r.message
    r = check(real, {"signal": "alert_rule", "alertname": "RgNoSeverity", "deadline_s": 0.5})
    assert r.status == "fail" and "no 'severity' label" in r.message
    assert "runbooks/missing answered 404" in r.message
    r = check(real, {"signal": "alert_rule", "alertname": "RgBroken", "deadline_s": 3})
    assert r.status == "fail" and "unhealthy" in r.message
    r = check(real, {"signal": "alert_rule", "alertname": "RgFalt", "deadline_s": 0.3})
    assert r.status == "fail" and "no alerting rule named RgFalt" in r.message
    assert "similar: RgFault" in r.message


def test_alert_fires_is_not_silenced_and_resolves(real: Real) -> None:
    fault_start = time.time()
    real.fault.labels("web").set(1)
    real.fault.labels("quiet").set(1)
    anchors = Anchors(phase_start={"fault": fault_start}, fault_start=fault_start)
    try:
        r = check(real, {"signal": "alert", "alertname": "RgFault", "labels": {"service": "web"},
                         "deadline_s": 10}, phase="fault", anchors=anchors)
        assert r.status == "pass", r.message
        httpx.post(real.alertmanager + "/api/v2/silences", timeout=5, json={
            "matchers": [{"name": "service", "value": "quiet", "isRegex": False}],
            "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
            "createdBy": "readygate-test", "comment": "maintenance"}).raise_for_status()
        r = check(real, {"signal": "alert_not_silenced", "alertname": "RgFault",
                         "labels": {"service": "web"}, "deadline_s": 10}, phase="fault",
                  anchors=anchors)
        assert r.status == "pass", r.message
        r = check(real, {"signal": "alert_not_silenced", "alertname": "RgFault",
                         "labels": {"service": "quiet"}, "deadline_s": 10}, phase="fault",
                  anchors=anchors)
        assert r.status == "fail" and "silenced by" in r.message and "maintenance" in r.message
        r = check(real, {"signal": "alert_not_silenced", "alertname": "RgNever",
                         "deadline_s": 0.3}, phase="fault", anchors=anchors)
        assert r.status == "fail"
        assert "RgNever is not firing in Prometheus, so nothing was sent" in r.message
    finally:
        real.fault.labels("web").set(0)
    fault_end = time.time()
    anchors = Anchors(phase_start={"recovery": fault_end}, fault_start=fault_start,
                      fault_end=fault_end)
    r = check(real, {"signal": "alert_resolves", "alertname": "RgFault",
                     "labels": {"service": "web"}, "deadline_s": 10}, phase="recovery",
              anchors=anchors)
    assert r.status == "pass", r.message
    r = check(real, {"signal": "alert_resolves", "alertname": "RgFault",
                     "labels": {"service": "quiet"}, "deadline_s": 1}, phase="recovery",
              anchors=anchors)
    assert r.status == "fail" and "still RgFault" in r.message
    r = check(real, {"signal": "alert_resolves", "alertname": "RgNoSeverity",
                     "deadline_s": 1}, phase="recovery", anchors=anchors)
    assert r.status == "fail" and "never fired" in r.message
    real.fault.labels("quiet").set(0)


# -- could not look -------------------------------------------------------------------

class _Watched(PrometheusClient):
    """Sets ``looked`` once Prometheus has answered an alerts query."""

    looked: asyncio.Event

    async def alerts(self) -> list[ActiveAlert]:
        out = await super().alerts()
        self.looked.set()
        return out


def test_prometheus_stopped_mid_check_ends_error_and_gate_inconclusive(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (tmp_path / "prom.yml").write_text("global: {evaluation_interval: 1s}\n")
    proc = _start("prometheus", ["prometheus", f"--config.file={tmp_path / 'prom.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{port}"], url, tmp_path)

    async def go() -> CheckResult:
        async with httpx.AsyncClient(trust_env=False) as http:
            prom = _Watched(url, http)
            prom.looked = asyncio.Event()
            now = time.time()
            ctx = CheckContext(prometheus=prom, sink=None, probe_results=[],
                               anchors=Anchors(phase_start={"fault": now}, fault_start=now),
                               poll_interval_s=0.1)
            task = asyncio.create_task(judge(CHECK.validate_python(
                {"signal": "alert", "alertname": "HighErrorRate", "deadline_s": 3}), ctx,
                "fault"))
            await asyncio.wait_for(prom.looked.wait(), 5)
            await asyncio.to_thread(proc.stop)  # Prometheus dies while the check polls
            return await task

    try:
        result = asyncio.run(go())
    finally:
        proc.stop()
    assert result.status == "error" and "prometheus unreachable" in result.message
    assert verdict_of([result]) == "inconclusive"
