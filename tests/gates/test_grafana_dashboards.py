"""The dashboard check through the real grafana-client against a fake Grafana: every panel
(inside rows, collapsed rows and library panels too) returns data on time to pass; a panel
without data, with a failing query, late, or a dashboard missing fails naming it; Grafana
down, refusing or answering garbage is an error, never a pass."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gates.backends.grafana import GrafanaDashboards, grafana_api
from gates.checks import judge
from gates.checks.dashboards import saved_values, substitute
from gates.context import Anchors, CheckContext
from reports.model import CheckResult
from tests.fakes.grafana import FakeGrafana, Series, closed_url
from tests.fakes.server import serve
from tests.gates.conftest import CHECK

TOKEN = "glsa-dash-token-0123456789"
REQ = 'sum(rate(http_requests_total{service=~"web"}[$__rate_interval]))'
ERR = 'sum(rate(http_requests_total{service=~"web",code=~"5.."}[5m]))'
LAT = 'histogram_quantile(0.95, sum by (le) (rate(latency_bucket{service=~"web"}[5m])))'
CHECK_SPEC = {"signal": "dashboard", "dashboards": ["web-overview"], "vars": {"service": "web"},
              "window_s": 600}


def web_overview() -> dict[str, Any]:
    """A dashboard as Grafana 10 saves it: a datasource variable, rows (one collapsed, its
    panel inside it), a text panel, a datasource named by its name, a library panel."""
    prom = {"type": "prometheus", "uid": "${ds}"}
    return {
        "uid": "web-overview", "title": "Web overview", "schemaVersion": 39,
        "templating": {"list": [
            {"name": "ds", "type": "datasource", "query": "prometheus",
             "current": {"text": "Prometheus", "value": "prom1"}},
            {"name": "service", "type": "query", "datasource": prom, "includeAll": True,
             "current": {"text": "All", "value": ["$__all"]}},
        ]},
        "panels": [
            {"type": "row", "title": "Traffic", "id": 1, "collapsed": False, "panels": []},
            {"type": "timeseries", "title": "Requests", "id": 2, "datasource": prom,
             "targets": [{"refId": "A", "datasource": prom, "expr": REQ.replace(
                 '"web"', '"$service"')}]},
            {"type": "text", "title": "Notes", "id": 3, "options": {"content": "runbook"}},
            {"type": "row", "title": "Errors", "id": 4, "collapsed": True, "panels": [
                {"type": "stat", "title": "5xx rate", "id": 5, "datasource": "Prometheus",
                 "targets": [{"refId": "A", "expr": ERR.replace('"web"', '"${service}"')}]}]},
            {"id": 6, "title": "p95 latency", "gridPos": {"h": 8, "w": 12, "x": 0, "y": 9},
             "libraryPanel": {"uid": "lib-latency", "name": "p95 latency"}},
        ]}


def latency_panel() -> dict[str, Any]:
    return {"type": "timeseries", "title": "p95 latency",
            "datasource": {"type": "prometheus", "uid": "prom1"},
            "targets": [{"refId": "A", "expr": LAT.replace('"web"', "\"[[service]]\"")},
                        {"refId": "B", "expr": "up", "hide": True}]}


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana(token=TOKEN)
    fake.datasource("prom1", "Prometheus", default=True)
    fake.dashboards["web-overview"] = web_overview()
    fake.library["lib-latency"] = latency_panel()
    for expr in (REQ, ERR, LAT):
        fake.series[expr] = Series(rows=4)
    with serve(fake.app()) as url:
        yield fake, url


def run(spec: dict[str, Any], url: str, *, token: str = TOKEN,
        anchor: float | None = None) -> CheckResult:
    async def go() -> CheckResult:
        source = GrafanaDashboards(grafana_api(url, token=token, timeout_s=2.0), url)
        ctx = CheckContext(prometheus=None, sink=None, dashboards=source,
                           anchors=Anchors(phase_start={"baseline": anchor or time.time()}),
                           probe_results=[], poll_interval_s=0.05)
        return await judge(CHECK.validate_python(spec), ctx, "baseline")
    return asyncio.run(go())


def test_every_panel_returning_data_passes_with_variables_window_and_datasources_sent(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    r = run({**CHECK_SPEC, "deadline_s": 3}, url)
    assert r.status == "pass", r.message
    assert "all 3 panels of web-overview return data" in r.message
    assert r.evidence["left_out"] == ["Notes (Web overview [web-overview]): nothing to query"]
    sent = [q for body in fake.queries for q in body["queries"]]
    assert {q["expr"] for q in sent} == {REQ, ERR, LAT, "up"}  # hidden queries are sent too
    assert {q["datasource"]["uid"] for q in sent} == {"prom1"}
    body = fake.queries[0]
    assert int(body["to"]) - int(body["from"]) == 600_000
    assert all(q["intervalMs"] >= 1000 and q["maxDataPoints"] for q in sent)


def test_a_panel_without_data_fails_by_title_even_inside_a_collapsed_row(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    del fake.series[ERR]
    r = run({**CHECK_SPEC, "deadline_s": 0.3}, url)
    assert r.status == "fail"
    assert 'panel "5xx rate" (Web overview [web-overview]): no data' in r.message
    assert "Requests" not in r.message and "p95" not in r.message


def test_a_failing_query_fails_the_panel_with_grafanas_message(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    fake.series[LAT] = Series(error='bad_data: 1:15: parse error: unexpected "{"')
    r = run({**CHECK_SPEC, "deadline_s": 0.3}, url)
    assert r.status == "fail"
    assert "1 of 3 panels of web-overview show no data within 0.3s" in r.message
    assert 'panel "p95 latency" (Web overview [web-overview]): query error: bad_data: ' \
           '1:15: parse error' in r.message


def test_data_that_shows_within_the_deadline_passes_and_after_it_fails_as_missing(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    fake.series[REQ] = Series(rows=2, after=time.time() + 0.4)
    r = run({**CHECK_SPEC, "deadline_s": 3}, url)
    assert r.status == "pass", r.message
    assert r.latency_s is not None and 0.4 <= r.latency_s <= 3
    fake.series[REQ] = Series(rows=2, after=time.time() + 2.0)
    late = run({**CHECK_SPEC, "deadline_s": 0.5}, url)
    assert late.status == "fail"
    assert 'panel "Requests"' in late.message and "no data" in late.message


def test_missing_dashboards_and_dashboards_without_queries_fail(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    r = run({**CHECK_SPEC, "dashboards": ["web-overview", "gone"], "deadline_s": 0.3}, url)
    assert r.status == "fail" and "not found in grafana: gone" in r.message
    fake.dashboards["notes"] = {"uid": "notes", "title": "Notes", "panels": [
        {"type": "text", "title": "Read me", "id": 1}]}
    r = run({**CHECK_SPEC, "dashboards": ["notes"], "deadline_s": 0.3}, url)
    assert r.status == "fail" and "no panel with a query" in r.message


def test_a_deleted_datasource_a_variable_without_value_and_a_gone_library_panel_fail(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    model = fake.dashboards["web-overview"]
    model["panels"][1]["targets"][0]["datasource"] = {"type": "prometheus", "uid": "deleted"}
    model["templating"]["list"].append({"name": "env", "type": "custom", "current": {}})
    model["panels"][4]["targets"] = [{"refId": "A", "expr": ERR + ' * on() up{env="$env"}'}]
    model["panels"][4]["datasource"] = {"uid": "prom1"}
    model["panels"][4]["title"] = "Errors by env"
    model["panels"].append({"id": 9, "title": "Old", "libraryPanel": {"uid": "gone"}})
    r = run({**CHECK_SPEC, "deadline_s": 0.3}, url)
    assert r.status == "fail"
    assert 'panel "Requests" (Web overview [web-overview]): query error: 404: Data source ' \
           'not found' in r.message
    assert 'panel "Errors by env"' in r.message and "$env (give them in vars:)" in r.message
    assert 'panel "Old"' in r.message and "library panel gone not found" in r.message


def test_skip_panels_leaves_an_empty_panel_out_by_title_glob(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    del fake.series[ERR]
    r = run({**CHECK_SPEC, "skip_panels": ["5xx*"], "deadline_s": 2}, url)
    assert r.status == "pass", r.message
    assert "5xx rate (Web overview [web-overview]): skip_panels" in r.evidence["left_out"]


def test_grafana_down_refusing_or_answering_garbage_is_an_error_never_a_pass(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    spec = {**CHECK_SPEC, "deadline_s": 0.3}
    refused = run(spec, url, token="glsa-wrong-token-0000")
    assert refused.status == "error" and "401" in refused.message
    assert run(spec, closed_url()).status == "error"
    fake.garbage = True
    assert run(spec, url).status == "error"


def test_no_dashboards_backend_skips_the_check_saying_what_to_configure() -> None:
    async def go() -> CheckResult:
        ctx = CheckContext(prometheus=None, sink=None, anchors=Anchors(
            phase_start={"baseline": time.time()}), probe_results=[])
        return await judge(CHECK.validate_python(CHECK_SPEC), ctx, "baseline")
    r = asyncio.run(go())
    assert r.status == "skipped" and "backends.dashboards" in r.message


def test_saved_values_and_substitution_follow_grafanas_variable_syntaxes() -> None:
    values, names = saved_values({"templating": {"list": [
        {"name": "a", "current": {"value": "$__all"}, "allValue": "web|api"},
        {"name": "b", "current": {"value": ["$__all"]}},
        {"name": "c", "current": {"value": ["x", "y"]}},
        {"name": "d", "type": "constant", "query": "k8s"},
        {"name": "e", "current": {}},
    ]}})
    assert values == {"a": "web|api", "b": ".*", "c": "(x|y)", "d": "k8s"}
    assert names == {"a", "b", "c", "d", "e"}
    unresolved: set[str] = set()
    text = substitute({"expr": "f{a=~\"$a\",b=~\"${b}\",c=~\"${c:regex}\",d=\"[[d]]\"}"
                       "[$__interval] $e $unknown", "n": [1, "$d"]}, values, unresolved, names)
    assert text == {"expr": 'f{a=~"web|api",b=~".*",c=~"(x|y)",d="k8s"}[$__interval] $e '
                            "$unknown", "n": [1, "k8s"]}
    assert unresolved == {"e"}
