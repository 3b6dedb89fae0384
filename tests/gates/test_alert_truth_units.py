"""No false READY, the cases the real stack cannot stage on demand: Prometheus' activeAt
reset while ALERTS shows the alert firing at the anchor, a notification re-sent for an
alert that started before the anchor, a stray resolution; plus the recovery probe check,
hygiene's expected labels, the receivers' send_resolved defaults and the new config keys.
Backends are httpx MockTransports answering in the real APIs' JSON shapes."""

from __future__ import annotations

import asyncio
import datetime
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gates.backends.alertmanager import _receiver
from gates.backends.prometheus import PrometheusClient
from gates.backends.sink import SinkClient
from gates.checks import judge
from gates.checks.alert_reasons import duration
from gates.config import AlertRuleCheck, HygieneCheck, NoAlertCheck
from gates.context import Anchors, CheckContext
from gates.hygiene import check_alert_metadata, load_alerts
from reports.model import CheckResult
from tests.gates.conftest import CHECK, judge_with, make_probe

Handler = Callable[[httpx.Request], httpx.Response]

ROOT = Path(__file__).resolve().parents[2]


def iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat().replace("+00:00", "Z")


def ok(data: Any) -> httpx.Response:
    return httpx.Response(200, json={"status": "success", "data": data})


def test_alert_firing_in_alerts_at_the_anchor_fails_even_with_a_fresh_active_at() -> None:
    """activeAt resets (a restarted Prometheus): ALERTS at the anchor's time still knows."""
    anchor = time.time() - 0.5
    labels = {"alertname": "HighErrorRate", "service": "web", "severity": "critical"}
    asked: list[str] = []

    def prom(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/api/v1/query":
            asked.append(req.url.params["time"])
            return ok({"resultType": "vector", "result": [
                {"metric": {"__name__": "ALERTS", "alertstate": "firing", **labels},
                 "value": [anchor, "1"]}]})
        return ok({"alerts": [{"labels": labels, "state": "firing",
                               "activeAt": iso(anchor + 0.2)}]})

    r = run({"signal": "alert", "alertname": "HighErrorRate", "labels": {"service": "web"},
             "deadline_s": 0.3}, Anchors(phase_start={"fault": anchor}, fault_start=anchor),
            prom=prom)
    assert r.status == "fail", r.message
    assert "already firing before fault_start" in r.message
    assert "ALERTS shows it firing at fault_start" in r.message
    assert asked and float(asked[0]) == pytest.approx(anchor, abs=0.001)


def run(check: dict[str, Any], anchors: Anchors, *, phase: str = "fault",
        prom: Handler | None = None, sink: list[dict[str, Any]] | None = None) -> CheckResult:
    """Judge ``check`` with Prometheus and/or the sink answering from MockTransports."""
    def sink_handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"notifications": sink or []})

    async def go() -> CheckResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(prom or sink_handler)) as p, \
                httpx.AsyncClient(transport=httpx.MockTransport(sink_handler)) as s:
            ctx = CheckContext(
                prometheus=PrometheusClient("http://prom.test", p) if prom else None,
                sink=SinkClient("http://sink.test", s) if sink is not None else None,
                anchors=anchors, probe_results=[], poll_interval_s=0.05)
            return await judge(CHECK.validate_python(check), ctx, phase)
    return asyncio.run(go())


def row(status: str, received_at: float, starts_at: float,
        service: str = "web") -> dict[str, Any]:
    return {"alertname": "HighErrorRate", "status": status, "received_at": received_at,
            "labels": {"alertname": "HighErrorRate", "service": service},
            "receiver": "readygate-sink", "starts_at": iso(starts_at)}


def test_a_firing_notification_for_an_alert_that_started_before_the_anchor_fails() -> None:
    """Re-sent (repeat_interval, a new alert in its group): arrival after, start before."""
    anchor = time.time() - 2
    rows = [row("firing", anchor + 1.0, anchor - 30)]
    r = run({"signal": "notification", "alertname": "HighErrorRate", "deadline_s": 0.3},
            Anchors(phase_start={"fault": anchor}, fault_start=anchor), sink=rows)
    assert r.status == "fail"
    assert "arrived 1.0s after fault_start, but its alert started at" in r.message
    assert "30.0s before fault_start: it was already firing before the fault" in r.message
    fresh = [*rows, row("firing", anchor + 1.5, anchor + 1.2)]
    r = run({"signal": "notification", "alertname": "HighErrorRate", "deadline_s": 5},
            Anchors(phase_start={"fault": anchor}, fault_start=anchor), sink=fresh)
    assert r.status == "pass" and r.latency_s == pytest.approx(1.5, abs=0.01)


def test_an_earlier_incident_that_resolved_is_not_called_still_firing() -> None:
    anchor = time.time()
    spec = {"signal": "notification", "alertname": "HighErrorRate", "deadline_s": 0.3}
    anchors = Anchors(phase_start={"fault": anchor}, fault_start=anchor)
    resolved = [row("firing", anchor - 60, anchor - 61), row("resolved", anchor - 40, anchor - 61)]
    r = run(spec, anchors, sink=resolved)
    assert r.status == "fail" and "said firing" not in r.message
    assert "no notification for HighErrorRate since fault_start" in r.message
    r = run(spec, anchors, sink=resolved[:1])
    assert r.status == "fail"
    assert "the last one before fault_start (60.0s earlier) said firing and none resolved it" \
        in r.message


