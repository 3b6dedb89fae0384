"""Datadog webhooks (the payload template of docs/backends.md) into the real sink process,
read back by a notification check: a Triggered notification after the anchor passes in
time and fails late; one whose trigger date is before the anchor, or none, fails; a
Recovered one resolves; a payload Datadog left unfilled is refused with the reason."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from gates.backends.sink import SinkClient, SinkNotifications
from gates.context import Anchors
from sink.formats import BadPayload
from sink.hooks_datadog import alertname_of, datadog_rows
from tests.gates.conftest import judge_with
from tests.sink.conftest import Sink


def payload(name: str, transition: str = "Triggered", *, at: float | None = None,
            scope: str = "host:web-1,env:prod", **extra: Any) -> dict[str, Any]:
    """What Datadog posts for the documented template (its variables filled in)."""
    on = f" on {{{scope}}}" if scope else ""
    return {"id": "7006370012948537000", "monitor_id": "123456",
            "title": f"[P2] [{transition}{on}] {name}", "transition": transition,
            "date": str(int((at or time.time()) * 1000)), "scope": scope,
            "tags": "env:prod,service:web,monitor", "cycle_key": "7006370012948537001",
            "priority": "P2", "link": "https://app.datadoghq.com/event/event?id=7006",
            **extra}


def post(sink: Sink, body: dict[str, Any]) -> Any:
    resp = sink.post("/webhooks/datadog", json.dumps(body).encode(),
                     {"Content-Type": "application/json"})
    return resp


def notifications(sink: Sink) -> Any:
    return lambda http: SinkNotifications(SinkClient(sink.url, http))


def anchors(at: float, fault_end: float | None = None) -> Anchors:
    return Anchors(phase_start={"fault": at}, fault_start=at, fault_end=fault_end)


# -- the parser ------------------------------------------------------------------------

def test_the_monitor_name_is_the_title_after_the_transition_prefix() -> None:
    assert alertname_of("[Triggered on {host:web-1}] High error rate") == "High error rate"
    assert alertname_of("[P1] [Recovered] High error rate") == "High error rate"
    assert alertname_of("[prod] Queue depth") == "[prod] Queue depth"  # part of the name


def test_a_triggered_notification_is_a_firing_row_with_the_scope_and_tags_as_labels() -> None:
    at = 1_760_000_000.0
    (row,) = datadog_rows(payload("High error rate", at=at), at + 2)
    assert (row["alertname"], row["status"], row["receiver"]) == (
        "High error rate", "firing", "datadog")
    assert row["starts_at"] == "2025-10-09T08:53:20.000000Z" and row["received_at"] == at + 2
    assert row["labels"] == {"alertname": "High error rate", "host": "web-1", "env": "prod",
                             "service": "web", "monitor_id": "123456", "priority": "P2"}
    assert row["fingerprint"] == "7006370012948537001"
    (row,) = datadog_rows(payload("High error rate", "Recovered", at=at), at)
    assert row["status"] == "resolved" and row["ends_at"] and row["starts_at"] is None


@pytest.mark.parametrize("transition", ["Warn", "No Data", "Re-Triggered", "Renotify"])
def test_other_transitions_are_neither_a_new_alert_nor_its_end(transition: str) -> None:
    assert datadog_rows(payload("High error rate", transition), time.time()) == []


@pytest.mark.parametrize(("body", "reason"), [
    ({"title": "[Triggered] X"}, "no 'transition'"),
    ({"title": "$ALERT_TITLE", "transition": "Triggered"}, r"unfilled variable \$ALERT_TITLE"),
    ({"title": "[Triggered] X", "transition": "Triggered", "date": "yesterday"},
     "not an epoch time"),
    ({"title": "[Triggered] ", "transition": "Triggered"}, "names no monitor"),
])
def test_a_payload_that_is_not_the_template_is_refused_with_the_reason(
        body: dict[str, Any], reason: str) -> None:
    with pytest.raises(BadPayload, match=reason):
        datadog_rows(body, time.time())


# -- through the sink, judged ----------------------------------------------------------

def test_a_triggered_webhook_after_the_anchor_passes_and_fails_late(sink: Sink) -> None:
    name = f"High error rate {uuid.uuid4().hex[:8]}"
    anchor = time.time() - 3
    resp = post(sink, payload(name, at=anchor + 1))
    assert resp.status_code == 200 and resp.json() == {"stored": 1}
    check = {"signal": "notification", "alertname": name, "deadline_s": 10}
    r = judge_with(check, anchors=anchors(anchor), notifications=notifications(sink))
    assert r.status == "pass", r.message
    assert r.evidence["receiver"] == "datadog" and r.evidence["labels"]["host"] == "web-1"
    r = judge_with({**check, "deadline_s": 1}, anchors=anchors(anchor),
                   notifications=notifications(sink))
    assert r.status == "fail" and "arrived late" in r.message


def test_a_monitor_that_triggered_before_the_anchor_fails(sink: Sink) -> None:
    name = f"High error rate {uuid.uuid4().hex[:8]}"
    anchor = time.time() - 1
    post(sink, payload(name, at=anchor - 300))  # delivered now, triggered 5 minutes ago
    r = judge_with({"signal": "notification", "alertname": name, "deadline_s": 5},
                   anchors=anchors(anchor), notifications=notifications(sink))
    assert r.status == "fail" and "already firing before the fault" in r.message


def test_no_webhook_fails_and_a_warning_is_not_a_firing(sink: Sink) -> None:
    name = f"High error rate {uuid.uuid4().hex[:8]}"
    anchor = time.time() - 1
    assert post(sink, payload(name, "Warn")).json() == {"stored": 0}
    r = judge_with({"signal": "notification", "alertname": name, "deadline_s": 0.5},
                   anchors=anchors(anchor), notifications=notifications(sink))
    assert r.status == "fail" and f"no notification for {name}" in r.message


def test_a_recovered_webhook_resolves_the_alert_that_triggered_in_the_fault(sink: Sink) -> None:
    name = f"High error rate {uuid.uuid4().hex[:8]}"
    fault = time.time() - 2
    post(sink, payload(name, at=fault + 0.5))
    post(sink, payload(name, "Recovered"))
    r = judge_with({"signal": "notification", "alertname": name, "status": "resolved",
                    "anchor": "fault_end", "deadline_s": 10}, phase="recovery",
                   anchors=anchors(fault, fault_end=fault + 1),
                   notifications=notifications(sink))
    assert r.status == "pass", r.message


def test_an_unfilled_payload_is_answered_400_and_a_dead_sink_is_an_error(sink: Sink) -> None:
    resp = post(sink, {"title": "$ALERT_TITLE", "transition": "$ALERT_TRANSITION"})
    assert resp.status_code == 400 and "unfilled variable" in resp.json()["error"]
    r = judge_with({"signal": "notification", "alertname": "X", "deadline_s": 0.3},
                   anchors=anchors(time.time() - 1),
                   notifications=lambda http: SinkNotifications(
                       SinkClient("http://127.0.0.1:9", http)))
    assert r.status == "error"
