"""The demo page's frontend error, end to end: the demo's browser journey (real Chromium) clicks
the button that throws, the page's real @sentry/browser and posthog-js report it to the real
sink with the journey's trace id, and the demo gate's error_event check finds it; with the
no_frontend_error_reporting knob the SDKs drop the reports and the same check fails."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from gates.backends.sink import SinkClient, SinkErrors
from gates.context import Anchors
from probes.browser import run_browser
from probes.model import ProbeResult
from probes.spec import BrowserSettings, parse_journeys
from readygate.config import load_config
from tests.fixtures.demo_system import Demo, eventually, traceparent
from tests.gates.conftest import judge_with

ROOT = Path(__file__).resolve().parents[2]
JOURNEYS = ROOT / "demo" / "journeys.yaml"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs the chromium package"),
]


def frontend_journey(url: str, artifacts: Path) -> ProbeResult:
    spec = parse_journeys(JOURNEYS.read_text(), str(JOURNEYS)).browser_journeys["frontend"]
    return asyncio.run(run_browser("frontend", spec, url,
                                   BrowserSettings(artifacts_dir=str(artifacts))))


def demo_gate_check() -> dict[str, Any]:
    """The frontend check exactly as the demo gate (readygate.yaml) declares it."""
    gate = load_config(str(ROOT / "readygate.yaml")).gates["release"]
    check = next(c for c in gate.checks if c.signal == "error_event"
                 and getattr(c, "journey", None) == "frontend")
    return check.model_dump(exclude_none=True)


def judge_frontend(demo: Demo, probe: ProbeResult, *, deadline_s: float | None = None
                   ) -> Any:
    check = demo_gate_check()
    if deadline_s is not None:
        check["deadline_s"] = deadline_s
    return judge_with(check, phase="baseline", probes=[probe],
                      anchors=Anchors(phase_start={"baseline": probe.started_at - 0.1}),
                      errors=lambda http: SinkErrors(SinkClient(demo.sink_url, http)))


def test_the_page_renders_the_requests_trace_for_the_browser_sdks(demo: Demo) -> None:
    url = demo.web().url
    trace_id, _, header = traceparent()
    page = httpx.get(f"{url}/frontend", headers={"traceparent": header}, timeout=5.0)
    assert page.status_code == 200
    assert f"<meta name='sentry-trace' content='{trace_id}-" in page.text
    assert f"<meta name='traceparent' content='00-{trace_id}-" in page.text
    assert f"sentry-trace_id={trace_id}" in page.text and "id='throw-error'" in page.text
    settings = json.loads(page.text.split("type='application/json'>")[1].split("</script>")[0])
    assert settings["sentry_dsn"].endswith(demo.sink_url.split("//")[1] + "/3")
    assert settings["posthog_host"] == demo.sink_url and settings["drop_reports"] is False
    bundle = httpx.get(f"{url}/static/demo-frontend.js", timeout=5.0)
    assert bundle.content == (ROOT / "demo/frontend/dist/demo-frontend.js").read_bytes()


def test_the_frontend_error_reaches_the_sink_from_both_sdks_and_passes_the_demo_check(
        demo: Demo, tmp_path: Path) -> None:
    url = demo.web().url
    assert url is not None
    probe = frontend_journey(url, tmp_path)
    assert probe.success, probe.error

    def both() -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = demo.sink_get(
            "/api/errors", trace_id=probe.trace_id).json()["errors"]
        return rows if {r["service"] for r in rows} == {"web-frontend"} and len(rows) >= 2 \
            else None

    rows = eventually(both, timeout=10, what="the Sentry and the PostHog event")
    sentry = next(r["event"] for r in rows if r["event"].get("platform") == "javascript")
    posthog = next(r["event"] for r in rows if r["event"].get("event") == "$exception")
    assert sentry["contexts"]["trace"]["trace_id"] == probe.trace_id
    assert sentry["environment"] == "demo" and sentry["release"].startswith("readygate-demo@")
    assert sentry["exception"]["values"][-1]["type"] == "Error"
    assert posthog["properties"]["$trace_id"] == probe.trace_id
    assert posthog["properties"]["$exception_list"][0]["type"] == "Error"
    result = judge_frontend(demo, probe)
    assert result.status == "pass", result.message
    assert result.evidence["environment"] == "demo" and "release" in result.evidence
    assert list(tmp_path.iterdir()) == []  # the journey passed: no artifacts kept


def test_the_knob_that_drops_the_browser_reports_fails_the_demo_check(
        demo: Demo, tmp_path: Path) -> None:
    url = demo.web("no_frontend_error_reporting").url
    assert url is not None
    probe = frontend_journey(url, tmp_path)
    assert probe.success, probe.error  # the page still throws; only its reports are dropped
    result = judge_frontend(demo, probe, deadline_s=3)
    assert result.status == "fail", result.message
    assert "no error event" in result.message
    rows = demo.sink_get("/api/errors", trace_id=probe.trace_id).json()["errors"]
    assert rows == []