def test_a_resolution_of_an_alert_from_before_the_fault_proves_nothing() -> None:
    fault_start = time.time() - 10
    fault_end = time.time() - 3
    anchors = Anchors(phase_start={"fault": fault_start, "recovery": fault_end},
                      fault_start=fault_start, fault_end=fault_end)
    spec = {"signal": "notification", "alertname": "HighErrorRate", "status": "resolved",
            "anchor": "fault_end", "deadline_s": 0.3}
    # an old incident's alert, re-notified firing during the fault, resolved after it
    old = [row("firing", fault_start + 1, fault_start - 60),
           row("resolved", fault_end + 1, fault_start - 60)]
    r = run(spec, anchors, phase="recovery", sink=old)
    assert r.status == "fail" and "not this fault's" in r.message
    # resolved, but no firing notification since fault_start at all
    stray = [row("resolved", fault_end + 1, fault_start + 1)]
    r = run(spec, anchors, phase="recovery", sink=stray)
    assert r.status == "fail" and "no firing one since fault_start" in r.message
    ours = [row("firing", fault_start + 1, fault_start + 0.5),
            row("resolved", fault_end + 1, fault_start + 0.5)]
    r = run({**spec, "deadline_s": 5}, anchors, phase="recovery", sink=ours)
    assert r.status == "pass", r.message


def test_recovery_probes_count_only_after_fault_end() -> None:
    fault_end = time.time() - 0.5
    anchors = Anchors(phase_start={"recovery": fault_end}, fault_start=fault_end - 5,
                      fault_end=fault_end)
    spec = {"signal": "probe", "phase": "recovery", "journey": "upload", "consecutive": 2,
            "anchor": "fault_end", "deadline_s": 0.3}
    before = [make_probe(at=fault_end - 2), make_probe(at=fault_end - 1)]
    r = judge_with(spec, phase="recovery", anchors=anchors, probes=before)
    assert r.status == "fail" and "0 of 2 consecutive successes" in r.message
    failing = [*before, make_probe(ok=False, at=fault_end + 0.1)]
    r = judge_with(spec, phase="recovery", anchors=anchors, probes=failing)
    assert r.status == "fail" and "last upload probe failed" in r.message
    after = [*failing, make_probe(at=fault_end + 0.2), make_probe(at=fault_end + 0.3)]
    r = judge_with(spec, phase="recovery", anchors=anchors, probes=after)
    assert r.status == "pass" and r.latency_s == pytest.approx(0.2, abs=0.01)


def test_hygiene_fails_a_downgraded_severity_and_a_missing_expected_alert(
        tmp_path: Path, runbooks: str) -> None:
    rules = yaml.safe_load((ROOT / "demo/rules/alerts.yml").read_text().replace(
        "http://web.readygate.invalid", runbooks))
    expected = {"HighErrorRate": {"severity": "critical"}, "ServiceDown": {"severity": "critical"},
                "SlowRequests": {"severity": "warning"},
                "UploadFailureSpike": {"severity": "warning"}}
    path = tmp_path / "alerts.yml"
    path.write_text(yaml.safe_dump(rules))
    with httpx.Client() as client:
        assert check_alert_metadata(load_alerts([path]), client, expected).status == "pass"
        for group in rules["groups"]:
            for rule in group["rules"]:
                if rule["alert"] == "HighErrorRate":
                    rule["labels"]["severity"] = "info"
        path.write_text(yaml.safe_dump(rules))
        r = check_alert_metadata(load_alerts([path]), client,
                                 {**expected, "DiskFull": {"severity": "critical"}})
    assert r.status == "fail"
    assert "HighErrorRate: severity=info, expected severity=critical" in r.message
    assert "DiskFull: no such alert in the rules (expected labels severity=critical)" in r.message


def test_receivers_know_alertmanagers_send_resolved_defaults() -> None:
    hook = _receiver({"name": "a", "webhook_configs": [{"url": "http://x"}]})
    assert hook.integrations == ["webhook"] and hook.sends_resolved == ["webhook"]
    mail = _receiver({"name": "m", "email_configs": [{"to": "a@b"}]})
    assert mail.integrations == ["email"] and mail.sends_resolved == []
    muted = _receiver({"name": "n", "webhook_configs": [{"url": "x", "send_resolved": False}]})
    assert muted.sends_resolved == []
    assert _receiver({"name": "nowhere"}).integrations == []


def test_new_keys_and_their_defaults() -> None:
    assert NoAlertCheck(signal="no_alert").evaluate_rules is True
    rule = AlertRuleCheck(signal="alert_rule", alertname="X", labels={"severity": "critical"})
    assert rule.labels == {"severity": "critical"} and rule.severity == "critical"
    assert HygieneCheck(signal="hygiene", alert_labels={"X": {"severity": "page"}}).alert_labels
    assert [duration(s) for s in (0, 2, 90, 3600, 5400)] == ["0s", "2s", "1m30s", "1h", "1h30m"]


def test_a_runbook_link_nobody_answers_fails_the_rule_and_names_the_way_out() -> None:
    with socket.socket() as s:  # a free port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rule = {"name": "AMDown", "type": "alerting", "health": "ok", "query": "up == 0",
            "labels": {"severity": "critical"},
            "annotations": {"summary": "down", "runbook_url": f"http://127.0.0.1:{port}/x"}}

    def prom(req: httpx.Request) -> httpx.Response:
        return ok({"groups": [{"name": "g", "rules": [rule]}]})

    check = {"signal": "alert_rule", "alertname": "AMDown", "deadline_s": 0.3}
    r = run(check, Anchors(phase_start={"baseline": time.time()}), phase="baseline", prom=prom)
    assert r.status == "fail", r.message
    assert f"runbook_url http://127.0.0.1:{port}/x does not answer (ConnectError" in r.message
    assert "runbook_must_answer: false" in r.message
    r = run({**check, "runbook_must_answer": False},
            Anchors(phase_start={"baseline": time.time()}), phase="baseline", prom=prom)
    assert r.status == "pass", r.message
