"""The exporter's metric names, and that the Grafana dashboard queries only names it exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from probes.journeys import Journey
from probes.metrics import ProbeMetrics
from probes.model import ProbeResult, StepResult
from probes.spec import HttpJourney, Step

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "readygate-probes.json"


def exported() -> str:
    journey = Journey("login", HttpJourney(steps=[Step(name="login", url="/")]),
                      "https://web.test")
    metrics = ProbeMetrics([journey], "ci")
    step = StepResult("login", "POST", "https://web.test/api/login", 200, 0.02, "rg-1", True,
                      attempts=2, phases={"connect": 0.001, "tls": 0.004, "processing": 0.01,
                                          "transfer": 0.001}, ttfb_s=0.016,
                      tls_cert_expiry=2_000_000_000.0)
    metrics.observe(ProbeResult("login", 1.0, 0.02, True, "a" * 32, (step,),
                                target="https://web.test",
                                web_vitals={"/login": {"lcp": 0.1, "fcp": 0.1, "cls": 0.0,
                                                       "ttfb": 0.01}}))
    metrics.started("login", 10.0, 10.002)
    return metrics.render().decode()


def test_blackbox_names_and_readygate_series_are_exported() -> None:
    text = exported()
    for line in ('probe_success{journey="login"} 1.0',
                 'probe_http_status_code{journey="login"} 200.0',
                 'probe_http_ssl{journey="login"} 1.0',
                 'probe_ssl_earliest_cert_expiry{journey="login"} 2e+09',
                 'probe_http_duration_seconds{journey="login",phase="tls"} 0.004',
                 'readygate_step_attempts{journey="login",step="login"} 2.0',
                 'readygate_journey_retried{journey="login"} 1.0',
                 'readygate_journey_retried_runs_total{journey="login"} 1.0',
                 'readygate_browser_web_vital{journey="login",metric="lcp",page="/login"} 0.1',
                 'readygate_probe_info{journey="login",kind="http",location="ci",step="login",'
                 'target="https://web.test"} 1.0'):
        assert line in text, line


def test_the_dashboard_queries_only_exported_metrics() -> None:
    text = exported()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
             if line and not line.startswith("#")}
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b((?:probe|readygate)_[a-z_]+)", e)}
    assert used and used <= names, used - names
