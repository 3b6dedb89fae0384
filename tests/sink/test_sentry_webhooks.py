"""Sentry's alert webhooks into the real sink (``POST /webhooks/sentry``): metric alerts fire
and resolve, issue alerts (integration platform and the legacy WebHooks plugin) fire, other
Sentry webhooks store nothing, bodies that are not Sentry's are 400."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from sink.formats import BadPayload
from sink.hooks_sentry import sentry_rows
from tests.sink.conftest import Sink


def metric_alert(name: str, action: str, *, incident: str = "4") -> dict[str, Any]:
    """A metric alert webhook as Sentry's docs show it (Sentry-Hook-Resource: metric_alert)."""
    closed = "2026-01-01T10:07:00.000000Z" if action == "resolved" else None
    return {"action": action, "actor": {"id": "sentry", "name": "Sentry", "type": "application"},
            "data": {"description_text": "1000 events in the last 10 minutes\nFilter: level:error",
                     "description_title": f"{'Resolved' if action == 'resolved' else 'Critical'}:"
                                          f" {name}",
                     "metric_alert": {
                         "alert_rule": {"aggregate": "count()", "dataset": "events",
                                        "environment": "production", "id": "7", "name": name,
                                        "projects": ["web"], "query": "level:error",
                                        "time_window": 10, "triggers": []},
                         "date_closed": closed, "date_created": "2026-01-01T10:00:05.000000Z",
                         "date_detected": "2026-01-01T10:00:05.000000Z",
                         "date_started": "2026-01-01T10:00:00.000000Z", "id": incident,
                         "identifier": "1", "organization_id": "5", "projects": ["web"],
                         "status": 2 if action == "resolved" else 20, "title": name, "type": 2},
                     "web_url": "https://sentry.io/organizations/acme/alerts/1/"},
            "installation": {"uuid": "a8e5d37a-696c-4c54-adb5-b3f28d64c7de"}}


def issue_alert(rule: str) -> dict[str, Any]:
    """An issue alert webhook (Sentry-Hook-Resource: event_alert), trimmed."""
    return {"action": "triggered", "actor": {"id": "sentry", "name": "Sentry",
                                             "type": "application"},
            "data": {"event": {"event_id": "e4874d664c3540c1a32eab185f12c5ab",
                               "issue_id": "1117540176", "level": "error", "project": 1,
                               "datetime": "2026-01-01T10:00:01.677000Z",
                               "title": "ReferenceError: heck is not defined",
                               "release": "web@1.4.2",
                               "tags": [["environment", "production"], ["level", "error"]],
                               "web_url": "https://sentry.io/organizations/acme/issues/1117540176/"},
                     "triggered_rule": rule,
                     "issue_alert": {"title": rule, "settings": []}},
            "installation": {"uuid": "a8e5d37a-696c-4c54-adb5-b3f28d64c7de"}}


def legacy_plugin(rules: list[str]) -> dict[str, Any]:
    """The legacy WebHooks plugin's body of an issue alert rule."""
    return {"id": "541485531", "project": "web", "project_name": "web", "project_slug": "web",
            "culprit": "app.checkout in pay", "level": "error", "logger": None,
            "message": "ZeroDivisionError: division by zero", "triggering_rules": rules,
            "url": "https://sentry.io/acme/web/issues/541485531/",
            "event": {"event_id": "0476467adf8f499ea795a48fcc4bf290", "received": 1525248430,
                      "tags": [["environment", "staging"]]}}


def post(sink: Sink, body: object) -> Any:
    return sink.post("/webhooks/sentry", json.dumps(body).encode(),
                     {"Content-Type": "application/json",
                      "Sentry-Hook-Resource": "metric_alert"})


def test_a_metric_alert_fires_and_resolves_in_the_notifications_api(sink: Sink) -> None:
    name = f"Too many errors {secrets.token_hex(4)}"
    assert post(sink, metric_alert(name, "critical")).json() == {"stored": 1}
    assert post(sink, metric_alert(name, "resolved")).json() == {"stored": 1}
    rows = sink.rows("notifications", alertname=name)
    assert [r["status"] for r in rows] == ["firing", "resolved"]
    firing = rows[0]
    assert firing["receiver"] == "sentry" and firing["starts_at"].startswith("2026-01-01T10:00")
    assert firing["labels"]["severity"] == "critical"
    assert firing["labels"]["environment"] == "production"
    assert firing["labels"]["projects"] == "web" and firing["fingerprint"] == "sentry-incident-4"
    assert rows[1]["ends_at"].startswith("2026-01-01T10:07")


def test_an_issue_alert_fires_under_its_rule_name_with_release_and_environment(
        sink: Sink) -> None:
    rule = f"New checkout errors {secrets.token_hex(4)}"
    assert post(sink, issue_alert(rule)).json() == {"stored": 1}
    (row,) = sink.rows("notifications", alertname=rule)
    assert row["status"] == "firing" and row["fingerprint"] == "sentry-issue-1117540176"
    assert row["labels"]["environment"] == "production"
    assert row["labels"]["release"] == "web@1.4.2" and row["labels"]["level"] == "error"
    assert row["annotations"]["title"] == "ReferenceError: heck is not defined"


def test_the_legacy_webhooks_plugin_fires_one_row_per_triggering_rule(sink: Sink) -> None:
    rules = [f"rule-a-{secrets.token_hex(3)}", f"rule-b-{secrets.token_hex(3)}"]
    assert post(sink, legacy_plugin(rules)).json() == {"stored": 2}
    for rule in rules:
        (row,) = sink.rows("notifications", alertname=rule)
        assert row["labels"]["project"] == "web" and row["labels"]["environment"] == "staging"


def test_other_sentry_webhooks_are_accepted_and_store_nothing(sink: Sink) -> None:
    installation = {"action": "created", "data": {"installation": {"uuid": "x"}},
                    "installation": {"uuid": "x"}}
    assert post(sink, installation).json() == {"stored": 0}


@pytest.mark.parametrize("body, why", [
    ({"hello": "world"}, "not a Sentry webhook"),
    ({"action": "exploded", "data": {"metric_alert": {"alert_rule": {"name": "x"}}}},
     "action 'exploded'"),
    ({"action": "critical", "data": {"metric_alert": {"alert_rule": {}}}}, "names no alert rule"),
    ({"action": "triggered", "data": {"event": {}, "issue_alert": {}}}, "no triggered_rule"),
    ({"action": "critical", "data": {"metric_alert": "nope"}}, "must be an object"),
    ({"triggering_rules": "rule"}, "must be a list"),
])
def test_bodies_that_are_not_sentry_alerts_are_400_naming_why(sink: Sink, body: object,
                                                             why: str) -> None:
    resp = post(sink, body)
    assert resp.status_code == 400 and why in resp.json()["error"], resp.text
    with pytest.raises(BadPayload, match=why):
        sentry_rows(body, 0.0)  # type: ignore[arg-type]
