"""The drill timeline: milestones read off events, and the watcher that produces them."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from core.events import (
    AlertObserved,
    Event,
    FaultInjected,
    FaultRemoved,
    LoadStats,
    NotificationObserved,
    PhaseStarted,
    ProbeFinished,
)
from core.times import rfc3339_seconds as parse_rfc3339
from gates.backends.prometheus import PrometheusClient
from gates.backends.sink import SinkClient
from probes.model import ProbeResult
from scenarios.drill import drill_summary, load_by_phase, render_drill
from scenarios.watcher import AlertWatcher

T0 = 1_700_000_000.0


def probe(journey: str, started: float, ok: bool) -> ProbeFinished:
    result = ProbeResult(journey=journey, started_at=started, duration_s=0.1, success=ok,
                         trace_id="0" * 31 + "1", error=None if ok else "HTTP 502")
    return ProbeFinished(started + 0.1, result)


def incident() -> list[Event]:
    return [
        PhaseStarted(T0 - 5, "baseline"),
        probe("upload", T0 - 1, True),
        FaultInjected(T0, "f-1", "storage", "http_error", {}, T0 + 90),
        PhaseStarted(T0, "fault"),
        probe("upload", T0 + 0.2, False),
        AlertObserved(T0 + 1.0, "SlowRequests", "pending", {}, T0 + 1.2),
        AlertObserved(T0 + 3.0, "SlowRequests", "firing", {}, T0 + 3.1),
        NotificationObserved(T0 + 3.4, "SlowRequests", "firing", "sink"),
        FaultRemoved(T0 + 3.5, "f-1", "storage", "rollback"),
        PhaseStarted(T0 + 3.5, "recovery"),
        probe("upload", T0 + 3.4, False),   # started before the rollback: does not count
        probe("upload", T0 + 3.7, True),
        probe("health", T0 + 3.8, True),
        AlertObserved(T0 + 9.5, "SlowRequests", "resolved", {}, T0 + 9.5),
        NotificationObserved(T0 + 9.6, "SlowRequests", "resolved", "sink"),
    ]


def test_the_drill_measures_detect_notify_and_recover_from_the_fault() -> None:
    drill = drill_summary(incident(), alertname="SlowRequests", journeys=["upload", "health"])
    assert drill["time_to_first_failed_probe_s"] == 0.3
    assert drill["time_to_pending_s"] == 1.0
    assert drill["time_to_detect_s"] == 3.0
    assert drill["time_to_notify_s"] == 3.4
    assert drill["fault_duration_s"] == 3.5
    assert drill["time_to_resolve_s"] == 6.0
    assert drill["time_to_resolved_notification_s"] == pytest.approx(6.1)
    # recovered = probes back (3.9) and the alert resolved (9.5), whichever is later
    assert drill["time_to_recover_s"] == 6.0
    names = [m["name"] for m in drill["milestones"]]
    assert names[:6] == ["fault_injected", "first_failed_probe", "alert_pending",
                         "alert_firing", "notification_received", "rollback"]
    assert all(m["at"] is not None for m in drill["milestones"])


def test_a_latency_fault_recovers_by_the_journeys_that_ran_while_it_held() -> None:
    """No probe failed (latency): the journeys that met the fault must succeed again; a
    slow browser journey that never ran during it has nothing to recover from (it left the
    drill without a time to recover when the drill ended before its next run)."""
    events = [
        PhaseStarted(T0 - 5, "baseline"),
        probe("frontend", T0 - 4, True),
        FaultInjected(T0, "f-1", "storage", "latency", {}, T0 + 90),
        PhaseStarted(T0, "fault"),
        probe("upload", T0 + 0.5, True),   # slow, but no failure
        AlertObserved(T0 + 3.0, "SlowRequests", "firing", {}, T0 + 3.1),
        FaultRemoved(T0 + 3.5, "f-1", "storage", "rollback"),
        PhaseStarted(T0 + 3.5, "recovery"),
        probe("upload", T0 + 3.7, True),
        AlertObserved(T0 + 6.5, "SlowRequests", "resolved", {}, T0 + 6.5),
    ]
    drill = drill_summary(events, alertname="SlowRequests", journeys=["upload", "frontend"])
    assert drill["time_to_first_failed_probe_s"] is None
    assert drill["time_to_recover_s"] == 3.0  # the alert resolved last (probes back at 0.3)
    # a journey that met the fault and has not succeeded since: not recovered
    drill = drill_summary([*events[:-2], events[-1]], alertname="SlowRequests",
                          journeys=["upload", "frontend"])
    assert drill["time_to_recover_s"] is None
    notes = {m["name"]: m.get("note") for m in drill["milestones"]}
    assert notes["probes_recovered"] == "upload probes did not succeed again"


def test_a_journey_failing_before_the_fault_has_nothing_to_recover_from() -> None:
    """A journey broken all along (a defect, not the fault) must not hold the recovery
    phase open nor leave the drill without a time to recover."""
    events = [
        PhaseStarted(T0 - 5, "baseline"),
        probe("login", T0 - 2, False),
        probe("upload", T0 - 1, True),
        FaultInjected(T0, "f-1", "storage", "http_error", {}, T0 + 90),
        probe("upload", T0 + 0.2, False),
        probe("login", T0 + 0.3, False),
        FaultRemoved(T0 + 3.5, "f-1", "storage", "rollback"),
        probe("upload", T0 + 3.7, True),
        probe("login", T0 + 3.8, False),
    ]
    drill = drill_summary(events, alertname=None, journeys=["login", "upload"])
    assert drill["time_to_recover_s"] == pytest.approx(0.3)  # upload back at T0 + 3.8
    # every journey was failing before the fault: recovery cannot be measured, and says why
    drill = drill_summary([e for e in events if not isinstance(e, ProbeFinished)
                           or e.result.journey == "login"], alertname=None,
                          journeys=["login"])
    assert drill["time_to_recover_s"] is None
    notes = {m["name"]: m.get("note") for m in drill["milestones"]}
    assert notes["probes_recovered"] == "every journey was failing before the fault"


def test_a_missing_alert_is_not_observed_never_guessed() -> None:
    events = [e for e in incident() if not isinstance(e, AlertObserved | NotificationObserved)]
    drill = drill_summary(events, alertname="HighErrorRate", journeys=["upload"])
    assert drill["time_to_detect_s"] is None and drill["time_to_notify_s"] is None
    firing = next(m for m in drill["milestones"] if m["name"] == "alert_firing")
    assert firing == {"name": "alert_firing", "at": None, "after_fault_s": None,
                      "note": "not observed"}
    # without an alert, recovery is the probes coming back (the first run after the rollback)
    assert drill["time_to_recover_s"] == pytest.approx(0.3)
    assert "time to detect n/a" in render_drill(drill)


def test_a_rule_without_for_says_why_there_was_no_pending() -> None:
    events = [e for e in incident()
              if not (isinstance(e, AlertObserved) and e.state == "pending")]
    drill = drill_summary(events, alertname="SlowRequests", journeys=["upload"])
    pending = next(m for m in drill["milestones"] if m["name"] == "alert_pending")
    assert "straight to firing" in pending["note"]


def test_an_alert_that_fired_before_the_fault_is_not_the_detection() -> None:
    events = [AlertObserved(T0 - 2, "X", "firing", {}, T0 - 2), *incident()]
    drill = drill_summary(events, alertname="X", journeys=["upload"])
    assert drill["time_to_detect_s"] is None


def test_load_stats_are_summed_per_phase() -> None:
    events: list[Event] = [
        PhaseStarted(T0, "baseline"),
        LoadStats(T0 + 1, {"rps": 20.0, "failures": 0, "p95_ms": 12.0}),
        PhaseStarted(T0 + 2, "fault"),
        LoadStats(T0 + 3, {"rps": 25.0, "failures": 7, "p95_ms": 30.0}),
        LoadStats(T0 + 4, {"rps": 22.0, "failures": 12, "p95_ms": 80.0}),
        LoadStats(T0 + 5, {"rps": 1.0, "failures": 12, "p95_ms": 1.0}, final=True),
    ]
    by = load_by_phase(events)
    assert by["baseline"] == {"samples": 1, "max_rps": 20.0, "failures": 0, "max_p95_ms": 12.0}
    assert by["fault"] == {"samples": 2, "max_rps": 25.0, "failures": 12, "max_p95_ms": 80.0}


def test_rfc3339_with_nanoseconds_parses_to_unix_seconds() -> None:
    assert parse_rfc3339("2023-11-14T22:13:20.123456789Z") == pytest.approx(T0 + 0.123456)
    assert parse_rfc3339("garbage") is None and parse_rfc3339(None) is None


class FakeBackends:
    """Prometheus alerts/rules and sink notifications, changed by the test between polls."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.notifications: list[dict[str, Any]] = []
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(503, text="down")
        if request.url.path == "/api/v1/rules":
            rule = {"type": "alerting", "name": "SlowRequests", "duration": 2}
            return httpx.Response(200, json={"status": "success",
                                             "data": {"groups": [{"rules": [rule]}]}})
        if request.url.path == "/api/v1/alerts":
            return httpx.Response(200, json={"status": "success",
                                             "data": {"alerts": self.alerts}})
        if request.url.path == "/api/notifications":
            return httpx.Response(200, content=json.dumps({"notifications":
                                                           self.notifications}))
        return httpx.Response(404)


