"""Datadog logs and monitors through the real datadog-api-client, pointed at a local fake
of the documented API (tests/fakes/datadog.py) with the client's own server variables:
each check passes on the signal in time and fails when it is missing, late or already
there before the anchor; a Datadog that is down, refuses the keys or answers garbage is an
error, never a verdict."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from core.errors import BackendError, ConfigError
from gates.backends import registry
from gates.backends.datadog import (
    DatadogClient,
    DatadogLogs,
    DatadogMonitors,
    configuration,
    trace_query,
)
from gates.context import Anchors
from readygate.config import parse_config
from tests.fakes.datadog import FakeDatadog
from tests.fakes.server import serve
from tests.gates.conftest import judge_with, make_probe

API, APP = "dd-api-key-0123", "dd-app-key-4567"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SECRET = "pw-Very-Secret-123"


@pytest.fixture
def dd() -> Iterator[tuple[FakeDatadog, str]]:
    fake = FakeDatadog(API, APP)
    with serve(fake.app()) as url:
        yield fake, url


def client(url: str, *, api: str = API, timeout_s: float = 3.0) -> DatadogClient:
    return DatadogClient(configuration(site="datadoghq.com", url=url, api_key=api,
                                       app_key=APP, timeout_s=timeout_s), timeout_s=timeout_s)


def logs(url: str, query: str | None = "service:web", **kw: Any) -> Any:
    return lambda http: DatadogLogs(client(url, **kw), query=query)


def monitors(url: str, **kw: Any) -> Any:
    return lambda http: DatadogMonitors(client(url, **kw), monitor_tags=["service:web"])


# -- the client and the configuration ---------------------------------------------------

def test_the_site_picks_the_api_host_and_url_points_the_client_elsewhere() -> None:
    eu = configuration(site="datadoghq.eu", url=None, api_key="a", app_key="b", timeout_s=1)
    assert eu.host == "https://api.datadoghq.eu"
    assert configuration(site="us5.datadoghq.com", url=None, api_key="a", app_key="b",
                         timeout_s=1).host == "https://api.us5.datadoghq.com"
    local = configuration(site="datadoghq.com", url="http://127.0.0.1:9/", api_key="a",
                          app_key="b", timeout_s=1)
    assert local.host == "http://127.0.0.1:9"


def test_the_keys_travel_as_dd_api_key_and_dd_application_key(
        dd: tuple[FakeDatadog, str]) -> None:
    fake, url = dd
    asyncio.run(DatadogLogs(client(url)).lines(trace_id=TRACE))
    headers = fake.requests[-1]["headers"]
    assert headers["dd-api-key"] == API and headers["dd-application-key"] == APP
    with pytest.raises(BackendError, match=r"refused log search \(403\)"):
        asyncio.run(DatadogLogs(client(url, api="wrong-key-000")).lines(trace_id=TRACE))


def test_datadog_kinds_load_from_yaml_with_their_keys_as_secrets() -> None:
    config = parse_config(
        "backends:\n"
        "  logs: {kind: datadog, site: datadoghq.eu, token: dd-api-secret-1,"
        " app_key: dd-app-secret-2, query: 'service:web'}\n"
        "  alerts: {kind: datadog, token: dd-api-secret-1, app_key: dd-app-secret-2,"
        " monitor_tags: ['service:web']}\n", "r.yaml")
    assert {"dd-api-secret-1", "dd-app-secret-2"} <= set(config.secrets())

    async def build() -> registry.ContextBackends:
        import httpx
        async with httpx.AsyncClient() as http:
            return registry.build_all(config.backends, http)
    built = asyncio.run(build())
    assert isinstance(built.logs, DatadogLogs) and built.logs.base == "service:web"
    assert built.logs.client.where == "https://api.datadoghq.eu"
    assert isinstance(built.alerts, DatadogMonitors) and built.alerts.monitor_tags == "service:web"


@pytest.mark.parametrize(("yaml", "message"), [
    ("  logs: {kind: datadog, token: dd-api-secret-1}\n",
     r"r.yaml:2 backends.logs: a datadog backend needs 'app_key'"),
    ("  logs: {kind: datadog, app_key: dd-app-secret-2}\n",
     r"r.yaml:2 backends.logs: a datadog backend needs 'token'"),
    ("  alerts: {kind: datadog, app_key: dd-app-secret-2,"
     " basic_auth: {username: u, password: pass1}}\n",
     r"backends.alerts.basic_auth: datadog authenticates with token and app_key"),
    ("  logs: {kind: datadgo, token: dd-api-secret-1}\n", r"did you mean 'datadog'"),
    ("  alerts: {kind: datadog, site: 'not a site', token: a-api-1, app_key: a-app-2}\n",
     r"backends.alerts.site"),
])
def test_a_datadog_backend_without_its_keys_is_a_one_line_config_error(
        yaml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config("backends:\n" + yaml, "r.yaml")


def test_a_tls_option_the_client_cannot_honour_is_a_config_error() -> None:
    config = parse_config(
        "backends:\n  logs: {kind: datadog, token: dd-api-secret-1, app_key: dd-app-secret-2,"
        " tls: {server_name: dd.internal}}\n", "r.yaml")
    with pytest.raises(ConfigError, match=r"backends.logs.tls.server_name"):
        registry.build("logs", config.backends.logs, None, None)  # type: ignore[arg-type]


# -- logs -------------------------------------------------------------------------------

def test_logs_check_passes_on_the_trace_id_in_any_of_datadogs_forms(
        dd: tuple[FakeDatadog, str]) -> None:
    fake, url = dd
    fake.log("upload ok", trace_id=TRACE, request_id="r-1")
    other = "5" * 32
    # a Datadog tracer logs the low 64 bits in decimal as dd.trace_id
    fake.log("stored", dd={"trace_id": str(int(other[-16:], 16))}, service="web")
    for trace in (TRACE, other):
        r = judge_with({"signal": "logs", "journey": "upload", "deadline_s": 2},
                       phase="baseline", probes=[make_probe(trace_id=trace)], logs=logs(url))
        assert r.status == "pass", r.message
        assert r.evidence["backend"] == "datadog" and "@dd.trace_id" in r.evidence["query"]
    assert "trace_id:\"4bf92f3577b34da6a3ce929d0e0e4736\"" in trace_query(TRACE)


def test_logs_check_fails_when_no_line_carries_the_trace_id(
        dd: tuple[FakeDatadog, str]) -> None:
    fake, url = dd
    fake.log("upload ok", trace_id=TRACE, service="worker")   # outside service:web
    r = judge_with({"signal": "logs", "journey": "upload", "deadline_s": 0.4},
                   phase="baseline", probes=[make_probe(trace_id=TRACE)], logs=logs(url))
    assert r.status == "fail" and "no log line carries" in r.message


def test_logs_check_fails_when_the_line_arrives_after_the_deadline(
        dd: tuple[FakeDatadog, str]) -> None:
    import threading
    fake, url = dd
    late = threading.Timer(1.5, lambda: fake.log("upload ok", trace_id=TRACE))
    late.start()
    try:
        r = judge_with({"signal": "logs", "journey": "upload", "deadline_s": 0.5},
                       phase="baseline", probes=[make_probe(trace_id=TRACE)], logs=logs(url))
    finally:
        late.join()
    assert r.status == "fail" and "no log line carries" in r.message
    r = judge_with({"signal": "logs", "journey": "upload", "deadline_s": 0.5},
                   phase="baseline", probes=[make_probe(trace_id=TRACE)], logs=logs(url))
    assert r.status == "pass"  # the same line, once there, is found


def test_logs_by_request_id_and_levels_from_datadogs_status(
        dd: tuple[FakeDatadog, str]) -> None:
    fake, url = dd
    fake.log("upload failed", status="error", http={"request_id": "rg-req-1"})
    r = judge_with({"signal": "logs", "journey": "upload", "by": "request_id",
                    "deadline_s": 1}, phase="baseline", probes=[make_probe()], logs=logs(url))
    assert r.status == "pass", r.message
    fake.log("upload failed", status="error", trace_id=TRACE)
    r = judge_with({"signal": "log_levels", "journey": "upload", "deadline_s": 1},
                   probes=[make_probe(ok=False, trace_id=TRACE)], logs=logs(url))
    assert r.status == "pass", r.message


def test_secret_scan_pages_through_the_window_with_the_cursor(
        dd: tuple[FakeDatadog, str]) -> None:
    fake, url = dd
    base = time.time() - 20
    for i in range(2100):   # three pages of 1000
        fake.log(f"request {i} ok", at=base + i * 0.001, trace_id=TRACE if i == 0 else None)
    check = {"signal": "secret_leak", "phase": "baseline", "journey": "login",
             "deadline_s": 0.5}
    r = judge_with(check, phase="baseline", probes=[make_probe("login", trace_id=TRACE)],
                   secrets=[SECRET], logs=logs(url))
    assert r.status == "pass", r.message
    assert r.evidence["lines_scanned"] == 2100
    fake.log(f"login password={SECRET}", at=base + 3)   # the last page
    r = judge_with(check, phase="baseline", probes=[make_probe("login", trace_id=TRACE)],
                   secrets=[SECRET], logs=logs(url))
    assert r.status == "fail" and "secret #1 appears in 1 log line(s)" in r.message, r.message
    searches = [q for q in fake.requests if q["path"].endswith("/search")]
    assert len(searches) >= 6  # two scans of three pages each


@pytest.mark.parametrize("mode", ["garbage", "500"])
def test_logs_check_errors_when_datadog_answers_garbage(dd: tuple[FakeDatadog, str],
                                                        mode: str) -> None:
    fake, url = dd
    fake.log("upload ok", trace_id=TRACE)
    fake.mode = mode
    r = judge_with({"signal": "logs", "journey": "upload", "deadline_s": 0.3},
                   phase="baseline", probes=[make_probe(trace_id=TRACE)], logs=logs(url))
    assert r.status == "error", r.message


def test_a_datadog_slower_than_the_timeout_is_an_error_in_bounded_time(
        dd: tuple[FakeDatadog, str]) -> None:
    fake, url = dd
    fake.mode = "slow"
    started = time.monotonic()
    with pytest.raises(BackendError, match=r"did not answer log search within 0.3s"):
        asyncio.run(DatadogLogs(client(url, timeout_s=0.3)).lines(trace_id=TRACE))
    assert time.monotonic() - started < 1.5


def test_logs_check_errors_when_datadog_is_down() -> None:
    r = judge_with({"signal": "logs", "journey": "upload", "deadline_s": 0.3},
                   phase="baseline", probes=[make_probe(trace_id=TRACE)],
                   logs=logs("http://127.0.0.1:9", timeout_s=1))
    assert r.status == "error" and "unreachable" in r.message


# -- monitors as the alerts backend -----------------------------------------------------

def anchors(at: float) -> Anchors:
    return Anchors(phase_start={"fault": at}, fault_start=at)


def alert_check(**kw: Any) -> dict[str, Any]:
    return {"signal": "alert", "alertname": "High error rate", "labels": {"host": "web-1"},
            "deadline_s": 5, **kw}


def test_alert_check_passes_on_a_monitor_group_that_triggered_after_the_anchor(
        dd: tuple[FakeDatadog, str]) -> None:
    fake, url = dd
    anchor = time.time() - 1
    fake.monitor("High error rate", tags=["service:web", "team:shop"], groups={
        "host:web-1,env:prod": {"status": "Alert", "last_triggered_ts": int(anchor) + 1},
        "host:web-2,env:prod": {"status": "OK"}})
    r = judge_with(alert_check(), anchors=anchors(anchor), alerts=monitors(url))
    assert r.status == "pass", r.message
    assert 'env="prod"' in r.evidence["matched"] and "monitor_state=\"Alert\"" in \
        r.evidence["matched"] and r.evidence["query"] == "datadog alert state"


def test_alert_check_fails_late_when_seen_after_the_deadline(
        dd: tuple[FakeDatadog, str]) -> None:
    fake, url = dd
    anchor = time.time() - 3
    fake.monitor("High error rate", tags=["service:web"], groups={
        "host:web-1": {"status": "Alert", "last_triggered_ts": int(anchor) + 2}})
    r = judge_with(alert_check(deadline_s=1), anchors=anchors(anchor), alerts=monitors(url))
    assert r.status == "fail" and "fired late" in r.message


def test_alert_check_fails_on_a_monitor_already_alerting_before_the_anchor(
        dd: tuple[FakeDatadog, str]) -> None:
    fake, url = dd
    anchor = time.time() - 1
    fake.monitor("High error rate", tags=["service:web"], groups={
        "host:web-1": {"status": "Alert", "last_triggered_ts": int(anchor) - 120}})
    r = judge_with(alert_check(deadline_s=0.5), anchors=anchors(anchor),
                   alerts=monitors(url))
    assert r.status == "fail" and re.search(r"12[01]\.\d+s before fault_start", r.message)
    assert "proves nothing" in r.message


def test_alert_check_fails_when_the_monitor_only_warns_or_stays_ok(
        dd: tuple[FakeDatadog, str]) -> None:
    fake, url = dd
    anchor = time.time() - 1
    fake.monitor("High error rate", tags=["service:web"], groups={
        "host:web-1": {"status": "Warn", "last_triggered_ts": int(anchor) + 1}})
    r = judge_with(alert_check(deadline_s=0.5), anchors=anchors(anchor), alerts=monitors(url))
    assert r.status == "fail" and "(pending)" in r.message and "Warn" in r.message
    fake.monitors.clear()
    fake.monitor("High error rate", tags=["service:web"], groups={"host:web-1": {
        "status": "OK"}})
    r = judge_with(alert_check(deadline_s=0.5), anchors=anchors(anchor), alerts=monitors(url))
    assert r.status == "fail" and "no alert pending or firing" in r.message


@pytest.mark.parametrize("mode", ["garbage", "500"])
def test_alert_check_errors_when_datadog_answers_garbage(dd: tuple[FakeDatadog, str],
                                                         mode: str) -> None:
    fake, url = dd
    fake.monitor("High error rate", tags=["service:web"], groups={
        "host:web-1": {"status": "Alert", "last_triggered_ts": int(time.time())}})
    fake.mode = mode
    r = judge_with(alert_check(deadline_s=0.3), anchors=anchors(time.time() - 1),
                   alerts=monitors(url))
    assert r.status == "error", r.message


def test_alert_check_errors_when_datadog_is_down() -> None:
    r = judge_with(alert_check(deadline_s=0.3), anchors=anchors(time.time() - 1),
                   alerts=monitors("http://127.0.0.1:9", timeout_s=1))
    assert r.status == "error" and "unreachable" in r.message


def test_no_alert_fails_on_a_warning_or_no_data_and_passes_when_all_is_ok(
        dd: tuple[FakeDatadog, str]) -> None:
    fake, url = dd
    check = {"signal": "no_alert", "window_s": 0.5}
    fake.monitor("Latency", tags=["service:web"], groups={"host:web-1": {"status": "OK"}})
    r = judge_with(check, phase="baseline", alerts=monitors(url))
    assert r.status == "pass", r.message
    assert "rules cannot be evaluated" in r.evidence["rules_evaluated"]
    fake.monitor("Queue depth", tags=["service:web"], groups={"queue:jobs": {
        "status": "No Data", "last_nodata_ts": int(time.time())}})
    r = judge_with(check, phase="baseline", alerts=monitors(url))
    assert r.status == "fail" and 'monitor_state="No Data"' in r.message
    fake.mode = "garbage"
    r = judge_with(check, phase="baseline", alerts=monitors(url))
    assert r.status == "error"


def test_alert_resolves_passes_only_after_the_monitor_fired_since_the_fault(
        dd: tuple[FakeDatadog, str]) -> None:
    fake, url = dd
    fault = time.time() - 10
    at = Anchors(phase_start={"fault": fault, "recovery": fault + 5}, fault_start=fault,
                 fault_end=fault + 5)
    check = {"signal": "alert_resolves", "alertname": "High error rate", "deadline_s": 10}
    monitor = fake.monitor("High error rate", tags=["service:web"], groups={"host:web-1": {
        "status": "OK", "last_triggered_ts": int(fault) + 2,
        "last_resolved_ts": int(fault) + 6}})
    r = judge_with(check, phase="recovery", anchors=at, alerts=monitors(url))
    assert r.status == "pass", r.message
    r = judge_with({**check, "deadline_s": 1}, phase="recovery", anchors=at,
                   alerts=monitors(url))
    assert r.status == "fail" and "late" in r.message
    # triggered and resolved long before the fault: it never fired for this one
    monitor["state"]["groups"]["host:web-1"].update(last_triggered_ts=int(fault) - 600,
                                                    last_resolved_ts=int(fault) - 500)
    r = judge_with({**check, "deadline_s": 3}, phase="recovery", anchors=at,
                   alerts=monitors(url))
    assert r.status == "fail" and "never fired since fault_start" in r.message
    monitor["state"]["groups"]["host:web-1"].update(status="Alert",
                                                    last_triggered_ts=int(fault) + 2)
    r = judge_with({**check, "deadline_s": 3}, phase="recovery", anchors=at,
                   alerts=monitors(url))
    assert r.status == "fail" and "did not resolve" in r.message


def test_a_monitor_without_group_states_is_judged_by_its_overall_state(
        dd: tuple[FakeDatadog, str]) -> None:
    fake, url = dd
    anchor = time.time() - 1
    monitor = fake.monitor("Disk full", tags=["service:web"])
    monitor.update(overall_state="Alert", state={})
    out = asyncio.run(monitors(url)(None).alerts())
    assert [(a.name, a.state, a.labels["monitor_state"]) for a in out] == [
        ("Disk full", "firing", "Alert")]
    assert out[0].active_at is not None
    r = judge_with({"signal": "alert", "alertname": "Disk full", "deadline_s": 2},
                   anchors=anchors(anchor), alerts=monitors(url))
    assert r.status == "pass", r.message
