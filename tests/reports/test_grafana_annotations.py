"""The run's timeline as Grafana annotations, written with the real grafana-client to a fake
Grafana: the fault window is a region, alerts, recoveries and notifications are points, the
verdict comes last, all tagged readygate / gate / run; a Grafana that is down or refuses is
a warning in the report and never changes the verdict."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.events import (
    AlertObserved,
    FaultInjected,
    FaultRemoved,
    NotificationObserved,
    PhaseStarted,
    RunStarted,
)
from gates.backends.grafana import grafana_api
from readygate.config import parse_config
from readygate.runner import RunOptions, run_gate
from reports.grafana import Annotation, TimelineAnnotations, publish, run_id
from reports.model import CheckResult, Report
from tests.fakes.grafana import FakeGrafana, Series, closed_url
from tests.fakes.server import serve

TOKEN = "glsa-annotations-token-0123"
T0 = 1_760_000_000.0  # 2025-10-09T08:53:20Z


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana(token=TOKEN)
    fake.dashboards["web-overview"] = {"uid": "web-overview", "title": "Web", "panels": []}
    fake.dashboards["slo"] = {"uid": "slo", "title": "SLO", "panels": []}
    with serve(fake.app()) as url:
        yield fake, url


def report(verdict: str = "not_ready") -> Report:
    checks = [CheckResult("alert fires", "alert", "pass", "ok"),
              CheckResult("notified", "notification", "fail", "no notification")]
    return Report(gate="release", target="shop", started_at=T0, finished_at=T0 + 60,
                  verdict=verdict, checks=checks)  # type: ignore[arg-type]


def timeline(tags: list[str] | None = None) -> TimelineAnnotations:
    listener = TimelineAnnotations(tags)
    for event in (
            RunStarted(T0, "release", "shop"), PhaseStarted(T0 + 1, "baseline"),
            FaultInjected(T0 + 10, "f1", "storage", "error", {"status": 503}, T0 + 300),
            AlertObserved(T0 + 14, "HighErrorRate", "pending", {"service": "web"}, T0 + 14),
            AlertObserved(T0 + 16, "HighErrorRate", "firing", {"service": "web"}, T0 + 16),
            NotificationObserved(T0 + 18, "HighErrorRate", "firing", "ops-slack"),
            FaultRemoved(T0 + 30, "f1", "storage", "rollback"),
            AlertObserved(T0 + 45, "HighErrorRate", "resolved", {"service": "web"}, T0 + 45)):
        listener(event)
    return listener


def test_the_timeline_becomes_a_fault_region_alert_notification_recovery_and_verdict() -> None:
    anns = timeline(["team:web"]).annotations(report())
    base = ("readygate", "gate:release", "run:release-20251009T085320Z", "team:web")
    assert anns == [
        Annotation(T0 + 10, "readygate fault: error on storage (removed: rollback)",
                   (*base, "fault"), time_end=T0 + 30),
        Annotation(T0 + 16, "alert HighErrorRate{service=web} firing", (*base, "alert")),
        Annotation(T0 + 18, "notified: HighErrorRate firing via ops-slack",
                   (*base, "notification")),
        Annotation(T0 + 45, "alert HighErrorRate{service=web} resolved", (*base, "recovered")),
        Annotation(T0 + 60, "readygate release on shop: NOT READY · 1 passed, 1 failed, "
                   "0 errors", (*base, "verdict", "verdict:not_ready")),
    ]
    assert run_id("release", T0) == "release-20251009T085320Z"


def test_a_fault_never_removed_ends_at_its_ttl_or_the_run_end() -> None:
    listener = TimelineAnnotations()
    listener(RunStarted(T0, "release", "shop"))
    listener(FaultInjected(T0 + 10, "f1", "storage", "latency", {}, T0 + 20))
    (fault, _) = listener.annotations(report())
    assert fault.time_end == T0 + 20 and "never removed by readygate" in fault.text


def test_publish_writes_every_annotation_on_every_dashboard_in_grafanas_format(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    anns = timeline().annotations(report())
    warnings = publish(grafana_api(url, token=TOKEN), anns, ["web-overview", "slo"])
    assert warnings == []
    assert len(fake.written) == 2 * len(anns)
    region = fake.written[0]
    assert (region["dashboardUID"], region["time"], region["timeEnd"]) == (
        "web-overview", int((T0 + 10) * 1000), int((T0 + 30) * 1000))
    assert "gate:release" in region["tags"] and "fault" in region["tags"]
    assert {w["dashboardUID"] for w in fake.written} == {"web-overview", "slo"}


def test_without_dashboards_the_annotations_are_the_organizations(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    assert publish(grafana_api(url, token=TOKEN), timeline().annotations(report()), []) == []
    assert fake.written and all("dashboardUID" not in w for w in fake.written)


def test_grafana_refusing_failing_or_down_is_one_warning_per_dashboard_never_a_raise(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    anns = timeline().annotations(report())
    (refused,) = publish(grafana_api(url, token="glsa-wrong-token-000"), anns, ["slo"])
    assert f"{len(anns)} of {len(anns)} not written on dashboard slo: grafana answered 401" \
        in refused
    (missing,) = publish(grafana_api(url, token=TOKEN), anns, ["deleted"])
    assert "Dashboard not found" in missing
    fake.fail_writes = True
    assert "Failed to save annotation" in publish(grafana_api(url, token=TOKEN), anns, [])[0]
    down = publish(grafana_api(closed_url(), token=TOKEN, timeout_s=1), anns, ["a", "b"])
    assert len(down) == 2 and all("ConnectionError" in w for w in down)
    assert TOKEN not in " ".join(down)


def gate_config(grafana_url: str, annotations_url: str) -> str:
    return f"""version: 1