@pytest.mark.anyio
async def test_the_watcher_emits_state_changes_at_source_times() -> None:
    fake = FakeBackends()
    events: list[Event] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
        watcher = AlertWatcher(events.append, alertname="SlowRequests",
                               labels={"service": "web"},
                               prometheus=PrometheusClient("http://prom", client),
                               sink=SinkClient("http://sink", client), since=T0)
        await watcher._rule_duration()
        assert watcher.for_s == 2
        labels = {"alertname": "SlowRequests", "service": "web"}
        other = {"alertname": "SlowRequests", "service": "storage"}
        fake.alerts = [{"labels": other, "state": "firing", "activeAt": "2023-11-14T22:13:00Z"}]
        await watcher.poll_once()
        assert events == []  # other labels: not this drill's alert
        fake.alerts = [{"labels": labels, "state": "pending",
                        "activeAt": "2023-11-14T22:13:21Z"}]
        await watcher.poll_once()
        fake.alerts[0]["state"] = "firing"
        fake.notifications = [
            {"received_at": T0 - 50, "status": "firing", "labels": labels},  # before the run
            {"received_at": T0 + 3.5, "status": "firing", "labels": labels,
             "fingerprint": "a"}]
        await watcher.poll_once()
        await watcher.poll_once()  # no change: no new events, the notification only once
        fake.down = True
        await watcher.poll_once()  # could not look: counted, not fatal
        fake.down = False
        fake.alerts = []
        await watcher.poll_once()
    kinds = [(type(e).__name__, getattr(e, "state", getattr(e, "status", None)))
             for e in events]
    assert kinds == [("AlertObserved", "pending"), ("AlertObserved", "firing"),
                     ("NotificationObserved", "firing"), ("AlertObserved", "resolved")]
    pending, firing, note = events[0], events[1], events[2]
    assert pending.at == T0 + 1.0            # Prometheus' activeAt
    assert firing.at == T0 + 3.0             # activeAt + for
    assert note.at == T0 + 3.5               # arrival at the sink
    assert "prometheus" in watcher.errors


def test_the_printout_lists_milestones_as_they_happened_then_the_missing_ones() -> None:
    # the resolved notification may come before Prometheus reports the alert resolved, and
    # the probes recover long before either: the printout follows the clock
    events = [e for e in incident() if not (isinstance(e, ProbeFinished) and
                                            not e.result.success)]
    drill = drill_summary(events, alertname="SlowRequests", journeys=["upload"])
    lines = render_drill(drill).splitlines()[1:]
    shown = [line for line in lines if line.strip().startswith(("+", "-", "—"))]
    offsets = [float(line.split()[0].rstrip("s")) for line in shown if "—" not in line]
    assert offsets == sorted(offsets) and len(offsets) >= 5
    assert "first failed probe" in shown[-1] and "—" in shown[-1]
    assert [m["name"] for m in drill["milestones"]][:2] == ["fault_injected",
                                                            "first_failed_probe"]
