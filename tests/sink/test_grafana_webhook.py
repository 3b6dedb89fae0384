"""Grafana's webhook contact point (its documented body) into the real sink process at
/webhooks/grafana, read back by a notification check: a firing notification after the
anchor passes in time and fails late; one whose alert started before the anchor, or none,
fails; the resolved one resolves; a body that is not Grafana 9+ alerting's is refused."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

import pytest

from gates.backends.sink import SinkClient, SinkNotifications
from gates.context import Anchors
from sink.formats import BadPayload
from sink.hooks_grafana import grafana_rows
from tests.fakes.grafana import closed_url
from tests.gates.conftest import judge_with
from tests.sink.conftest import Sink


def rfc3339(ts: float) -> str:
    """As Grafana writes startsAt: RFC 3339 with nanoseconds and the server's offset."""
    local = dt.datetime.fromtimestamp(ts, dt.timezone(dt.timedelta(hours=2)))
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int((ts % 1) * 1e9):09d}+02:00"


def payload(name: str, status: str = "firing", *, started: float | None = None,
            **labels: str) -> dict[str, Any]:
    """What a Grafana webhook contact point posts (Grafana's documented example's shape)."""
    alert_labels = {"alertname": name, "grafana_folder": "ops", "service": "web", **labels}
    ends = "0001-01-01T00:00:00Z" if status == "firing" else rfc3339(time.time())
    return {
        "receiver": "readygate-sink", "status": status, "orgId": 1,
        "alerts": [{
            "status": status, "labels": alert_labels,
            "annotations": {"summary": "error rate above 5%",
                            "runbook_url": "https://runbooks.example/high-error-rate"},
            "startsAt": rfc3339(started or time.time()), "endsAt": ends,
            "generatorURL": "https://grafana.example/alerting/grafana/abc123/view",
            "fingerprint": "c6eadffa33fcdf37",
            "silenceURL": "https://grafana.example/alerting/silence/new?alertmanager=grafana",
            "dashboardURL": "", "panelURL": "", "values": {"B": 0.31, "C": 1}}],
        "groupLabels": {"alertname": name}, "commonLabels": alert_labels,
        "commonAnnotations": {}, "externalURL": "https://grafana.example/",
        "version": "1", "groupKey": f'{{}}:{{alertname="{name}"}}', "truncatedAlerts": 0,
        "title": f"[{status.upper()}:1] {name} (ops web)",
        "state": "alerting" if status == "firing" else "ok",
        "message": f"**{status.capitalize()}**\n\nValue: B=0.31, C=1\nLabels:\n - alertname = "
                   f"{name}\n"}


def post(sink: Sink, body: Any) -> Any:
    return sink.post("/webhooks/grafana", json.dumps(body).encode(),
                     {"Content-Type": "application/json"})


def notifications(sink: Sink) -> Any:
    return lambda http: SinkNotifications(SinkClient(sink.url, http))


def anchors(at: float, fault_end: float | None = None) -> Anchors:
    return Anchors(phase_start={"fault": at}, fault_start=at, fault_end=fault_end)


# -- the parser ------------------------------------------------------------------------

def test_each_alert_is_a_row_with_labels_times_and_grafanas_fields_kept() -> None:
    at = 1_760_000_000.0
    (row,) = grafana_rows(payload("High error rate", started=at - 5), at)
    assert (row["alertname"], row["status"], row["receiver"]) == (
        "High error rate", "firing", "readygate-sink")
    assert row["labels"]["service"] == "web" and row["labels"]["grafana_folder"] == "ops"
    assert row["starts_at"] == rfc3339(at - 5) and row["received_at"] == at
    assert row["fingerprint"] == "c6eadffa33fcdf37"
    assert row["payload"]["orgId"] == 1 and row["payload"]["state"] == "alerting"
    assert "alerts" not in row["payload"]