backends:
  dashboards: {{kind: grafana, url: "{grafana_url}", token: "{TOKEN}"}}
reports:
  grafana_annotations:
    url: "{annotations_url}"
    token: "{TOKEN}"
    dashboard_uids: [web-overview]
    tags: [env:staging]
gates:
  dashboards:
    scenario:
      probes: false
      baseline: {{min_duration_s: 0, max_duration_s: 10}}
    checks:
      - {{signal: dashboard, dashboards: [web-overview], deadline_s: 3}}
"""


def run(config_text: str, tmp_path: Path) -> Report:
    config = parse_config(config_text, str(tmp_path / "readygate.yaml"))
    options = RunOptions(out_dir=tmp_path / "out", stdout=io.StringIO(), stderr=io.StringIO())
    return asyncio.run(run_gate(config, "dashboards", options))


def test_a_run_annotates_its_dashboards_and_a_dead_grafana_only_warns(
        grafana: tuple[FakeGrafana, str], tmp_path: Path) -> None:
    fake, url = grafana
    fake.datasource("prom1", "Prometheus", default=True)
    fake.dashboards["web-overview"]["panels"] = [
        {"type": "stat", "title": "Up", "id": 1, "targets": [{"refId": "A", "expr": "up"}]}]
    fake.series["up"] = Series(rows=1)
    ok = run(gate_config(url, url), tmp_path)
    assert ok.verdict == "ready", [c.message for c in ok.checks]
    (verdict,) = [w for w in fake.written if "verdict" in w["tags"]]
    assert verdict["dashboardUID"] == "web-overview" and "READY" in verdict["text"]
    assert {"readygate", "gate:dashboards", "env:staging", "verdict:ready"} <= set(
        verdict["tags"])
    assert any(t.startswith("run:dashboards-") for t in verdict["tags"])
    dead = run(gate_config(url, closed_url()), tmp_path)
    assert dead.verdict == "ready"
    notes = [e for e in dead.timeline if e["type"] == "Note" and e["level"] == "warning"]
    assert any("grafana annotations: 1 of 1 not written on dashboard web-overview" in n[
        "message"] for n in notes), notes
