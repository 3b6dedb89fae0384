"""readygate as a Chaos Toolkit extension: the journal read correctly, rollbacks that always
run, and experiments through `readygate drill` (real fault proxy, fake Prometheus)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chaos import ctk
from chaos.experiment import judge_journal, run_experiment
from core.procs import ManagedProcess
from tests.fakes.server import serve

from .conftest import closed_port_url

DEMO_JOURNEYS = str(Path(__file__).resolve().parents[2] / "demo" / "journeys.yaml")

ROOT = Path(__file__).resolve().parents[2]
FAILING = ROOT / "chaos" / "experiments" / "failing-alert-never-fires.json"


class FakePrometheus:
    """``/api/v1/alerts`` as Prometheus answers it; tests set the alerts."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/api/v1/alerts", self._alerts),
                                     Route("/api/v1/rules", self._rules),
                                     Route("/api/v1/query", self._query)])

    async def _alerts(self, request: Request) -> Response:
        return JSONResponse({"status": "success", "data": {"alerts": self.alerts}})

    async def _rules(self, request: Request) -> Response:
        return JSONResponse({"status": "success", "data": {"groups": []}})

    async def _query(self, request: Request) -> Response:
        return JSONResponse({"status": "success",
                             "data": {"resultType": "vector", "result": []}})


@pytest.fixture
def prometheus() -> Iterator[tuple[FakePrometheus, str]]:
    fake = FakePrometheus()
    with serve(fake.app) as url:
        yield fake, url


def active(proxy: ManagedProcess) -> list[dict[str, Any]]:
    assert proxy.url is not None
    body: dict[str, Any] = httpx.get(proxy.url + "/_readygate/faults", timeout=5).json()
    return list(body["active"])


@pytest.fixture
def clean_proxy(proxy: ManagedProcess) -> Iterator[ManagedProcess]:
    assert proxy.url is not None
    httpx.delete(proxy.url + "/_readygate/faults", timeout=5)
    yield proxy
    httpx.delete(proxy.url + "/_readygate/faults", timeout=5)


# --- reading the journal ----------------------------------------------------------------


def test_a_failed_method_activity_fails_a_journal_that_says_completed() -> None:
    journal = {"status": "completed", "deviated": False,
               "steady_states": {"before": None, "after": None},
               "run": [{"activity": {"name": "inject"}, "status": "succeeded"},
                       {"activity": {"name": "alert-fires"}, "status": "failed",
                        "exception": ["Traceback...", "ActivityFailed: alert X not firing\n"]}],
               "rollbacks": []}
    status, message, failed = judge_journal(journal)
    assert (status, failed) == ("fail", ["alert-fires"])
    assert message == ("method activity failed: alert-fires (ActivityFailed: alert X not firing)"
                       " — although the journal says 'completed'")


def test_unmet_steady_state_deviation_and_other_statuses_fail() -> None:
    base: dict[str, Any] = {"status": "completed", "deviated": False, "run": [],
                            "steady_states": {}}
    unmet = {**base, "status": "failed", "steady_states": {"before": {
        "steady_state_met": False, "probes": [{"activity": {"name": "up"},
                                               "tolerance_met": False}]}}}
    assert judge_journal(unmet)[:2] == ("fail", "steady state not met before the method: up")
    assert judge_journal({**base, "deviated": True})[0] == "fail"
    assert judge_journal({**base, "status": "interrupted"})[1] == \
        "the experiment ended 'interrupted'"
    assert judge_journal(base)[0] == "pass"


# --- probes and actions -----------------------------------------------------------------


def test_probes_read_prometheus_and_actions_drive_the_proxy(
        prometheus: tuple[FakePrometheus, str], clean_proxy: ManagedProcess) -> None:
    fake, prom_url = prometheus
    assert clean_proxy.url is not None
    assert ctk.alert_is_firing(prom_url, "HighErrorRate") is False
    assert ctk.alert_matches_faults(prom_url, clean_proxy.url, "HighErrorRate") is True
    record = ctk.inject_fault(clean_proxy.url, "http_error", status=503, ttl_s=30)
    assert [f["id"] for f in active(clean_proxy)] == [record["id"]]
    # a fault and no alert: the steady state is broken (within a short wait)
    assert ctk.alert_matches_faults(prom_url, clean_proxy.url, "HighErrorRate",
                                    within_s=0.3) is False
    fake.alerts = [{"labels": {"alertname": "HighErrorRate", "service": "web"},
                    "state": "firing", "activeAt": "2024-01-01T00:00:00Z"}]
    assert ctk.alert_matches_faults(prom_url, clean_proxy.url, "HighErrorRate",
                                    labels={"service": "web"}) is True
    assert ctk.alert_is_firing(prom_url, "HighErrorRate", labels={"service": "db"}) is False
    assert ctk.probe_success_ratio(clean_proxy.url + "/x", requests=4) == 0.0
    assert ctk.clear_faults(clean_proxy.url) == [record["id"]]
    assert ctk.probe_success_ratio(clean_proxy.url + "/x", requests=4) == 1.0


# --- running experiments ----------------------------------------------------------------


@pytest.mark.anyio
async def test_the_failing_experiment_is_failed_and_still_rolled_back(
        prometheus: tuple[FakePrometheus, str], clean_proxy: ManagedProcess) -> None:
    outcome = await run_experiment(FAILING, {"proxy_url": clean_proxy.url,
                                             "prometheus_url": prometheus[1]}, timeout_s=60)
    assert outcome.status == "fail"
    assert outcome.journal_status == "completed" and outcome.deviated is False  # the pitfall
    assert outcome.failed_activities == ["no-such-alert-fires"]
    assert outcome.rollbacks == [{"name": "clear-proxy-faults", "status": "succeeded"}]
    assert active(clean_proxy) == []


