"""Traces in the run's own (stopping) stores are saved beside the report, secrets scrubbed;
a trace the store cannot give keeps its link. A real HTTP server answering like the sink."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from core import redact
from readygate.runner import keep_traces
from reports.model import CheckResult, Report
from tests.fakes.server import serve

SECRET = "hunter2-trace-secret"
KNOWN, GONE = "a" * 32, "b" * 32


def check(name: str, link: str | None) -> CheckResult:
    return CheckResult(name=name, signal="trace", status="pass", message="ok",
                       evidence={"trace_id": KNOWN, **({"link": link} if link else {})})


def test_linked_traces_are_saved_scrubbed_and_relinked(tmp_path: Path) -> None:
    async def trace(request: Request) -> Any:
        if request.path_params["trace_id"] != KNOWN:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse({"spans": [{"name": "POST /login", "service": "web",
                                        "attributes": {"password": SECRET}}]})

    app = Starlette(routes=[Route("/api/traces/{trace_id}", trace)])
    redact.register(SECRET)
    with serve(app) as url:
        prefix = f"{url}/api/traces/"
        checks = [check("known", prefix + KNOWN), check("gone", prefix + GONE),
                  check("elsewhere", f"https://jaeger.example/trace/{KNOWN}"),
                  check("none", None), check("not an id", prefix + "../../etc/passwd")]
        report = Report(gate="g", target="t", started_at=0.0, finished_at=1.0,
                        verdict="ready", checks=checks)
        asyncio.run(keep_traces(report, {prefix: prefix}, tmp_path))
    links = {c.name: c.evidence.get("link") for c in report.checks}
    assert links == {"known": f"traces/{KNOWN}.json", "gone": prefix + GONE,
                     "elsewhere": f"https://jaeger.example/trace/{KNOWN}", "none": None,
                     "not an id": prefix + "../../etc/passwd"}
    saved = (tmp_path / "traces" / f"{KNOWN}.json").read_text()
    assert json.loads(saved)["spans"][0]["name"] == "POST /login"
    assert SECRET not in saved
    assert [p.name for p in (tmp_path / "traces").iterdir()] == [f"{KNOWN}.json"]


def test_links_into_components_that_stop_with_the_run_are_kept_as_text(tmp_path: Path) -> None:
    prometheus, am = "http://127.0.0.1:41000", "http://127.0.0.1:41001"
    checks = [CheckResult(name=n, signal="alert", status="pass", message="ok",
                          evidence={"alert": "A", "link": link})
              for n, link in (("prom", f"{prometheus}/alerts"), ("am", f"{am}/#/alerts"),
                              ("near", "http://127.0.0.1:410001/alerts"),  # another port
                              ("kept", "https://grafana.example/alerting/list"))]
    report = Report(gate="g", target="t", started_at=0.0, finished_at=1.0, verdict="ready",
                    checks=checks)
    asyncio.run(keep_traces(report, {}, tmp_path, stopped=[prometheus, am + "/", None]))
    by_name = {c.name: c.evidence for c in report.checks}
    assert by_name["prom"] == {"alert": "A", "link_at_run": f"{prometheus}/alerts"}
    assert by_name["am"] == {"alert": "A", "link_at_run": f"{am}/#/alerts"}
    assert by_name["near"]["link"] == "http://127.0.0.1:410001/alerts"
    assert by_name["kept"]["link"] == "https://grafana.example/alerting/list"
    assert not (tmp_path / "traces").exists()
