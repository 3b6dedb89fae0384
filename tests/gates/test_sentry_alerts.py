"""``signal: notification`` for Sentry alerts, both ways a user can prove one fired:

- Sentry's alert webhooks into the real sink (``POST /webhooks/sentry``, read by
  ``kind: sink``), posted in Sentry's documented payload shapes;
- Sentry's incidents API (``notifications: {kind: sentry}``) against a fake speaking it.

Each: present and on time (pass), absent (fail), late (fail), already firing before the
anchor (fail), the backend down or answering garbage (error).
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gates.backends.sentry import SentryIncidents
from gates.backends.sink import SinkClient, SinkNotifications
from gates.context import Anchors
from sink.server import create_app
from sink.store import SinkDB
from tests.fakes.sentry_posthog import FakeSentryIncidents
from tests.fakes.server import serve
from tests.gates.conftest import Build, judge_with


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def metric_alert(name: str, action: str, *, started: float) -> dict[str, Any]:
    """Sentry's metric alert webhook body (Sentry-Hook-Resource: metric_alert)."""
    return {"action": action, "actor": {"id": "sentry", "name": "Sentry", "type": "application"},
            "data": {"description_title": f"{action.title()}: {name}",
                     "description_text": "error rate above 5%",
                     "metric_alert": {"alert_rule": {"name": name, "id": "7",
                                                     "projects": ["web"], "environment": None},
                                      "date_started": iso(started), "date_detected": iso(started),
                                      "date_closed": None, "id": "41", "identifier": "1",
                                      "projects": ["web"], "status": 20, "title": name},
                     "web_url": "https://sentry.io/organizations/acme/alerts/1/"},
            "installation": {"uuid": "a8e5d37a-696c-4c54-adb5-b3f28d64c7de"}}


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real sink app on a free port (in this process)."""
    db = SinkDB(Path(tmp_path_factory.mktemp("sink")) / "sink.db")
    try:
        with serve(create_app(db)) as url:
            yield url
    finally:
        db.close()


def webhook(sink: str, body: dict[str, Any]) -> None:
    resp = httpx.post(f"{sink}/webhooks/sentry", json=body, timeout=5.0,
                      headers={"Sentry-Hook-Resource": "metric_alert"})
    assert resp.status_code == 200, resp.text


def via_sink(url: str) -> Build:
    return lambda http: SinkNotifications(SinkClient(url, http))


def check(name: str, **extra: Any) -> dict[str, Any]:
    return {"signal": "notification", "alertname": name, "deadline_s": 3, **extra}


# -- webhooks into the sink ------------------------------------------------------------

def test_sentry_metric_alert_webhook_on_time_passes_and_its_resolution_too(sink: str) -> None:
    name, anchor = f"API error rate {secrets.token_hex(3)}", time.time()
    webhook(sink, metric_alert(name, "critical", started=anchor + 0.1))
    r = judge_with(check(name), anchors=Anchors(fault_start=anchor), notifications=via_sink(sink))
    assert r.status == "pass" and r.evidence["receiver"] == "sentry", r.message
    end = time.time()
    webhook(sink, metric_alert(name, "resolved", started=anchor + 0.1))
    r = judge_with(check(name, status="resolved", anchor="fault_end", phase="recovery"),
                   phase="recovery", anchors=Anchors(fault_start=anchor, fault_end=end),
                   notifications=via_sink(sink))
    assert r.status == "pass", r.message


def test_no_sentry_webhook_fails(sink: str) -> None:
    r = judge_with(check(f"never {secrets.token_hex(3)}", deadline_s=0.5),
                   notifications=via_sink(sink))
    assert r.status == "fail" and "no never" in r.message


def test_a_sentry_webhook_after_the_deadline_fails_as_late(sink: str) -> None:
    name, anchor = f"late {secrets.token_hex(3)}", time.time() - 8
    webhook(sink, metric_alert(name, "critical", started=anchor + 1))
    r = judge_with(check(name), anchors=Anchors(fault_start=anchor), notifications=via_sink(sink))
    assert r.status == "fail" and "arrived late" in r.message, r.message


def test_a_sentry_alert_that_started_before_the_anchor_fails(sink: str) -> None:
    name, anchor = f"stale {secrets.token_hex(3)}", time.time()
    webhook(sink, metric_alert(name, "critical", started=anchor - 120))  # re-sent, old incident
    r = judge_with(check(name), anchors=Anchors(fault_start=anchor), notifications=via_sink(sink))
    assert r.status == "fail" and "already firing before the fault" in r.message, r.message


def test_a_sink_that_is_down_is_an_error_not_a_fail(tmp_path: Path) -> None:
    db = SinkDB(tmp_path / "sink.db")
    with serve(create_app(db)) as url:
        pass  # the port is closed now
    db.close()
    r = judge_with(check("any", deadline_s=0.3), notifications=via_sink(url))
    assert r.status == "error" and "could not look" in r.message, r.message


# -- Sentry's incidents API ---------------------------------------------------------------

@pytest.fixture
def incidents() -> Iterator[tuple[FakeSentryIncidents, str]]:
    fake = FakeSentryIncidents(token="sntrys-t")
    with serve(fake.app()) as url:
        yield fake, url


def api(url: str, token: str = "sntrys-t") -> Build:
    return lambda http: SentryIncidents(url, http, organization="acme", token=token)


def test_a_sentry_incident_detected_in_time_passes_and_its_close_resolves(
        incidents: tuple[FakeSentryIncidents, str]) -> None:
    fake, url = incidents
    anchor = time.time()
    incident = fake.open("API error rate", started=anchor + 0.1, detected=anchor + 0.4)
    r = judge_with(check("API error rate"), anchors=Anchors(fault_start=anchor),
                   notifications=api(url))
    assert r.status == "pass" and r.latency_s == pytest.approx(0.4, abs=0.01), r.message
    assert r.evidence["link"].endswith("/organizations/acme/alerts/1/")
    end = time.time()
    fake.close(incident, at=end + 0.5)
    r = judge_with(check("API error rate", status="resolved", anchor="fault_end",
                         phase="recovery", deadline_s=65), phase="recovery",
                   anchors=Anchors(fault_start=anchor, fault_end=end), notifications=api(url))
    # dateClosed is truncated to the minute: readygate takes the latest time it can be
    assert r.status == "pass" and r.latency_s is not None and r.latency_s <= 60.5, r.message


def test_no_sentry_incident_fails(incidents: tuple[FakeSentryIncidents, str]) -> None:
    fake, url = incidents
    fake.open("Other rule", started=time.time())
    r = judge_with(check("API error rate", deadline_s=0.5), notifications=api(url))
    assert r.status == "fail", r.message


def test_a_sentry_incident_detected_after_the_deadline_fails_as_late(
        incidents: tuple[FakeSentryIncidents, str]) -> None:
    fake, url = incidents
    anchor = time.time() - 10
    fake.open("API error rate", started=anchor + 1, detected=anchor + 8)
    r = judge_with(check("API error rate"), anchors=Anchors(fault_start=anchor),
                   notifications=api(url))
    assert r.status == "fail" and "arrived late: 8.0s" in r.message, r.message


def test_a_sentry_incident_open_before_the_anchor_fails(
        incidents: tuple[FakeSentryIncidents, str]) -> None:
    fake, url = incidents
    fake.open("API error rate", started=time.time() - 300)
    r = judge_with(check("API error rate", deadline_s=0.5), notifications=api(url))
    assert r.status == "fail" and "said firing and none resolved it" in r.message, r.message


def test_sentry_incidents_api_garbage_refusal_or_down_is_an_error(
        incidents: tuple[FakeSentryIncidents, str]) -> None:
    fake, url = incidents
    r = judge_with(check("API error rate", deadline_s=0.3),
                   notifications=api(url, token="wrong"))
    assert r.status == "error" and "refused" in r.message, r.message
    fake.garbage = True
    r = judge_with(check("API error rate", deadline_s=0.3), notifications=api(url))
    assert r.status == "error" and "malformed incidents list" in r.message, r.message
    with serve(fake.app()) as closed:
        pass
    r = judge_with(check("API error rate", deadline_s=0.3), notifications=api(closed))
    assert r.status == "error" and "unreachable" in r.message, r.message
