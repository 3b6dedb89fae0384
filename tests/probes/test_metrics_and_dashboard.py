"""The exporter's metric names, and that the Grafana dashboard queries only names it exports.

The names come from real output: a journey's result rendered by ``ProbeMetrics``, and
blackbox modules run by ``probes.blackbox`` against local https and DNS servers (and
127.0.0.1 by ICMP where this process may open raw or ping sockets).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from pathlib import Path
from typing import Any

from probes.blackbox.config import parse_blackbox
from probes.blackbox.icmp import icmp_problem
from probes.blackbox.run import BlackboxModules
from probes.journeys import Journey
from probes.metrics import ProbeMetrics
from probes.model import HttpFacts, ProbeResult, StepResult, TlsFacts
from probes.spec import HttpJourney, Step
from tests.fixtures.tls import https_server, make_pki
from tests.probes.test_blackbox_parity import _dns_server

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "readygate-probes.json"


def exported() -> str:
    journey = Journey("login", HttpJourney(steps=[Step(name="login", url="/")]),
                      "https://web.test")
    metrics = ProbeMetrics([journey], "ci")
    step = StepResult("login", "POST", "https://web.test/api/login", 200, 0.02, "rg-1", True,
                      attempts=2, phases={"resolve": 0.0, "connect": 0.001, "tls": 0.004,
                                          "processing": 0.01, "transfer": 0.001}, ttfb_s=0.016,
                      tls_cert_expiry=2_000_000_000.0,
                      http=HttpFacts(version=1.1, content_length=12, body_length=12,
                                     redirects=1, last_modified=1_445_412_480.0,
                                     ip="10.0.0.7", resolve_s=0.0002, tls=TlsFacts(
                                         "TLS 1.3", 2e9, 2e9, "ab" * 32, "CN=web.test",
                                         "CN=ca", "web.test")))
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


def test_journeys_answer_blackbox_http_series() -> None:
    text = exported()
    for line in ('probe_http_version{journey="login"} 1.1',
                 'probe_http_redirects{journey="login"} 1.0',
                 'probe_http_last_modified_timestamp_seconds{journey="login"} 1.44541248e+09',
                 'probe_ip_protocol{journey="login"} 4.0',
                 'probe_dns_lookup_time_seconds{journey="login"} 0.0002',
                 'probe_tls_version_info{journey="login",version="TLS 1.3"} 1.0',
                 'probe_http_duration_seconds{journey="login",phase="resolve"} 0.0'):
        assert line in text, line


ICMP = icmp_problem() is None


def blackbox_exported(tmp: Path) -> str:
    """What blackbox modules answer: https with a CA, tcp with TLS, dns, icmp if allowed."""
    pki = make_pki(tmp)
    stop = threading.Event()
    dns_port, dns_thread = _dns_server(stop)
    modules = BlackboxModules(parse_blackbox(f"""
modules:
  https: {{prober: http, http: {{tls_config: {{ca_file: "{pki.ca}"}}}}}}
  tls: {{prober: tcp, tcp: {{tls: true, tls_config: {{ca_file: "{pki.ca}"}}}}}}
  soa: {{prober: dns, dns: {{query_name: example.test, query_type: SOA}}}}
  ping: {{prober: icmp}}
"""))
    try:
        with https_server(pki) as (url, _):
            async def run() -> str:
                texts = [await modules.run("https", url + "/", 5),
                         await modules.run("tls", url.removeprefix("https://"), 5),
                         await modules.run("soa", f"127.0.0.1:{dns_port}", 5)]
                if ICMP:
                    texts.append(await modules.run("ping", "127.0.0.1", 5))
                return "".join(texts)
            return asyncio.run(run())
    finally:
        stop.set()
        dns_thread.join(5)


def test_the_dashboard_queries_only_exported_metrics(tmp_path: Path) -> None:
    text = exported() + blackbox_exported(tmp_path)
    assert text.count("\nprobe_success 1\n") == (4 if ICMP else 3), text
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
             if line and not line.startswith("#")}
    used = queried(json.loads(DASHBOARD.read_text()))
    if not ICMP:  # cannot be produced here; checked wherever ICMP is allowed
        used -= {"probe_icmp_duration_seconds", "probe_icmp_reply_hop_limit"}
    assert used and used <= names, used - names
    for new in ("probe_http_version", "probe_ssl_last_chain_info", "probe_dns_serial",
                "probe_failed_due_to_regex", "probe_ip_addr_hash"):
        assert new in used, f"the dashboard does not show {new}"


def queried(dashboard: dict[str, Any]) -> set[str]:
    """Every probe_* / readygate_* name the dashboard's queries use."""
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return {m for e in exprs for m in re.findall(r"\b((?:probe|readygate)_[a-z_]+)", e)}


def test_a_dashboard_query_of_a_series_nobody_exports_is_caught() -> None:
    names = {line.split("{")[0].split(" ")[0] for line in exported().splitlines()
             if line and not line.startswith("#")}
    typo = {"panels": [{"targets": [{"expr": "probe_http_duration_second{phase='tls'}"}]}]}
    assert queried(typo) - names == {"probe_http_duration_second"}