@pytest.mark.anyio
async def test_an_interrupted_experiment_is_rolled_back_by_readygate(
        prometheus: tuple[FakePrometheus, str], clean_proxy: ManagedProcess,
        tmp_path: Path) -> None:
    experiment = json.loads(FAILING.read_text())
    # wait long for the alert: the run is interrupted in the middle of this probe
    experiment["method"][1]["provider"]["arguments"]["within_s"] = 60
    path = tmp_path / "slow.json"
    path.write_text(json.dumps(experiment))
    task = asyncio.create_task(run_experiment(
        path, {"proxy_url": clean_proxy.url, "prometheus_url": prometheus[1]}, timeout_s=120))
    deadline = time.monotonic() + 20
    while not active(clean_proxy):
        assert time.monotonic() < deadline, "the experiment never injected its fault"
        await asyncio.sleep(0.05)
    start = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - start < 10
    assert active(clean_proxy) == []  # rolled back (by chaoslib or, if it skipped, readygate)
    history = httpx.get(str(clean_proxy.url) + "/_readygate/faults", timeout=5).json()
    assert history["history"][-1]["end_reason"] == "cleared"


@pytest.mark.anyio
async def test_an_experiment_that_times_out_is_interrupted_failed_and_rolled_back(
        prometheus: tuple[FakePrometheus, str], clean_proxy: ManagedProcess,
        tmp_path: Path) -> None:
    experiment = json.loads(FAILING.read_text())
    experiment["method"][1]["provider"]["arguments"]["within_s"] = 60
    path = tmp_path / "slow.json"
    path.write_text(json.dumps(experiment))
    outcome = await run_experiment(path, {"proxy_url": clean_proxy.url,
                                          "prometheus_url": prometheus[1]}, timeout_s=1.5)
    assert outcome.status == "fail"
    assert outcome.message.startswith("experiment did not finish within 1.5s")
    # the interrupt landed inside an activity: chaoslib failed it, went on and rolled back
    assert outcome.rollbacks == [{"name": "clear-proxy-faults", "status": "succeeded"}]
    assert active(clean_proxy) == []


@pytest.mark.anyio
async def test_rollbacks_chaos_toolkit_skips_on_a_failed_run_are_run_by_readygate(
        prometheus: tuple[FakePrometheus, str], clean_proxy: ManagedProcess,
        tmp_path: Path) -> None:
    experiment = json.loads(FAILING.read_text())
    # a steady-state probe that cannot look (Prometheus is down): the run ends `failed`,
    # and Chaos Toolkit's default strategy skips the rollbacks
    experiment["steady-state-hypothesis"] = {"title": "never", "probes": [{
        "type": "probe", "name": "alert-already-firing", "tolerance": True,
        "provider": {"type": "python", "module": "chaos.ctk", "func": "alert_is_firing",
                     "arguments": {"prometheus_url": closed_port_url(),
                                   "alertname": "HighErrorRate"}}}]}
    path = tmp_path / "ssh.json"
    path.write_text(json.dumps(experiment))
    left = ctk.inject_fault(str(clean_proxy.url), "abort", ttl_s=30)  # state to roll back
    outcome = await run_experiment(path, {"proxy_url": clean_proxy.url,
                                          "prometheus_url": prometheus[1]}, timeout_s=60)
    assert outcome.status == "fail" and outcome.journal_status == "failed"
    assert outcome.message == ("steady state not met before the method: alert-already-firing"
                               " (rollbacks run by readygate: Chaos Toolkit skipped them)")
    assert outcome.rolled_back_by_readygate
    assert outcome.rollbacks == [{"name": "clear-proxy-faults", "status": "succeeded"}]
    assert active(clean_proxy) == []
    record = httpx.get(f"{clean_proxy.url}/_readygate/faults/{left['id']}", timeout=5).json()
    assert record["end_reason"] == "cleared"


def test_readygate_drill_reports_the_failing_experiment_as_failed(
        prometheus: tuple[FakePrometheus, str], clean_proxy: ManagedProcess,
        tmp_path: Path) -> None:
    assert clean_proxy.url is not None
    config = {"target": {"name": "ctk", "environment": "staging",
                         "services": {"web": clean_proxy.url},
                         "fault_proxies": {"web": clean_proxy.url},
                         "credentials": {"username": "demo", "password": "pw-ctk-test"}},
              "backends": {"prometheus": {"url": prometheus[1]}},
              "probes": {"journeys": ["health"], "journeys_file": DEMO_JOURNEYS,
                         "interval_s": 0.2, "timeout_s": 2}}
    scenario = {"scenario": {"baseline": {"min_duration_s": 0.2, "max_duration_s": 5},
                             "experiment": {"path": str(FAILING), "timeout_s": 60},
                             "fault_phase": {"max_duration_s": 60},
                             "recovery": {"max_duration_s": 5}},
                "checks": []}
    cfg, scen, out = tmp_path / "readygate.yaml", tmp_path / "ctk.yaml", tmp_path / "out"
    cfg.write_text(yaml.safe_dump(config))
    scen.write_text(yaml.safe_dump(scenario))
    proc = subprocess.run([sys.executable, "-m", "readygate", "drill", str(scen), "--config",
                           str(cfg), "--out", str(out), "--no-notify"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CI": "true"})
    assert proc.returncode == 1, proc.stdout + proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "not_ready"
    check = next(c for c in report["checks"] if c["signal"] == "experiment")
    assert check["status"] == "fail" and check["phase"] == "fault"
    assert "no-such-alert-fires" in check["message"]
    assert check["evidence"]["journal_status"] == "completed"
    assert report["drill"]["fault"]["kind"] == "experiment"
    assert active(clean_proxy) == []
