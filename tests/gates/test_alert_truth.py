"""No false READY, against the real Prometheus, Alertmanager and sink: transitions, not
states; resolution is readiness; healthy means silent; and the right reason for a miss.

One Prometheus evaluates a rule per case on ``rt_cond{rule=..., service=...}`` gauges the
tests move (each test its own ``service``); one Alertmanager sends to the sink, with a
receiver that never sends resolutions, one without any integration and an inhibit rule;
a second Alertmanager that Prometheus does not know plays "the wrong Alertmanager".
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from core.procs import ManagedProcess
from demo.stack import free_port
from gates.backends.alertmanager import AlertmanagerClient
from gates.backends.prometheus import PrometheusClient
from gates.backends.sink import SinkClient
from gates.checks import judge
from gates.context import Anchors, CheckContext
from reports.model import CheckResult
from tests.fakes.server import serve
from tests.fixtures.demo_system import Demo, eventually
from tests.gates.conftest import CHECK
from tests.gates.test_real_prometheus import _start

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("prometheus-alertmanager") is None,
    reason="needs the prometheus and prometheus-alertmanager Debian packages")


@dataclass
class Truth:
    prometheus: str
    alertmanager: str
    other_alertmanager: str   # one Prometheus does not send to
    sink: str
    app: str
    cond: Gauge

    def set(self, rule: str, service: str, value: float) -> None:
        self.cond.labels(rule, service).set(value)


def _rule(name: str, key: str, severity: str = "critical", app: str = "",
          **extra: Any) -> dict[str, Any]:
    return {"alert": name, "expr": f'rt_cond{{rule="{key}"}} > 0',
            "labels": {"severity": severity},
            "annotations": {"summary": name, "runbook_url": f"{app}/runbooks/{name}"}, **extra}


def _rules(app: str) -> dict[str, Any]:
    return {"groups": [{"name": "truth", "interval": "1s", "rules": [
        _rule("TruthFault", "fault", app=app),
        _rule("TruthSlowFire", "slowfire", app=app, **{"for": "3s"}),
        _rule("TruthPending", "pending", app=app, **{"for": "1h"}),
        _rule("TruthHidden", "hidden", app=app, **{"for": "1h"}),
        _rule("TruthKeep", "keep", app=app, keep_firing_for="1h"),
        _rule("TruthNoResolve", "noresolve", app=app),
        _rule("TruthNowhere", "nowhere", app=app),
        _rule("TruthSource", "source", app=app),
        _rule("TruthTarget", "target", app=app),
        _rule("TruthSilenced", "silenced", app=app),
        _rule("TruthDowngraded", "never", severity="info", app=app),
    ]}]}


def _alertmanager_config(sink: str) -> dict[str, Any]:
    hook = f"{sink}/alertmanager/webhook"
    return {
        "route": {"receiver": "sink", "group_by": ["alertname"], "group_wait": "0s",
                  "group_interval": "1s", "repeat_interval": "1h", "routes": [
                      {"matchers": ['alertname="TruthNoResolve"'], "receiver": "noresolve"},
                      {"matchers": ['alertname="TruthNowhere"'], "receiver": "nowhere"}]},
        "receivers": [
            {"name": "sink", "webhook_configs": [{"url": hook, "send_resolved": True}]},
            {"name": "noresolve", "webhook_configs": [{"url": hook, "send_resolved": False}]},
            {"name": "nowhere"}],
        "inhibit_rules": [{"source_matchers": ['alertname="TruthSource"'],
                           "target_matchers": ['alertname="TruthTarget"'],
                           "equal": ["service"]}]}


def _alertmanager(tmp: Path, name: str, config: dict[str, Any]) -> tuple[ManagedProcess, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (tmp / f"{name}.yml").write_text(yaml.safe_dump(config))
    return _start(name, ["prometheus-alertmanager", f"--config.file={tmp / f'{name}.yml'}",
                         f"--storage.path={tmp / name}", "--cluster.listen-address=",
                         f"--web.listen-address=127.0.0.1:{port}"], url, tmp), url


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory, demo: Demo) -> Iterator[Truth]:
    tmp = tmp_path_factory.mktemp("truth")
    registry = CollectorRegistry()
    cond = Gauge("rt_cond", "1 while a test wants the rule's condition true",
                 ["rule", "service"], registry=registry)

    async def runbook(request: Any) -> PlainTextResponse:
        return PlainTextResponse("runbook")

    async def metrics(request: Any) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(routes=[Route("/runbooks/{name}", runbook), Route("/metrics", metrics)])
    procs: list[ManagedProcess] = []
    with serve(app) as app_url:
        try:
            am, am_url = _alertmanager(tmp, "am", _alertmanager_config(demo.sink_url))
            procs.append(am)
            other, other_url = _alertmanager(tmp, "am-other", {
                "route": {"receiver": "null"}, "receivers": [{"name": "null"}]})
            procs.append(other)
            prom_url = f"http://127.0.0.1:{free_port()}"
            (tmp / "rules.yml").write_text(yaml.safe_dump(_rules(app_url)))
            (tmp / "prom.yml").write_text(yaml.safe_dump({
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(tmp / "rules.yml")],
                "alerting": {"alertmanagers": [{"static_configs": [
                    {"targets": [am_url.removeprefix("http://")]}]}]},
                "scrape_configs": [{"job_name": "app", "static_configs": [
                    {"targets": [app_url.removeprefix("http://")]}]}]}))
            procs.append(_start("prometheus", [
                "prometheus", f"--config.file={tmp / 'prom.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address={prom_url.removeprefix('http://')}",
                "--web.console.templates=", "--web.console.libraries="], prom_url, tmp))

            def ready() -> bool:
                targets = httpx.get(prom_url + "/api/v1/targets", timeout=2).json()["data"]
                managers = httpx.get(prom_url + "/api/v1/alertmanagers", timeout=2).json()
                return any(t["health"] == "up" for t in targets["activeTargets"]) and \
                    bool(managers["data"]["activeAlertmanagers"])
            eventually(ready, timeout=30, interval=0.1, what="target up, Alertmanager known")
            yield Truth(prom_url, am_url, other_url, demo.sink_url, app_url, cond)
        finally:
            for proc in reversed(procs):
                proc.stop()


def judge_all(truth: Truth, specs: list[dict[str, Any]], *, phase: str, anchors: Anchors,
              alertmanager: str | None = None) -> list[CheckResult]:
    """Judge the checks concurrently, as a phase does."""
    async def go() -> list[CheckResult]:
        async with httpx.AsyncClient(trust_env=False) as http:
            ctx = CheckContext(
                prometheus=PrometheusClient(truth.prometheus, http),
                sink=SinkClient(truth.sink, http), anchors=anchors, probe_results=[],
                poll_interval_s=0.1, http=http,
                alertmanager=AlertmanagerClient(alertmanager or truth.alertmanager, http))
            return list(await asyncio.gather(*(
                judge(CHECK.validate_python(spec), ctx, phase) for spec in specs)))
    return asyncio.run(go())


def one(truth: Truth, spec: dict[str, Any], *, phase: str, anchors: Anchors,
        alertmanager: str | None = None) -> CheckResult:
    return judge_all(truth, [spec], phase=phase, anchors=anchors, alertmanager=alertmanager)[0]


def in_prometheus(truth: Truth, alertname: str, service: str, state: str = "firing") -> bool:
    alerts = httpx.get(truth.prometheus + "/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return any(a["labels"]["alertname"] == alertname and a["labels"].get("service") == service
               and a["state"] == state for a in alerts)


def in_alertmanager(truth: Truth, alertname: str, service: str) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = httpx.get(
        truth.alertmanager + "/api/v2/alerts", params={"filter": f'alertname="{alertname}"'},
        timeout=5).json()
    return [a for a in alerts if a["labels"].get("service") == service]


def notified(truth: Truth, alertname: str, service: str, status: str = "firing") -> bool:
    rows = httpx.get(truth.sink + "/api/notifications", params={"alertname": alertname},
                     timeout=5).json()["notifications"]
    return any(r["labels"].get("service") == service and r["status"] == status for r in rows)


def fault_anchors(start: float, end: float | None = None) -> Anchors:
    phases = {"fault": start} | ({"recovery": end} if end is not None else {})
    return Anchors(phase_start=phases, fault_start=start, fault_end=end)


# -- transitions, not states -----------------------------------------------------------

def test_signals_already_there_before_fault_start_prove_nothing(truth: Truth) -> None:
    """A fault that did nothing, plus an alert left firing from earlier: every check fails."""
    truth.set("fault", "stale", 1)
    try:
        eventually(lambda: notified(truth, "TruthFault", "stale"), timeout=15,
                   what="TruthFault{service=stale} notified")
        anchor = time.time()
        labels = {"service": "stale"}
        alert, note, active, metric = judge_all(truth, [
            {"signal": "alert", "alertname": "TruthFault", "labels": labels, "deadline_s": 3},
            {"signal": "notification", "alertname": "TruthFault", "labels": labels,
             "deadline_s": 3},
            {"signal": "alert_not_silenced", "alertname": "TruthFault", "labels": labels,
             "deadline_s": 3},
            {"signal": "metric", "query": 'rt_cond{rule="fault", service="stale"} > 0',
             "anchor": "fault_start", "deadline_s": 3},
        ], phase="fault", anchors=fault_anchors(anchor))
    finally:
        truth.set("fault", "stale", 0)
    assert alert.status == "fail", alert.message
    assert "already firing before fault_start (active since" in alert.message
    assert "s before fault_start" in alert.message
    assert alert.evidence["already_active"]["active_after_s"] < 0
    assert note.status == "fail"
    assert "said firing and none resolved it" in note.message
    assert "before fault_start: it was already firing, so the fault brought no new " \
        "notification" in note.message
    assert active.status == "fail"
    assert "already active in Alertmanager before fault_start" in active.message
    assert metric.status == "fail"
    assert "condition already held before fault_start" in metric.message


def test_a_fresh_alert_fires_notifies_and_resolves_and_late_ones_fail(truth: Truth) -> None:
    labels = {"service": "fresh"}
    fault_start = time.time()
    truth.set("fault", "fresh", 1)
    try:
        alert, note, active, metric, late_alert, late_note = judge_all(truth, [
            {"signal": "alert", "alertname": "TruthFault", "labels": labels, "deadline_s": 10},
            {"signal": "notification", "alertname": "TruthFault", "labels": labels,
             "deadline_s": 10},
            {"signal": "alert_not_silenced", "alertname": "TruthFault", "labels": labels,
             "deadline_s": 10},
            {"signal": "metric", "query": 'rt_cond{rule="fault", service="fresh"} > 0',
             "anchor": "fault_start", "deadline_s": 10},
            # the same signals, with deadlines they cannot meet (one scrape + one evaluation)
            {"signal": "alert", "alertname": "TruthFault", "labels": labels, "deadline_s": 0.1},
            {"signal": "notification", "alertname": "TruthFault", "labels": labels,
             "deadline_s": 0.1},
        ], phase="fault", anchors=fault_anchors(fault_start))
    finally:
        truth.set("fault", "fresh", 0)
    fault_end = time.time()
    for r in (alert, note, active, metric):
        assert r.status == "pass", r.message
    assert alert.evidence["active_after_s"] >= 0
    assert late_alert.status == "fail" and "not firing" in late_alert.message
    assert late_note.status == "fail" and "no TruthFault firing notification" in late_note.message
    resolves, resolved = judge_all(truth, [
        {"signal": "alert_resolves", "alertname": "TruthFault", "labels": labels,
         "deadline_s": 15},
        {"signal": "notification", "alertname": "TruthFault", "labels": labels,
         "status": "resolved", "anchor": "fault_end", "deadline_s": 15},
    ], phase="recovery", anchors=fault_anchors(fault_start, fault_end))
    assert resolves.status == "pass", resolves.message
    assert resolved.status == "pass", resolved.message


def test_an_alert_pending_before_the_anchor_that_fires_after_it_fails(truth: Truth) -> None:
    truth.set("slowfire", "early", 1)  # for: 3s
    try:
        eventually(lambda: in_prometheus(truth, "TruthSlowFire", "early", "pending"),
                   timeout=10, what="TruthSlowFire pending")
        anchor = time.time()
        r = one(truth, {"signal": "alert", "alertname": "TruthSlowFire",
                        "labels": {"service": "early"}, "deadline_s": 6},
                phase="fault", anchors=fault_anchors(anchor))
    finally:
        truth.set("slowfire", "early", 0)
    assert r.status == "fail", r.message
    assert "already pending before fault_start (active since" in r.message


def test_a_metric_condition_that_never_holds_fails(truth: Truth) -> None:
    r = one(truth, {"signal": "metric", "query": 'rt_cond{rule="fault", service="nobody"} > 0',
                    "anchor": "fault_start", "deadline_s": 1.5},
            phase="fault", anchors=fault_anchors(time.time()))
    assert r.status == "fail" and "returned no series" in r.message


# -- the rule as written ---------------------------------------------------------------

def test_alert_rule_checks_the_expected_severity_and_labels(truth: Truth) -> None:
    anchors = Anchors(phase_start={"baseline": time.time()})
    ok, downgraded, unlabelled = judge_all(truth, [
        {"signal": "alert_rule", "alertname": "TruthFault", "labels": {"severity": "critical"}},
        {"signal": "alert_rule", "alertname": "TruthDowngraded",
         "labels": {"severity": "critical"}, "deadline_s": 1},
        {"signal": "alert_rule", "alertname": "TruthFault", "labels": {"team": "sre"},
         "deadline_s": 1},
    ], phase="baseline", anchors=anchors)
    assert ok.status == "pass" and "severity=critical" in ok.message, ok.message
    assert downgraded.status == "fail"
    assert "rule TruthDowngraded: severity=info, expected severity=critical" in downgraded.message
    assert unlabelled.status == "fail"
    assert "no 'team' label (expected team=sre)" in unlabelled.message


# -- resolution is readiness ----------------------------------------------------------

def test_keep_firing_for_longer_than_the_deadline_fails_to_resolve(truth: Truth) -> None:
    labels = {"service": "kept"}
    fault_start = time.time()
    truth.set("keep", "kept", 1)  # keep_firing_for: 1h
    eventually(lambda: notified(truth, "TruthKeep", "kept"), timeout=15,
               what="TruthKeep notified")
    truth.set("keep", "kept", 0)
    fault_end = time.time()
    eventually(lambda: in_prometheus(truth, "TruthKeep", "kept") and httpx.get(
        truth.prometheus + "/api/v1/query", params={"query": 'rt_cond{rule="keep"} > 0'},
        timeout=5).json()["data"]["result"] == [], timeout=10, what="condition cleared")
    resolves, resolved = judge_all(truth, [
        {"signal": "alert_resolves", "alertname": "TruthKeep", "labels": labels,
         "deadline_s": 4},
        {"signal": "notification", "alertname": "TruthKeep", "labels": labels,
         "status": "resolved", "anchor": "fault_end", "deadline_s": 4},
    ], phase="recovery", anchors=fault_anchors(fault_start, fault_end))
    assert resolves.status == "fail", resolves.message
    assert "did not resolve within 4s of fault_end: still TruthKeep" in resolves.message
    assert "keep_firing_for: 1h keeps it firing" in resolves.message
    assert resolved.status == "fail"
    assert "still active in Prometheus" in resolved.message
    assert "keep_firing_for: 1h" in resolved.message


def test_an_alert_whose_condition_stays_true_or_that_never_fired_does_not_resolve(
        truth: Truth) -> None:
    fault_start = time.time()
    truth.set("fault", "stuck", 1)
    try:
        eventually(lambda: in_prometheus(truth, "TruthFault", "stuck"), timeout=10,
                   what="TruthFault{service=stuck} firing")
        fault_end = time.time()
        stuck, never = judge_all(truth, [
            {"signal": "alert_resolves", "alertname": "TruthFault",
             "labels": {"service": "stuck"}, "deadline_s": 2},
            {"signal": "alert_resolves", "alertname": "TruthDowngraded", "deadline_s": 1},
        ], phase="recovery", anchors=fault_anchors(fault_start, fault_end))
    finally:
        truth.set("fault", "stuck", 0)
    assert stuck.status == "fail" and "its condition still holds: rt_cond" in stuck.message
    assert never.status == "fail"
    assert "TruthDowngraded never fired since fault_start, so it cannot resolve" in never.message


def test_a_receiver_that_never_sends_resolved_fails_naming_it(truth: Truth) -> None:
    labels = {"service": "mute"}
    fault_start = time.time()
    truth.set("noresolve", "mute", 1)
    eventually(lambda: notified(truth, "TruthNoResolve", "mute"), timeout=15,
               what="TruthNoResolve notified firing")
    truth.set("noresolve", "mute", 0)
    fault_end = time.time()
    resolves, resolved = judge_all(truth, [
        {"signal": "alert_resolves", "alertname": "TruthNoResolve", "labels": labels,
         "deadline_s": 10},
        {"signal": "notification", "alertname": "TruthNoResolve", "labels": labels,
         "status": "resolved", "anchor": "fault_end", "deadline_s": 6},
    ], phase="recovery", anchors=fault_anchors(fault_start, fault_end))
    assert resolves.status == "pass", resolves.message  # the alert itself did resolve
    assert resolved.status == "fail"
    assert ("receiver noresolve does not send resolved notifications (its webhook integration "
            "has send_resolved: false)") in resolved.message


# -- healthy means silent -------------------------------------------------------------

def test_no_alert_fails_on_a_pending_alert_naming_its_expression(truth: Truth) -> None:
    truth.set("pending", "calm", 1)  # true on the "healthy" system; for: 1h
    try:
        eventually(lambda: in_prometheus(truth, "TruthPending", "calm", "pending"),
                   timeout=10, what="TruthPending pending")
        r = one(truth, {"signal": "no_alert", "window_s": 2, "alertnames": ["TruthPending"]},
                phase="baseline", anchors=Anchors(phase_start={"baseline": time.time()}))
    finally:
        truth.set("pending", "calm", 0)
    assert r.status == "fail"
    assert r.message.startswith("alert TruthPending{") and 'service="calm"' in r.message
    assert "} was pending (its condition held; it fires once its for: has passed) during the " \
        "healthy baseline" in r.message
    assert "either the system is not healthy or the rule fires on a healthy system" in r.message
    assert 'its expression: rt_cond{rule="pending"} > 0' in r.message


def test_no_alert_words_a_firing_alert_neutrally(truth: Truth) -> None:
    truth.set("fault", "busy", 1)
    try:
        eventually(lambda: in_prometheus(truth, "TruthFault", "busy"), timeout=10,
                   what="TruthFault{service=busy} firing")
        r = one(truth, {"signal": "no_alert", "window_s": 1, "alertnames": ["TruthFault"]},
                phase="baseline", anchors=Anchors(phase_start={"baseline": time.time()}))
    finally:
        truth.set("fault", "busy", 0)
    assert r.status == "fail" and "TruthFault" in r.message
    assert "fired during the healthy baseline: either the system is not healthy or the rule " \
           "fires on a healthy system" in r.message
    assert "false positive" not in r.message


def test_evaluate_rules_catches_a_condition_that_held_while_for_hid_it(truth: Truth) -> None:
    """The condition held for seconds of the window, but a `for: 1h` never let an alert
    fire, and by the time the check looks not even the pending alert is left."""
    window_start = time.time()
    truth.set("hidden", "quiet", 1)
    eventually(lambda: in_prometheus(truth, "TruthHidden", "quiet", "pending"), timeout=10,
               what="TruthHidden pending")
    truth.set("hidden", "quiet", 0)
    eventually(lambda: not in_prometheus(truth, "TruthHidden", "quiet", "pending"),
               timeout=10, what="TruthHidden no longer pending")
    window = time.time() - window_start
    anchors = Anchors(phase_start={"baseline": window_start})
    spec = {"signal": "no_alert", "window_s": window, "alertnames": ["TruthHidden"]}
    evaluated, watched_only, missing = judge_all(truth, [
        spec, {**spec, "evaluate_rules": False},
        {**spec, "alertnames": ["TruthNoSuchRule"]}], phase="baseline", anchors=anchors)
    assert evaluated.status == "fail", evaluated.message
    assert "rule TruthHidden's condition held during the window" in evaluated.message
    assert f"its for: 1h outlasts the {round(window, 1):g}s window, so no alert showed yet" \
        in evaluated.message
    assert watched_only.status == "pass"  # what watching the alerts alone would have said
    assert missing.status == "fail" and "no alerting rule named TruthNoSuchRule" in missing.message


# -- the right reason -----------------------------------------------------------------

def test_an_inhibited_alert_is_reported_as_inhibited_by_its_source(truth: Truth) -> None:
    truth.set("source", "inh", 1)
    try:
        eventually(lambda: any(a["status"]["state"] == "active"
                               for a in in_alertmanager(truth, "TruthSource", "inh")),
                   timeout=15, what="TruthSource active in Alertmanager")
        anchor = time.time()
        truth.set("target", "inh", 1)
        labels = {"service": "inh"}
        note, active = judge_all(truth, [
            {"signal": "notification", "alertname": "TruthTarget", "labels": labels,
             "deadline_s": 6},
            {"signal": "alert_not_silenced", "alertname": "TruthTarget", "labels": labels,
             "deadline_s": 6}], phase="fault", anchors=fault_anchors(anchor))
    finally:
        truth.set("target", "inh", 0)
        truth.set("source", "inh", 0)
    for r in (note, active):
        assert r.status == "fail"
        assert "TruthTarget{" in r.message and " is inhibited by TruthSource{" in r.message, \
            r.message
        assert 'service="inh"' in r.message.split("inhibited by")[1]
        assert "integration" not in r.message


def test_a_silenced_alert_is_reported_with_its_silence(truth: Truth) -> None:
    silence = httpx.post(truth.alertmanager + "/api/v2/silences", timeout=5, json={
        "matchers": [{"name": "alertname", "value": "TruthSilenced", "isRegex": False}],
        "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "readygate-test", "comment": "maintenance window"})
    silence.raise_for_status()
    sid = silence.json()["silenceID"]
    anchor = time.time()
    truth.set("silenced", "hush", 1)
    try:
        r = one(truth, {"signal": "notification", "alertname": "TruthSilenced",
                        "labels": {"service": "hush"}, "deadline_s": 6},
                phase="fault", anchors=fault_anchors(anchor))
    finally:
        truth.set("silenced", "hush", 0)
        httpx.delete(f"{truth.alertmanager}/api/v2/silence/{sid}", timeout=5)
    assert r.status == "fail"
    assert (f"is silenced by silence {sid} (created by readygate-test: 'maintenance window'"
            in r.message), r.message


def test_routing_to_a_receiver_without_integration_names_the_receiver(truth: Truth) -> None:
    anchor = time.time()
    truth.set("nowhere", "lost", 1)
    try:
        r = one(truth, {"signal": "notification", "alertname": "TruthNowhere",
                        "labels": {"service": "lost"}, "deadline_s": 6},
                phase="fault", anchors=fault_anchors(anchor))
    finally:
        truth.set("nowhere", "lost", 0)
    assert r.status == "fail"
    assert "to receiver nowhere, which has no integration: it notifies nobody" in r.message
    assert "has not reached Alertmanager" not in r.message


def test_not_reached_alertmanager_only_when_it_really_did_not(truth: Truth) -> None:
    anchor = time.time()
    truth.set("nowhere", "elsewhere", 1)  # reaches Alertmanager, which tells nobody
    try:
        eventually(lambda: in_alertmanager(truth, "TruthNowhere", "elsewhere"), timeout=15,
                   what="TruthNowhere{service=elsewhere} in Alertmanager")
        spec = {"signal": "notification", "alertname": "TruthNowhere",
                "labels": {"service": "elsewhere"}, "deadline_s": 0.5}
        # readygate asks an Alertmanager that Prometheus does not send to
        wrong, not_silenced = judge_all(truth, [spec, {**spec, "signal": "alert_not_silenced"}],
                                        phase="fault", anchors=fault_anchors(anchor),
                                        alertmanager=truth.other_alertmanager)
        right = one(truth, spec, phase="fault", anchors=fault_anchors(anchor))
    finally:
        truth.set("nowhere", "elsewhere", 0)
    never = one(truth, {"signal": "notification", "alertname": "TruthDowngraded",
                        "deadline_s": 0.5}, phase="fault", anchors=fault_anchors(time.time()))
    for r in (wrong, not_silenced):
        assert r.status == "fail"
        assert ("is firing in Prometheus but has not reached Alertmanager: Prometheus sends "
                f"alerts to {truth.alertmanager}/api/v2/alerts") in r.message, r.message
    assert right.status == "fail" and "has not reached" not in right.message
    assert never.status == "fail"
    assert ("alert TruthDowngraded is not firing in Prometheus, so nothing was sent to "
            "Alertmanager") in never.message
