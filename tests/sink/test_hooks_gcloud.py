"""Cloud Monitoring webhook notifications (schema version 1.2) into the sink: the parser,
and ``POST /webhooks/gcloud`` on a real sink app read back through ``/api/notifications``
and a ``kind: sink`` notification check."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gates.backends.sink import SinkClient, SinkNotifications
from gates.context import Anchors
from sink.formats import BadPayload
from sink.hooks_gcloud import incident_rows
from sink.server import create_app
from sink.store import SinkDB
from tests.fakes.gcloud import POLICY, incident
from tests.fakes.server import serve
from tests.gates.conftest import judge_with


def test_an_open_incident_is_a_firing_row_named_after_its_policy() -> None:
    started = 1_700_000_000
    [row] = incident_rows(incident(started=started), 1_700_000_030.5)
    assert row["alertname"] == POLICY and row["status"] == "firing"
    assert row["receiver"] == "gcloud" and row["fingerprint"] == "0.mtdi83m6w8ao"
    assert row["starts_at"] == "2023-11-14T22:13:20.000000Z" and row["ends_at"] is None
    assert row["labels"] == {"alertname": POLICY, "project_id": "acme-prod",
                             "service_name": "api", "code": "500", "team": "payments",
                             "tier": "1", "condition": "error ratio",
                             "resource_type": "cloud_run_revision",
                             "metric_type": "logging.googleapis.com/user/api_errors",
                             "severity": "Critical"}
    assert row["annotations"]["documentation"].startswith("Runbook:")


def test_a_closed_incident_is_resolved_with_its_end() -> None:
    [row] = incident_rows(incident("closed", started=1_700_000_000, ended=1_700_000_300), 1.0)
    assert row["status"] == "resolved" and row["ends_at"] == "2023-11-14T22:18:20.000000Z"


@pytest.mark.parametrize(("body", "why"), [
    ({"version": "1.2"}, "no incident object"),
    ({"incident": {"incident_id": "1", "state": "open"}}, "no policy_name"),
    ({"incident": {"policy_name": "p", "state": "open"}}, "no incident_id"),
    ({"incident": {"policy_name": "p", "incident_id": "1", "state": "weird"}}, "not open or"),
    ({"incident": {"policy_name": "p", "incident_id": "1", "state": "open",
                   "started_at": "yesterday"}}, "not a time"),
    ({"incident": {"policy_name": "p", "incident_id": "1", "state": "open",
                   "resource": {"labels": ["x"]}}}, "resource.labels must be an object"),
])
def test_a_malformed_incident_is_refused(body: dict[str, Any], why: str) -> None:
    with pytest.raises(BadPayload, match=why):
        incident_rows(body, 1.0)


def test_the_sink_stores_the_webhook_and_a_notification_check_reads_it(tmp_path: Path) -> None:
    with serve(create_app(SinkDB(tmp_path / "sink.db"))) as url:
        anchor = time.time()
        resp = httpx.post(f"{url}/webhooks/gcloud", json=incident(started=anchor + 1))
        assert resp.status_code == 200 and resp.json() == {"stored": 1}
        bad = httpx.post(f"{url}/webhooks/gcloud", json={"incident": {"state": "open"}})
        assert bad.status_code == 400
        rows = httpx.get(f"{url}/api/notifications", params={"receiver": "gcloud"}).json()
        assert [r["alertname"] for r in rows["notifications"]] == [POLICY]
        r = judge_with({"signal": "notification", "alertname": POLICY,
                        "labels": {"service_name": "api"}, "deadline_s": 3},
                       anchors=Anchors(phase_start={"fault": anchor - 1}, fault_start=anchor),
                       notifications=lambda http: SinkNotifications(SinkClient(url, http)))
        assert r.status == "pass", r.message