@pytest.mark.parametrize(("body", "reason"), [
    ({"title": "[Alerting] High error rate", "ruleName": "High error rate",
      "state": "alerting", "evalMatches": []}, "legacy alerting"),
    ({"receiver": "x", "status": "firing"}, "no alerts"),
    ({"alerts": ["firing"]}, "must be an object"),
    ({"alerts": [{"status": "firing", "labels": {"service": "web"}}]}, "labels.alertname"),
    ({"alerts": [{"status": "pending", "labels": {"alertname": "X"}}]}, "neither firing"),
    ({"alerts": [{"status": "firing", "labels": ["alertname"]}]}, "labels must be an object"),
])
def test_a_body_that_is_not_grafana_alertings_is_refused_with_the_reason(
        body: dict[str, Any], reason: str) -> None:
    with pytest.raises(BadPayload, match=reason):
        grafana_rows(body, time.time())


# -- through the sink, judged ----------------------------------------------------------

def test_a_firing_webhook_after_the_anchor_passes_and_fails_late(sink: Sink) -> None:
    name = f"High error rate {uuid.uuid4().hex[:8]}"
    anchor = time.time() - 3
    resp = post(sink, payload(name, started=anchor + 1))
    assert resp.status_code == 200 and resp.json() == {"stored": 1}
    check = {"signal": "notification", "alertname": name, "labels": {"service": "web"},
             "deadline_s": 10}
    r = judge_with(check, anchors=anchors(anchor), notifications=notifications(sink))
    assert r.status == "pass", r.message
    assert r.evidence["receiver"] == "readygate-sink"
    r = judge_with({**check, "deadline_s": 1}, anchors=anchors(anchor),
                   notifications=notifications(sink))
    assert r.status == "fail" and "arrived late" in r.message


def test_an_alert_that_started_before_the_anchor_fails(sink: Sink) -> None:
    name = f"High error rate {uuid.uuid4().hex[:8]}"
    anchor = time.time() - 1
    post(sink, payload(name, started=anchor - 300))  # delivered now, firing for 5 minutes
    r = judge_with({"signal": "notification", "alertname": name, "deadline_s": 5},
                   anchors=anchors(anchor), notifications=notifications(sink))
    assert r.status == "fail" and "already firing before the fault" in r.message


def test_no_webhook_fails(sink: Sink) -> None:
    name = f"High error rate {uuid.uuid4().hex[:8]}"
    r = judge_with({"signal": "notification", "alertname": name, "deadline_s": 0.5},
                   anchors=anchors(time.time() - 1), notifications=notifications(sink))
    assert r.status == "fail" and f"no notification for {name}" in r.message


def test_a_resolved_webhook_resolves_the_alert_that_fired_in_the_fault(sink: Sink) -> None:
    name = f"High error rate {uuid.uuid4().hex[:8]}"
    fault = time.time() - 2
    post(sink, payload(name, started=fault + 0.5))
    post(sink, payload(name, "resolved", started=fault + 0.5))
    r = judge_with({"signal": "notification", "alertname": name, "status": "resolved",
                    "anchor": "fault_end", "deadline_s": 10}, phase="recovery",
                   anchors=anchors(fault, fault_end=fault + 1),
                   notifications=notifications(sink))
    assert r.status == "pass", r.message


def test_garbage_is_answered_400_and_a_dead_sink_is_an_error(sink: Sink) -> None:
    resp = sink.post("/webhooks/grafana", b"<html>not json</html>",
                     {"Content-Type": "application/json"})
    assert resp.status_code == 400
    resp = post(sink, {"ruleName": "X", "evalMatches": []})
    assert resp.status_code == 400 and "legacy alerting" in resp.json()["error"]
    r = judge_with({"signal": "notification", "alertname": "X", "deadline_s": 0.3},
                   anchors=anchors(time.time() - 1),
                   notifications=lambda http: SinkNotifications(SinkClient(closed_url(), http)))
    assert r.status == "error"
