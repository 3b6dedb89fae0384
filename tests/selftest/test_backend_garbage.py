"""Garbage from a backend (HTML error pages, truncated JSON, huge bodies, wrong types) ends a
check as ``error`` ("could not look"), never as a crash and never as a pass."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gates.backends.alertmanager import AlertmanagerClient
from gates.backends.prometheus import PrometheusClient
from gates.backends.sink import SinkClient
from gates.checks import judge
from gates.context import Anchors, CheckContext
from reports.model import CheckResult
from tests.gates.conftest import CHECK, make_probe

SECRET = "pw-Garbage-Secret-1"

# Every check that reads a backend, in the phase it judges.
CHECKS: list[tuple[dict[str, Any], str]] = [
    ({"signal": "alert", "alertname": "HighErrorRate"}, "fault"),
    ({"signal": "notification", "alertname": "HighErrorRate"}, "fault"),
    ({"signal": "no_alert", "window_s": 0.2}, "baseline"),
    ({"signal": "alert_rule", "alertname": "HighErrorRate"}, "baseline"),
    ({"signal": "alert_resolves", "alertname": "HighErrorRate"}, "recovery"),
    ({"signal": "alert_not_silenced", "alertname": "HighErrorRate"}, "fault"),
    ({"signal": "metric", "query": "up > 0"}, "baseline"),
    ({"signal": "metric_contract", "metrics": {"http_requests_total": ["route"]}}, "baseline"),
    ({"signal": "counter_increases", "metric": "http_requests_total"}, "baseline"),
    ({"signal": "logs", "journey": "upload"}, "baseline"),
    ({"signal": "log_fields", "journey": "upload"}, "baseline"),
    ({"signal": "log_levels", "journey": "upload"}, "fault"),
    ({"signal": "log_budget", "journey": "upload"}, "baseline"),
    ({"signal": "secret_leak", "journey": "upload"}, "baseline"),
    ({"signal": "trace", "journey": "upload"}, "baseline"),
    ({"signal": "trace_error_span", "journey": "upload"}, "fault"),
    ({"signal": "trace_attributes", "journey": "upload"}, "baseline"),
    ({"signal": "error_event", "journey": "upload"}, "fault"),
    ({"signal": "pii_scrubbed", "journey": "upload"}, "fault"),
]

HUGE = b'{"status": "success", "data": "' + b"x" * (21 * 1024 * 1024) + b'"}'
GARBAGE: dict[str, tuple[int, bytes, str]] = {
    "html 502 page": (502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
    "html 200 page": (200, b"<!doctype html><title>Login</title><form></form>", "text/html"),
    "truncated json": (200, b'{"status": "success", "data": {"alerts": [{"labels": ',
                       "application/json"),
    "huge body": (200, HUGE, "application/json"),
    "data is a string": (200, b'{"status": "success", "data": "oops"}', "application/json"),
    "json null": (200, b"null", "application/json"),
    "list of numbers": (200, b"[1, 2, 3]", "application/json"),
    "items of wrong type": (200, b'{"status": "success", "data": {"alerts": [7], "groups": [7],'
                            b' "result": [7], "resultType": "vector"}, "spans": [7],'
                            b' "lines": [7], "events": [7], "notifications": [7]}',
                            "application/json"),
}


def judge_against(check: dict[str, Any], phase: str, status: int, body: bytes,
                  content_type: str) -> CheckResult:
    """Judge ``check`` with Prometheus, Alertmanager and the sink all answering ``body``."""
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": content_type})

    async def go() -> CheckResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            now = time.time()
            probe_ok = make_probe(check.get("journey", "upload"), ok=phase != "fault", at=now)
            ctx = CheckContext(
                prometheus=PrometheusClient("http://prom.test", http),
                sink=SinkClient("http://sink.test", http),
                alertmanager=AlertmanagerClient("http://am.test", http),
                anchors=Anchors(phase_start={phase: now - 0.5}, fault_start=now - 0.5,
                                fault_end=now - 0.2),
                probe_results=[probe_ok], poll_interval_s=0.05, http=http, secrets=[SECRET])
            spec = {**check, "deadline_s": 0.2}
            if spec["signal"] == "no_alert":
                spec.pop("deadline_s")
            return await judge(CHECK.validate_python(spec), ctx, phase)
    return asyncio.run(go())


@pytest.mark.parametrize("garbage", list(GARBAGE))
@pytest.mark.parametrize(("check", "phase"), CHECKS, ids=[c["signal"] for c, _ in CHECKS])
def test_garbage_from_a_backend_is_an_error_not_a_crash(check: dict[str, Any], phase: str,
                                                        garbage: str) -> None:
    status, body, content_type = GARBAGE[garbage]
    result = judge_against(check, phase, status, body, content_type)
    assert result.status == "error", (garbage, result.status, result.message)
    assert "\n" not in result.message
    assert len(result.message) < 1000, "a huge body must not end up in the report"


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["status", "data", "alerts", "labels", "groups", "rules",
                                       "result", "spans", "lines", "events", "name", "state",
                                       "value", "values", "metric", "notifications"]),
                      children, max_size=5),
    max_leaves=20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=JSONISH, index=st.integers(0, len(CHECKS) - 1))
def test_any_json_shape_never_crashes_a_check_nor_passes_it_by_accident(body: Any,
                                                                        index: int) -> None:
    check, phase = CHECKS[index]
    result = judge_against(check, phase, 200, json.dumps(body).encode(), "application/json")
    # Random JSON may happen to be a well-formed "nothing there" (fail) but it never crashes,
    # and a check that proves a presence never passes on it.
    assert result.status in ("error", "fail", "skipped", "pass"), result
    if check["signal"] in ("alert", "notification", "metric", "logs", "trace", "error_event",
                           "trace_error_span", "log_levels", "counter_increases"):
        assert result.status != "pass", (body, result.message)
