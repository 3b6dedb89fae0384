"""Every check type: passes on the signal, fails when it is missing or late, errors when
readygate cannot look. Backends here are httpx MockTransports answering in the real APIs'
JSON shapes; tests/e2e runs the same checks against the real Prometheus and sink.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from gates.backends.prometheus import PrometheusClient
from gates.backends.sink import SinkClient
from gates.checks import judge
from gates.config import Check
from gates.context import Anchors, CheckContext
from probes.model import ProbeResult, StepResult
from reports.model import CheckResult

CHECK = TypeAdapter(Check)
Handler = Callable[[httpx.Request], httpx.Response]


def ok_json(data: Any) -> httpx.Response:
    return httpx.Response(200, json=data)


def prom_alerts(*alerts: tuple[str, str, dict[str, str]]) -> dict[str, Any]:
    # active since the moment Prometheus answers: after any anchor a test sets (an alert
    # active before its anchor is no evidence: tests/gates/test_alert_truth.py)
    now = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
    return {"status": "success", "data": {"alerts": [
        {"labels": {"alertname": n, **labels}, "state": state, "activeAt": now}
        for n, state, labels in alerts]}}


def prom_rules(*names: str) -> dict[str, Any]:
    return {"status": "success", "data": {"groups": [{"name": "g", "rules": [
        {"type": "alerting", "name": n, "health": "ok", "query": f"{n.lower()}_ratio > 1"}
        for n in names]}]}}


def no_history(handler: Handler) -> Handler:
    """``handler`` with empty answers to queries (ALERTS at the anchor, rules over a window)."""
    def answer(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/api/v1/query" and "time" in req.url.params:
            return ok_json({"status": "success", "data": {"resultType": "vector", "result": []}})
        if req.url.path == "/api/v1/query_range":
            return ok_json({"status": "success", "data": {"resultType": "matrix", "result": []}})
        return handler(req)
    return answer


def run(check: dict[str, Any], *, prom: Handler | None = None, sink: Handler | None = None,
        phase: str = "fault", anchors: Anchors | None = None,
        probes: list[ProbeResult] | None = None) -> CheckResult:
    async def go() -> CheckResult:
        clients = []
        p = s = None
        if prom is not None:
            c = httpx.AsyncClient(transport=httpx.MockTransport(no_history(prom)))
            clients.append(c)
            p = PrometheusClient("http://prom.test", c)
        if sink is not None:
            c = httpx.AsyncClient(transport=httpx.MockTransport(sink))
            clients.append(c)
            s = SinkClient("http://sink.test", c)
        now = time.time()
        # with probes to follow, the phase began before they ran
        start = now - 1.0 if probes else now
        ctx = CheckContext(prometheus=p, sink=s,
                           anchors=anchors or Anchors(phase_start={phase: start}, fault_start=now),
                           probe_results=probes or [], poll_interval_s=0.05)
        try:
            return await judge(CHECK.validate_python(check), ctx, phase)
        finally:
            for c in clients:
                await c.aclose()
    return asyncio.run(go())


def probe(journey: str = "upload", *, ok: bool = True, at: float | None = None) -> ProbeResult:
    step = StepResult("s", "GET", "http://web.test/x", 200 if ok else 502, 0.01, "rg-req-1", ok)
    return ProbeResult(journey, at or time.time(), 0.01, ok, "ab" * 16, (step,),
                       None if ok else "upload failed")


def unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


# -- alert ------------------------------------------------------------------------------

def test_alert_passes_when_firing_with_matching_labels() -> None:
    def prom(req: httpx.Request) -> httpx.Response:
        return ok_json(prom_alerts(("HighErrorRate", "firing", {"service": "web"})))
    r = run({"signal": "alert", "alertname": "HighErrorRate", "labels": {"service": "web"},
             "deadline_s": 2}, prom=prom)
    assert r.status == "pass" and r.latency_s is not None and r.latency_s < 1


def test_alert_fails_naming_a_missing_rule() -> None:
    def prom(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/api/v1/rules":
            return ok_json(prom_rules("ServiceDown", "SlowRequests"))
        return ok_json(prom_alerts())
    r = run({"signal": "alert", "alertname": "HighErrorRate", "deadline_s": 0.3}, prom=prom)
    assert r.status == "fail"
    assert "no alerting rule named HighErrorRate is loaded" in r.message


def test_alert_fails_with_the_nearest_miss_when_another_alert_fires() -> None:
    def prom(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/api/v1/rules":
            return ok_json(prom_rules("HighErrorRate", "SlowRequests"))
        return ok_json(prom_alerts(("SlowRequests", "firing", {"service": "web"}),
                                   ("HighErrorRate", "pending", {"service": "web"})))
    r = run({"signal": "alert", "alertname": "HighErrorRate", "deadline_s": 0.3}, prom=prom)
    assert r.status == "fail"
    assert 'seen instead: HighErrorRate{service="web"} (pending)' in r.message


def test_alert_with_other_labels_does_not_count() -> None:
    def prom(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/api/v1/rules":
            return ok_json(prom_rules("HighErrorRate"))
        return ok_json(prom_alerts(("HighErrorRate", "firing", {"service": "storage"})))
    r = run({"signal": "alert", "alertname": "HighErrorRate", "labels": {"service": "web"},
             "deadline_s": 0.3}, prom=prom)
    assert r.status == "fail" and 'service="storage"' in r.message


def test_alert_firing_after_the_deadline_is_a_fail_not_a_pass() -> None:
    started = time.monotonic()

    def prom(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/api/v1/rules":
            return ok_json(prom_rules("HighErrorRate"))
        late = time.monotonic() - started > 0.6
        return ok_json(prom_alerts(("HighErrorRate", "firing", {})) if late else prom_alerts())
    r = run({"signal": "alert", "alertname": "HighErrorRate", "deadline_s": 0.4}, prom=prom)
    assert r.status == "fail"


def test_alert_check_errors_when_prometheus_is_unreachable() -> None:
    r = run({"signal": "alert", "alertname": "X", "deadline_s": 0.2}, prom=unreachable)
    assert r.status == "error" and "prometheus unreachable" in r.message


def test_malformed_prometheus_answer_is_an_error_not_a_crash() -> None:
    def prom(req: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>Bad Gateway</html>")
    r = run({"signal": "alert", "alertname": "X", "deadline_s": 0.2}, prom=prom)
    assert r.status == "error" and "non-JSON" in r.message


# -- notification ---------------------------------------------------------------------

def notif(status: str, received_at: float, name: str = "HighErrorRate") -> dict[str, Any]:
    return {"alertname": name, "status": status, "labels": {"alertname": name},
            "received_at": received_at, "receiver": "readygate-sink"}


def test_notification_latency_is_measured_from_the_anchor() -> None:
    anchor = time.time() - 1.5
    rows = [notif("firing", anchor + 1.2)]
    r = run({"signal": "notification", "alertname": "HighErrorRate", "deadline_s": 5},
            sink=lambda req: ok_json({"notifications": rows}),
            anchors=Anchors(phase_start={"fault": anchor}, fault_start=anchor))
    assert r.status == "pass" and r.latency_s == pytest.approx(1.2, abs=0.01)


def test_notification_that_arrived_late_fails_as_late() -> None:
    anchor = time.time() - 3
    rows = [notif("firing", anchor + 2.5)]
    r = run({"signal": "notification", "alertname": "HighErrorRate", "deadline_s": 2},
            sink=lambda req: ok_json({"notifications": rows}),
            anchors=Anchors(phase_start={"fault": anchor}, fault_start=anchor))
    assert r.status == "fail" and "arrived late: 2.5s" in r.message


def test_notification_of_another_alert_does_not_count_whatever_the_backend_answers() -> None:
    # a backend that ignores the alertname it was asked for answers every notification
    anchor = time.time() - 1.5
    rows = [notif("firing", anchor + 1.0, name="DiskFull")]  # in time, were it the alert
    r = run({"signal": "notification", "alertname": "HighErrorRate", "deadline_s": 2},
            sink=lambda req: ok_json({"notifications": rows}),
            anchors=Anchors(phase_start={"fault": anchor}, fault_start=anchor))
    assert r.status == "fail" and "received instead: DiskFull" in r.message, r.message


def test_notification_before_the_anchor_does_not_count() -> None:
    anchor = time.time()
    rows = [notif("firing", anchor - 10)]
    r = run({"signal": "notification", "alertname": "HighErrorRate", "deadline_s": 0.3},
            sink=lambda req: ok_json({"notifications": rows}),
            anchors=Anchors(phase_start={"fault": anchor}, fault_start=anchor))
    assert r.status == "fail" and "no notification for HighErrorRate" in r.message


def test_missing_resolved_notification_fails_naming_what_arrived() -> None:
    anchor = time.time()
    rows = [notif("firing", anchor + 0.01)]
    r = run({"signal": "notification", "alertname": "HighErrorRate", "status": "resolved",
             "deadline_s": 0.3}, sink=lambda req: ok_json({"notifications": rows}),
            anchors=Anchors(phase_start={"fault": anchor}, fault_start=anchor))
    assert r.status == "fail" and "received instead: HighErrorRate firing" in r.message


def test_notification_check_errors_when_the_sink_is_down() -> None:
    r = run({"signal": "notification", "alertname": "X", "deadline_s": 0.2}, sink=unreachable)
    assert r.status == "error"


# -- no_alert -------------------------------------------------------------------------

def test_no_alert_passes_on_a_quiet_window() -> None:
    def prom(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/api/v1/rules":
            return ok_json(prom_rules("SlowRequests"))
        return ok_json(prom_alerts())
    r = run({"signal": "no_alert", "window_s": 0.5}, prom=prom, phase="baseline")
    assert r.status == "pass", r.message


def test_no_alert_fails_on_an_alert_firing_in_the_healthy_window() -> None:
    r = run({"signal": "no_alert", "window_s": 1},
            prom=lambda req: ok_json(prom_alerts(("SlowRequests", "firing", {"service": "web"}))),
            phase="baseline")
    assert r.status == "fail" and "SlowRequests" in r.message
    assert "either the system is not healthy or the rule fires on a healthy system" in r.message


def test_no_alert_cannot_pass_when_it_could_not_look() -> None:
    r = run({"signal": "no_alert", "window_s": 0.3}, prom=unreachable, phase="baseline")
    assert r.status == "error"


# -- trace ----------------------------------------------------------------------------

def spans(*services: str, trace_id: str = "ab" * 16) -> dict[str, Any]:
    return {"spans": [{"trace_id": trace_id, "span_id": str(i), "service": s, "name": "x"}
                      for i, s in enumerate(services)]}


def test_trace_passes_when_all_services_are_present_and_stable() -> None:
    r = run({"signal": "trace", "services": ["web", "storage"], "deadline_s": 2},
            sink=lambda req: ok_json(spans("web", "web", "storage")), phase="baseline",
            probes=[probe()])
    assert r.status == "pass" and r.evidence["spans"] == 3


def test_trace_missing_a_service_fails_naming_it() -> None:
    r = run({"signal": "trace", "services": ["web", "storage"], "deadline_s": 0.4},
            sink=lambda req: ok_json(spans("web", "web")), phase="baseline", probes=[probe()])
    assert r.status == "fail" and "missing storage" in r.message


@pytest.mark.parametrize("signal", ["trace", "trace_attributes"])
def test_a_trace_store_answering_another_trace_lends_the_probe_nothing(signal: str) -> None:
    # a caching proxy or a search that ignores the id: the spans are another trace's
    other = spans("web", "storage", trace_id="cd" * 16)
    check: dict[str, Any] = {"signal": signal, "deadline_s": 0.3}
    if signal == "trace_attributes":
        check["forbidden"] = ["password"]
    r = run(check, sink=lambda req: ok_json(other), phase="baseline", probes=[probe()])
    assert r.status == "fail", r.message
    assert "no spans with trace id" in r.message and "of other traces" in r.message


def test_a_trace_id_with_its_leading_zeros_dropped_is_the_same_trace() -> None:
    # Jaeger's v1 API prints the high half without leading zeros
    tid = "0000" + "ab" * 14
    store = spans("web", trace_id=tid.lstrip("0"))
    r = run({"signal": "trace", "services": ["web"], "deadline_s": 2},
            sink=lambda req: ok_json(store), phase="baseline",
            probes=[dataclasses.replace(probe(), trace_id=tid)])
    assert r.status == "pass", r.message


def test_trace_never_arriving_fails() -> None:
    r = run({"signal": "trace", "deadline_s": 0.3}, sink=lambda req: ok_json({"spans": []}),
            phase="baseline", probes=[probe()])
    assert r.status == "fail" and "no spans with trace id" in r.message


def test_trace_without_a_probe_to_follow_is_an_error() -> None:
    r = run({"signal": "trace", "journey": "upload", "deadline_s": 0.3},
            sink=lambda req: ok_json(spans("web")), phase="baseline", probes=[probe(ok=False)])
    assert r.status == "error" and "no successful upload probe" in r.message


# -- logs -----------------------------------------------------------------------------

def test_logs_pass_when_lines_carry_the_trace_id() -> None:
    def sink(req: httpx.Request) -> httpx.Response:
        if tid := req.url.params.get("trace_id"):
            return ok_json({"logs": [{"service": "web", "body": "login ok", "trace_id": tid}]})
        return ok_json({"logs": []})
    r = run({"signal": "logs", "journey": "upload", "services": ["web"], "deadline_s": 1},
            sink=sink, phase="baseline", probes=[probe()])
    assert r.status == "pass"


@pytest.mark.parametrize("lines", [
    [{"service": "web", "body": "login ok"}],                          # no id anywhere
    [{"service": "web", "body": "login ok", "trace_id": "cd" * 16}],   # another probe's
    [{"service": "web", "body": f"done trace={'ab' * 15}"}],           # a prefix of it
], ids=["no-id", "other-id", "prefix"])
def test_logs_a_backend_that_ignores_the_filter_lends_no_lines(lines: list[Any]) -> None:
    # A proxy that drops the query, a field that is not indexed: whatever the backend
    # answers, only lines that carry the probe's own id count.
    r = run({"signal": "logs", "journey": "upload", "services": ["web"], "deadline_s": 0.3},
            sink=lambda req: ok_json({"logs": lines}), phase="baseline", probes=[probe()])
    assert r.status == "fail" and "no log line carries trace_id" in r.message, r.message


def test_logs_a_line_without_an_id_field_counts_when_its_text_carries_the_id() -> None:
    line = {"service": "web", "body": f"GET /upload 200 trace={'AB' * 16}"}
    r = run({"signal": "logs", "journey": "upload", "services": ["web"], "deadline_s": 1},
            sink=lambda req: ok_json({"logs": [line]}), phase="baseline", probes=[probe()])
    assert r.status == "pass", r.message


def test_logs_without_trace_ids_fail_with_the_request_id_near_miss() -> None:
    def sink(req: httpx.Request) -> httpx.Response:
        if rid := req.url.params.get("request_id"):
            return ok_json({"logs": [{"service": "web", "body": "login ok",
                                      "request_id": rid}]})
        return ok_json({"logs": []})
    r = run({"signal": "logs", "journey": "upload", "deadline_s": 0.3}, sink=sink,
            phase="baseline", probes=[probe()])
    assert r.status == "fail" and "request id but not its trace id" in r.message


def test_logs_from_the_wrong_service_fail() -> None:
    r = run({"signal": "logs", "journey": "upload", "services": ["storage"], "deadline_s": 0.3},
            sink=lambda req: ok_json({"logs": [{"service": "web",
                                                "trace_id": req.url.params["trace_id"]}]}),
            phase="baseline", probes=[probe()])
    assert r.status == "fail" and "wanted storage" in r.message


# -- metric ---------------------------------------------------------------------------

def vector(*values: float) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"service": "web"}, "value": [0, str(v)]} for v in values]}}


def test_metric_condition_holds() -> None:
    r = run({"signal": "metric", "query": "up == 1", "deadline_s": 1},
            prom=lambda req: ok_json(vector(1)))
    assert r.status == "pass" and r.evidence["result"][0]["value"] == 1


def test_metric_condition_never_holding_fails() -> None:
    r = run({"signal": "metric", "query": "up == 2", "deadline_s": 0.3},
            prom=lambda req: ok_json(vector()))
    assert r.status == "fail" and "returned no series" in r.message


def test_bad_promql_is_an_error() -> None:
    def prom(req: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"status": "error", "errorType": "bad_data",
                                         "error": "parse error"})
    r = run({"signal": "metric", "query": "up ==", "deadline_s": 0.3}, prom=prom)
    assert r.status == "error" and "parse error" in r.message


# -- probe ----------------------------------------------------------------------------

def test_probe_check_needs_consecutive_successes() -> None:
    now = time.time()
    runs = [probe(ok=True, at=now + 0.01), probe(ok=False, at=now + 0.02),
            probe(ok=True, at=now + 0.03)]
    r = run({"signal": "probe", "journey": "upload", "consecutive": 2, "deadline_s": 0.3},
            phase="recovery", probes=runs, anchors=Anchors(phase_start={"recovery": now}))
    assert r.status == "fail" and "1 of 2 consecutive" in r.message
    runs.append(probe(ok=True, at=now + 0.04))
    r = run({"signal": "probe", "journey": "upload", "consecutive": 2, "deadline_s": 0.3},
            phase="recovery", probes=runs, anchors=Anchors(phase_start={"recovery": now}))
    assert r.status == "pass"


def test_trace_ids_read_as_hex_whatever_their_length_and_base64_only_when_padded() -> None:
    from gates.backends.traces import _id
    assert _id("ab" * 14) == "ab" * 14            # Jaeger's 128-bit id, leading zeros dropped
    assert _id("AB" * 16) == "ab" * 16
    assert _id("q83vASNFZ4mrze8BI0VniQ==") == "abcdef0123456789abcdef0123456789"  # OTLP JSON


@pytest.mark.parametrize("event", [
    {"event_id": "e1", "message": "boom", "received_at": None},                 # no id at all
    {"event_id": "e1", "message": "boom", "trace_id": "cd" * 16, "received_at": None},
], ids=["no-id", "other-id"])
def test_error_event_a_backend_ignoring_the_filter_lends_no_event(event: dict[str, Any]) -> None:
    def sink(req: httpx.Request) -> httpx.Response:
        return ok_json({"errors": [{**event, "received_at": time.time()}]})
    r = run({"signal": "error_event", "journey": "upload", "deadline_s": 0.3}, sink=sink,
            phase="fault", probes=[probe(ok=False)])
    assert r.status == "fail", r.message


def test_error_event_without_an_id_field_counts_when_its_body_carries_the_id() -> None:
    def sink(req: httpx.Request) -> httpx.Response:
        return ok_json({"errors": [{"event_id": "e1", "message": "boom",
                                    "received_at": time.time(),
                                    "event": {"contexts": {"trace": {"trace_id": "ab" * 16}}}}]})
    r = run({"signal": "error_event", "journey": "upload", "deadline_s": 1}, sink=sink,
            phase="fault", probes=[probe(ok=False)])
    assert r.status == "pass", r.message
