"""Cloud Monitoring alerts (``kind: gcloud`` alerts): alert state from the incidents its
webhook channel posted to a real sink app (sink/hooks_gcloud.py), and the
``alert_policy`` lint through the real google-cloud-monitoring client (gRPC) against
tests/fakes/gcloud.py's AlertPolicyService, NotificationChannelService and MetricService.
Seeds' policies: "API error rate > 5 %" and "workflow failure rate > 10 %"."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gates.backends.gcloud.alerts import GcloudAlerts
from gates.backends.gcloud.auth import GcloudAuth
from gates.backends.gcloud.monitoring import GcloudMonitoring
from gates.backends.sink import SinkClient
from gates.context import Anchors
from sink.server import create_app
from sink.store import SinkDB
from tests.fakes.gcloud import PROJECT, FakeMonitoringGrpc, incident, serve_grpc
from tests.fakes.server import serve
from tests.gates.conftest import judge_with

API = "API error rate > 5 %"
WORKFLOW = "workflow failure rate > 10 %"
TOKEN = "ya29.a0-monitoring-token"


@pytest.fixture
def sink_url(tmp_path: Path) -> Iterator[str]:
    with serve(create_app(SinkDB(tmp_path / "sink.db"))) as url:
        yield url


@pytest.fixture
def monitoring() -> Iterator[tuple[FakeMonitoringGrpc, str]]:
    fake = FakeMonitoringGrpc()
    with serve_grpc(fake) as url:
        yield fake, url


def post(sink_url: str, body: dict[str, Any]) -> None:
    assert httpx.post(f"{sink_url}/webhooks/gcloud", json=body).status_code == 200


def gcloud_alerts(sink_url: str, grpc_url: str = "http://127.0.0.1:9") -> Any:
    return lambda http: GcloudAlerts(
        SinkClient(sink_url, http),
        GcloudMonitoring(GcloudAuth(token=TOKEN, project_id=PROJECT), url=grpc_url,
                         timeout_s=2))


def fault_at(now: float) -> Anchors:
    return Anchors(phase_start={"fault": now - 1}, fault_start=now)


# -- alert state from incidents -------------------------------------------------------------

def test_an_incident_opened_after_the_fault_is_a_firing_alert(sink_url: str) -> None:
    now = time.time()
    post(sink_url, incident(started=now + 1, policy=API))
    r = judge_with({"signal": "alert", "alertname": API, "labels": {"service_name": "api"},
                    "deadline_s": 3}, anchors=fault_at(now), alerts=gcloud_alerts(sink_url))
    assert r.status == "pass", r.message
    assert r.evidence["query"] == "gcloud alert state"


def test_an_incident_open_since_before_the_fault_proves_nothing(sink_url: str) -> None:
    now = time.time()
    post(sink_url, incident(started=now - 120, policy=API))
    r = judge_with({"signal": "alert", "alertname": API, "deadline_s": 1},
                   anchors=fault_at(now), alerts=gcloud_alerts(sink_url))
    assert r.status == "fail" and "already active before fault_start" in r.message


def test_no_incident_or_a_closed_one_is_no_alert(sink_url: str) -> None:
    now = time.time()
    r = judge_with({"signal": "alert", "alertname": API, "deadline_s": 0.5},
                   anchors=fault_at(now), alerts=gcloud_alerts(sink_url))
    assert r.status == "fail" and "no alert pending or firing" in r.message
    post(sink_url, incident(started=now + 1, policy=WORKFLOW, incident_id="0.w1"))
    post(sink_url, incident("closed", started=now + 1, ended=now + 2, policy=WORKFLOW,
                            incident_id="0.w1"))
    r = judge_with({"signal": "alert", "alertname": WORKFLOW, "deadline_s": 0.5},
                   anchors=fault_at(now), alerts=gcloud_alerts(sink_url))
    assert r.status == "fail"


def test_an_incident_opened_after_the_deadline_is_late(sink_url: str) -> None:
    now = time.time()
    late = threading.Timer(1.5, post, (sink_url, incident(started=now + 1.5, policy=API)))
    late.start()
    try:
        r = judge_with({"signal": "alert", "alertname": API, "deadline_s": 0.8},
                       anchors=fault_at(now), alerts=gcloud_alerts(sink_url))
    finally:
        late.join()
    assert r.status == "fail" and "not firing" in r.message


def test_an_incident_that_closed_after_recovery_resolves(sink_url: str) -> None:
    now = time.time()
    post(sink_url, incident(started=now - 5, incident_id="0.a1"))
    post(sink_url, incident("closed", started=now - 5, ended=now + 0.5, incident_id="0.a1"))
    anchors = Anchors(phase_start={"recovery": now - 0.5}, fault_start=now - 6, fault_end=now)
    r = judge_with({"signal": "alert_resolves", "alertname": API, "deadline_s": 3},
                   phase="recovery", anchors=anchors, alerts=gcloud_alerts(sink_url))
    assert r.status == "pass", r.message


def test_a_healthy_window_with_an_open_incident_fails_no_alert(sink_url: str) -> None:
    now = time.time()
    post(sink_url, incident(started=now - 30, policy=WORKFLOW, incident_id="0.w2"))
    r = judge_with({"signal": "no_alert", "window_s": 0.5}, phase="baseline",
                   anchors=Anchors(phase_start={"baseline": now}),
                   alerts=gcloud_alerts(sink_url))
    assert r.status == "fail" and WORKFLOW in r.message


def test_a_sink_that_is_down_is_an_error() -> None:
    now = time.time()
    r = judge_with({"signal": "alert", "alertname": API, "deadline_s": 0.5},
                   anchors=fault_at(now), alerts=gcloud_alerts("http://127.0.0.1:9"))
    assert r.status == "error" and "sink unreachable" in r.message


# -- the alert_policy lint ------------------------------------------------------------------

def seeds(fake: FakeMonitoringGrpc, **changes: Any) -> None:
    """The seeds' two policies, notifying a webhook channel to the sink, over metrics with
    recent data; ``changes`` break the API policy."""
    channel = fake.channel("readygate sink", enabled=changes.pop("channel_enabled", True))
    fake.policy(API, channels=[channel], **changes)
    fake.policy(WORKFLOW, channels=[channel],
                metric_type="workflows.googleapis.com/finished_execution_count")
    fake.series["logging.googleapis.com/user/api_errors"] = time.time() - 30
    fake.series["workflows.googleapis.com/finished_execution_count"] = time.time() - 30


POLICY_CHECK = {"signal": "alert_policy", "policies": [API, WORKFLOW], "deadline_s": 0.6,
                "channel_types": ["webhook_tokenauth"], "policy_severity": "critical"}


def test_sound_seed_policies_pass_with_the_token_sent(
        sink_url: str, monitoring: tuple[FakeMonitoringGrpc, str]) -> None:
    fake, url = monitoring
    seeds(fake)
    r = judge_with(POLICY_CHECK, phase="baseline", alerts=gcloud_alerts(sink_url, url))
    assert r.status == "pass", r.message
    assert [p["display_name"] for p in r.evidence["found"]] == [API, WORKFLOW]
    assert {m.get("authorization") for m in fake.metadata} == {f"Bearer {TOKEN}"}
    assert any('metric.type="logging.googleapis.com/user/api_errors"' in f
               for f in fake.filters)


@pytest.mark.parametrize(("changes", "defect"), [
    ({"enabled": False}, "disabled"),
    ({"channel_enabled": False}, "notification channel readygate sink (webhook_tokenauth) "
                                 "is disabled"),
    ({"documentation": ""}, "no documentation"),
    ({"severity": "WARNING"}, "severity warning, expected critical"),
    ({"metric_type": "logging.googleapis.com/user/api_errorz"}, "matches no time series "
                                                                "written in the last 1h"),
])
def test_a_defective_policy_fails_naming_the_defect(
        sink_url: str, monitoring: tuple[FakeMonitoringGrpc, str], changes: dict[str, Any],
        defect: str) -> None:
    fake, url = monitoring
    seeds(fake, **changes)
    r = judge_with(POLICY_CHECK, phase="baseline", alerts=gcloud_alerts(sink_url, url))
    assert r.status == "fail" and f"policy {API!r}: " in r.message and defect in r.message, \
        r.message


def test_a_policy_without_channels_or_the_webhook_fails(
        sink_url: str, monitoring: tuple[FakeMonitoringGrpc, str]) -> None:
    fake, url = monitoring
    email = fake.channel("on-call", kind="email")
    fake.policy(API, channels=[])
    fake.policy(WORKFLOW, channels=[email])
    fake.series["logging.googleapis.com/user/api_errors"] = time.time()
    r = judge_with({**POLICY_CHECK, "policy_severity": None}, phase="baseline",
                   alerts=gcloud_alerts(sink_url, url))
    assert r.status == "fail"
    assert "no notification channels: it would fire and notify nobody" in r.message
    assert f"policy {WORKFLOW!r}: no enabled webhook_tokenauth notification channel" in r.message


def test_a_missing_policy_fails_with_the_similar_names(
        sink_url: str, monitoring: tuple[FakeMonitoringGrpc, str]) -> None:
    fake, url = monitoring
    seeds(fake)
    r = judge_with({**POLICY_CHECK, "policies": ["API error rate > 5%"]}, phase="baseline",
                   alerts=gcloud_alerts(sink_url, url))
    assert r.status == "fail" and "no alert policy named 'API error rate > 5%'" in r.message
    assert f"similar: {API}" in r.message


@pytest.mark.parametrize("mode", ["error", "garbage"])
def test_a_monitoring_api_answering_errors_or_garbage_is_an_error(
        sink_url: str, monitoring: tuple[FakeMonitoringGrpc, str], mode: str) -> None:
    fake, url = monitoring
    seeds(fake)
    fake.mode = mode
    r = judge_with(POLICY_CHECK, phase="baseline", alerts=gcloud_alerts(sink_url, url))
    assert r.status == "error" and "Cloud Monitoring" in r.message, r.message


def test_alert_policy_without_a_gcloud_backend_is_an_error() -> None:
    r = judge_with(POLICY_CHECK, phase="baseline")
    assert r.status == "error" and "kind gcloud" in r.message
