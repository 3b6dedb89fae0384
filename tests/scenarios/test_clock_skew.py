"""A backend whose clock is off stops the run before anything is injected: an old signal
stamped by a clock running ahead would pass as new (gates.backends.clock)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.procs import ManagedProcess
from gates.backends.clock import ClockReading, offset_from
from tests.fakes.server import serve

from .test_signals import faults

ROOT = Path(__file__).resolve().parents[2]


class SkewedPrometheus:
    """Prometheus' query API with no series; every answer's Date is ``skew_s`` off ours.
    With ``engine_skew_s`` its answers to ``time()`` state an evaluation time that far off
    (an engine behind a reverse proxy whose own clock writes Date); without, it states none."""

    def __init__(self, skew_s: float | None, engine_skew_s: float | None = None,
                 answer_age_s: float | None = None) -> None:
        self.skew_s = skew_s
        self.engine_skew_s = engine_skew_s
        self.answer_age_s = answer_age_s  # other queries: one sample evaluated this long ago
        self.app = Starlette(routes=[Route("/{path:path}", self.answer)])

    def headers(self) -> dict[str, str]:
        if self.skew_s is None:
            return {}
        return {"Date": formatdate(time.time() + self.skew_s, usegmt=True)}

    async def answer(self, request: Request) -> Response:
        if request.url.path == "/":
            return Response("", status_code=302, headers={"Location": "/query",
                                                          **self.headers()})
        if request.query_params.get("query") == "time()" and self.engine_skew_s is not None:
            at = time.time() + self.engine_skew_s
            return JSONResponse({"status": "success", "data": {
                "resultType": "scalar", "result": [at, f"{at:.3f}"]}}, headers=self.headers())
        result = [] if self.answer_age_s is None else [
            {"metric": {}, "value": [time.time() - self.answer_age_s, "1"]}]
        return JSONResponse({"status": "success", "data": {"resultType": "vector",
                                                           "result": result}},
                            headers=self.headers())


@pytest.fixture
def prometheus(request: pytest.FixtureRequest) -> Iterator[str]:
    skews = request.param if isinstance(request.param, tuple) else (request.param, None)
    with serve(SkewedPrometheus(*skews).app, date_header=False) as url:
        yield url


@pytest.mark.parametrize("prometheus", [(0.0, 120.0)], indirect=True)
def test_the_engine_clock_counts_where_the_api_answers_time(
        prometheus: str, proxy: ManagedProcess, tmp_path: Path) -> None:
    # Date (a proxy's clock) is right; Prometheus' own clock, which stamps activeAt, is not
    result, report, faults_injected = gate_on(proxy, tmp_path, prometheus)
    assert result.returncode == 2 and report["verdict"] == "inconclusive", result.stderr
    assert re.search(r"its clock is 1(19|20)\.\ds ahead of readygate's \(±\d+\.\ds, from its "
                     r"query answer's evaluation time\)", report["reason"]), report["reason"]
    assert faults_injected == 0


@pytest.mark.parametrize(("prometheus", "status"), [((0.0, 0.0, 60.0), "error"),
                                                    ((0.0, 0.0, 0.0), "pass")],
                         indirect=["prometheus"], ids=["cached", "fresh"])
def test_an_instant_answer_evaluated_long_before_it_was_asked_is_not_evidence(
        prometheus: str, status: str, proxy: ManagedProcess, tmp_path: Path) -> None:
    # a cache between readygate and Prometheus answers what the engine said a minute ago
    _, report, _ = gate_on(proxy, tmp_path, prometheus)
    check = report["checks"][0]
    assert check["status"] == status, check
    if status == "error":
        assert "as evaluated 60s before it was asked" in check["message"], check["message"]
        assert report["verdict"] != "ready"


@pytest.mark.parametrize("prometheus", [(120.0, 0.0)], indirect=True)
def test_a_right_engine_clock_is_not_overruled_by_a_proxys_date(
        prometheus: str, proxy: ManagedProcess, tmp_path: Path) -> None:
    _, report, faults_injected = gate_on(proxy, tmp_path, prometheus)
    assert "clock" not in (report["reason"] or ""), report["reason"]
    assert faults_injected == 1


def run_gate(tmp_path: Path, proxy_url: str, prometheus_url: str,
             **backends: Any) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    config = {"version": 1,
              "target": {"name": "clocks", "environment": "staging",
                         "services": {"web": proxy_url}, "fault_proxies": {"web": proxy_url}},
              "backends": {"prometheus": {"url": prometheus_url}, **backends},
              "gates": {"g": {"scenario": {
                  "baseline": {"min_duration_s": 0, "max_duration_s": 2},
                  "fault": {"service": "web", "kind": "http_error", "status": 500,
                            "ttl_s": 30},
                  "fault_phase": {"max_duration_s": 2}, "recovery": {"max_duration_s": 2}},
                  "checks": [{"signal": "metric", "query": "vector(1)", "deadline_s": 1,
                              "phase": "fault"}]}}}
    cfg = tmp_path / "readygate.yaml"
    cfg.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "readygate", "run", "g", "--config",
                             str(cfg), "--out", str(out), "--no-notify"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    return result, json.loads((out / "report.json").read_text())


def injected(proxy_url: str) -> int:
    state = faults(proxy_url)
    return len(state["active"]) + len(state["history"])


def gate_on(proxy: ManagedProcess, tmp_path: Path, prometheus_url: str, **backends: Any
            ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], int]:
    """``run_gate``, and how many faults the run injected on the proxy."""
    assert proxy.url is not None
    before = injected(proxy.url)
    result, report = run_gate(tmp_path, proxy.url, prometheus_url, **backends)
    return result, report, injected(proxy.url) - before


@pytest.mark.parametrize(("prometheus", "way"), [(120.0, "ahead of"), (-120.0, "behind")],
                         indirect=["prometheus"], ids=["ahead", "behind"])
def test_a_backend_clock_off_by_minutes_stops_the_run_inconclusive_before_the_fault(
        prometheus: str, way: str, proxy: ManagedProcess, tmp_path: Path) -> None:
    result, report, faults_injected = gate_on(proxy, tmp_path, prometheus)
    assert result.returncode == 2, result.stderr
    assert report["verdict"] == "inconclusive" and report["partial"] is True
    assert re.search(f"prometheus at {prometheus}: its clock is 1(19|20)\\.\\ds {way} "
                     "readygate's", report["reason"]), report["reason"]
    assert "max_clock_skew_s is 5s" in report["reason"]
    assert [c["status"] for c in report["checks"]] == ["skipped"]
    assert faults_injected == 0  # nothing was injected
    assert "max_clock_skew_s" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("prometheus", [120.0], indirect=True)
def test_a_higher_limit_or_null_lets_the_run_go_on(prometheus: str, proxy: ManagedProcess,
                                                   tmp_path: Path) -> None:
    for limit in (None, 300):
        result, report, faults_injected = gate_on(proxy, tmp_path, prometheus,
                                                  max_clock_skew_s=limit)
        assert "clock" not in (report["reason"] or ""), report["reason"]
        assert faults_injected == 1, result.stderr  # the run went on
        assert report["checks"][0]["status"] != "skipped"


@pytest.mark.parametrize("prometheus", [1.0, None], indirect=True, ids=["1s", "no-date"])
def test_a_clock_within_the_limit_or_without_a_date_is_no_reason_to_stop(
        prometheus: str, proxy: ManagedProcess, tmp_path: Path) -> None:
    result, report, faults_injected = gate_on(proxy, tmp_path, prometheus)
    assert "clock" not in (report["reason"] or ""), report["reason"]
    assert faults_injected == 1, result.stderr


def test_offset_is_the_date_against_the_middle_of_the_request() -> None:
    # the server's clock read 1000.0 to 1001.0 while we sent at 999.8 and heard at 1000.2
    offset, uncertainty = offset_from("Thu, 01 Jan 1970 00:16:40 GMT", 999.8, 1000.2) or (0, 0)
    assert offset == pytest.approx(0.5) and uncertainty == pytest.approx(0.7)
    # a cache's copy written 120 s before: its Age puts the clock right
    offset, _ = offset_from("Thu, 01 Jan 1970 00:14:40 GMT", 999.8, 1000.2, "120") or (0, 0)
    assert offset == pytest.approx(0.5)
    assert offset_from("not a date", 0.0, 0.1) is None
    assert offset_from("", 0.0, 0.1) is None


def test_skew_counts_only_beyond_the_readings_own_error() -> None:
    assert not ClockReading("p", "u", 5.6, 0.7).beyond(5.0)  # could be 4.9
    assert ClockReading("p", "u", 5.8, 0.7).beyond(5.0)
    assert ClockReading("p", "u", -5.8, 0.7).beyond(5.0)
    assert "behind" in ClockReading("p", "u", -5.8, 0.7).describe()
