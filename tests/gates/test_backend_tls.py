"""Backends and raw /metrics scrapes over HTTPS with a private CA, client certificates and
basic auth: without the options readygate could not look (never a pass); with them it looks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import core.http
from core.errors import BackendError
from gates.backends.registry import build_all
from gates.backends.scrape import ScrapeClient
from gates.checks import judge
from gates.context import Anchors
from readygate.config import parse_config
from readygate.runner import build_context
from reports.model import CheckResult
from tests.fixtures.tls import Pki, https_server, make_pki
from tests.gates.conftest import CHECK

ROOT = Path(__file__).resolve().parents[2]
METRIC = {"signal": "metric", "query": "up", "phase": "baseline", "deadline_s": 0.3}
CONTRACT = {"signal": "metric_contract", "metrics": {"demo_requests_total": ["route"]},
            "deadline_s": 0.3}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls(pki: Pki) -> Iterator[str]:
    """A Prometheus-like HTTPS server that requires a client certificate from the CA."""
    with https_server(pki, require_client_cert=True) as (url, _):
        yield url


@pytest.fixture(scope="module")
def basic(pki: Pki) -> Iterator[str]:
    """An HTTPS /metrics page behind basic auth (scraper / scrape-pass-42)."""
    with https_server(pki, basic_auth=("scraper", "scrape-pass-42")) as (url, _):
        yield url


def judge_with(config_yaml: str, spec: dict[str, Any]) -> CheckResult:
    """Judge ``spec`` with the backends the runner builds from ``config_yaml``."""
    config = parse_config(config_yaml, "r.yaml")

    async def go() -> CheckResult:
        async with httpx.AsyncClient(**core.http.client_kwargs(None, name="t")) as client:
            ctx = build_context(config, client, 0.1)
            ctx.anchors = Anchors(phase_start={"baseline": time.time()})
            try:
                return await judge(CHECK.validate_python(spec), ctx, "baseline")
            finally:
                await ctx.aclose()
    return asyncio.run(go())


def prometheus(url: str, tls: str = "") -> str:
    return f"backends:\n  prometheus:\n    url: '{url}'\n" + (f"    tls: {tls}\n" if tls else "")


# -- backends -------------------------------------------------------------------------

def test_prometheus_behind_mtls_is_could_not_look_without_the_options(pki: Pki,
                                                                       mtls: str) -> None:
    r = judge_with(prometheus(mtls), METRIC)
    assert r.status == "error", r.message
    assert r.message.startswith("could not ")
    assert (f"prometheus unreachable at {mtls}: ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED]"
            in r.message)
    assert "set tls.ca_file" in r.message
    # the right CA but no client certificate: the server refuses, still no verdict
    r = judge_with(prometheus(mtls, f"{{ca_file: '{pki.ca}'}}"), METRIC)
    assert r.status == "error" and f"prometheus unreachable at {mtls}" in r.message, r.message
    # trusting some other CA is no better
    r = judge_with(prometheus(mtls, f"{{ca_file: '{pki.other_ca}'}}"), METRIC)
    assert r.status == "error" and "CERTIFICATE_VERIFY_FAILED" in r.message


def test_a_refused_client_certificate_is_a_backend_error_every_time(pki: Pki,
                                                                    mtls: str) -> None:
    """The server's alert comes out as httpx.ReadError or as a raw ssl.SSLError (anyio lets
    it past httpx's mapping): both are could-not-look, never a crash of the check."""
    config = parse_config(prometheus(mtls, f"{{ca_file: '{pki.ca}'}}"), "r.yaml")

    async def go() -> list[str]:
        async with httpx.AsyncClient(trust_env=False) as shared:
            b = build_all(config.backends, shared)
            assert b.prometheus is not None
            errors = []
            for _ in range(20):
                with pytest.raises(BackendError) as err:
                    await b.prometheus.query("up")
                errors.append(str(err.value))
            await b.aclose()
            return errors
    errors = asyncio.run(go())
    assert all(e.startswith(f"prometheus unreachable at {mtls}: ") for e in errors), errors


def test_prometheus_behind_mtls_answers_with_ca_and_client_certificate(pki: Pki,
                                                                       mtls: str) -> None:
    tls = (f"{{ca_file: '{pki.ca}', cert_file: '{pki.client_cert}', "
           f"key_file: '{pki.client_key}'}}")
    r = judge_with(prometheus(mtls, tls), METRIC)
    assert r.status == "pass", r.message
    # the same server by another name: server_name sets SNI and the name checked
    r = judge_with(prometheus(mtls, tls[:-1] + ", server_name: internal.test}"), METRIC)
    assert r.status == "pass", r.message
    r = judge_with(prometheus(mtls, tls[:-1] + ", server_name: other.test}"), METRIC)
    assert r.status == "error" and "not valid for 'other.test'" in r.message


def test_skip_verify_looks_and_warns_once_naming_the_backend(
        pki: Pki, mtls: str, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core.http, "_warned", set())
    tls = (f"{{insecure_skip_verify: true, cert_file: '{pki.client_cert}', "
           f"key_file: '{pki.client_key}'}}")
    with caplog.at_level(logging.WARNING, "readygate.tls"):
        assert judge_with(prometheus(mtls, tls), METRIC).status == "pass"
        assert judge_with(prometheus(mtls, tls), METRIC).status == "pass"
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ["readygate: WARNING: TLS certificate verification is OFF for "
                        "backends.prometheus (insecure_skip_verify: true): anyone on the path "
                        "can read and change this traffic; use tls.ca_file instead"]


def test_signal_backends_get_their_own_client_and_the_registry_closes_it(
        pki: Pki, mtls: str) -> None:
    config = parse_config(
        f"backends:\n  metrics:\n    kind: victoriametrics\n    url: '{mtls}'\n"
        f"    tls: {{ca_file: '{pki.ca}', cert_file: '{pki.client_cert}', "
        f"key_file: '{pki.client_key}'}}\n"
        "  traces: {kind: tempo, url: 'http://127.0.0.1:9'}\n", "r.yaml")

    async def go() -> None:
        async with httpx.AsyncClient(trust_env=False) as shared:
            b = build_all(config.backends, shared)
            assert b.metrics is not None and b.metrics.client is not shared
            assert getattr(b.traces, "client", None) is shared  # no options: shared
            assert [s.labels for s in await b.metrics.query("up")] == [
                {"__name__": "up", "job": "tls"}]
            own = b.metrics.client
            await b.aclose()
            assert own.is_closed and not shared.is_closed
    asyncio.run(go())


# -- raw /metrics scrapes ---------------------------------------------------------------

def test_scrape_behind_tls_and_basic_auth_fails_to_look_without_the_options(
        pki: Pki, basic: str) -> None:
    check = {**CONTRACT, "scrape": f"{basic}/metrics"}
    r = judge_with("{}", check)
    assert r.status == "error" and "CERTIFICATE_VERIFY_FAILED" in r.message, r.message
    r = judge_with(f"backends:\n  scrape: {{tls: {{ca_file: '{pki.ca}'}}}}\n", check)
    assert r.status == "error", r.message
    assert r.message.startswith("could not look") and r.message.endswith(
        f"scrape of {basic}/metrics refused (401): set backends.scrape's basic_auth, token or "
        "headers")


def test_scrape_with_ca_and_basic_auth_passes(pki: Pki, basic: str) -> None:
    config = (f"backends:\n  scrape:\n    tls: {{ca_file: '{pki.ca}'}}\n"
              "    basic_auth: {username: scraper, password: scrape-pass-42}\n")
    r = judge_with(config, {**CONTRACT, "scrape": f"{basic}/metrics"})
    assert r.status == "pass", r.message
    assert r.evidence["source"] == f"scrape {basic}/metrics"


def test_scrape_credentials_in_the_url_are_basic_auth_and_never_shown(pki: Pki,
                                                                     basic: str) -> None:
    with_creds = basic.replace("https://", "https://scraper:scrape-pass-42@")
    config = (f"target:\n  services: {{app: '{with_creds}'}}\n"
              f"backends:\n  scrape: {{tls: {{ca_file: '{pki.ca}'}}}}\n")
    for source in ("app", f"{with_creds}/metrics"):
        r = judge_with(config, {**CONTRACT, "scrape": source})
        assert r.status == "pass", r.message
        shown = json.dumps(r.to_dict())
        assert "scrape-pass-42" not in shown and "scraper" not in shown, shown
    # a wrong password in the URL is refused, not a pass
    wrong = basic.replace("https://", "https://scraper:wrong-pass-1@")
    r = judge_with(config, {**CONTRACT, "scrape": f"{wrong}/metrics"})
    assert r.status == "error" and "refused (401)" in r.message
    assert "wrong-pass-1" not in json.dumps(r.to_dict())


def test_a_scrape_client_shows_its_url_without_credentials() -> None:
    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(
                lambda req: httpx.Response(200, text=req.headers.get("authorization", "")))
        ) as client:
            scraper = ScrapeClient("https://u:pw-1234@h/metrics", client)
            assert scraper.url == "https://h/metrics"
            with pytest.raises(BackendError) as err:  # the echoed header is not exposition
                await scraper.samples()
            assert "pw-1234" not in str(err.value)
    asyncio.run(go())


# -- a whole run ----------------------------------------------------------------------

def test_a_run_with_credentials_in_urls_shows_them_nowhere(pki: Pki, tmp_path: Path) -> None:
    """`readygate run` against HTTPS backends with user:password@ URLs: no output has them."""
    with https_server(pki, basic_auth=("promuser", "prom-pass-77")) as (prom, _), \
            https_server(pki, basic_auth=("webuser", "web-pass-77")) as (web, _):
        config = tmp_path / "readygate.yaml"
        config.write_text(f"""version: 1
target:
  services: {{web: "{web.replace('https://', 'https://webuser:web-pass-77@')}"}}
backends:
  prometheus:
    url: "{prom.replace('https://', 'https://promuser:prom-pass-77@')}"
    tls: {{ca_file: ca.pem}}
  scrape: {{tls: {{ca_file: ca.pem}}}}
gates:
  tls:
    scenario:
      probes: false
      baseline: {{min_duration_s: 0, max_duration_s: 10}}
    checks:
      - {{signal: metric_contract, scrape: web, deadline_s: 5,
          metrics: {{demo_requests_total: [route]}}}}
      - {{signal: metric, query: up, phase: baseline, deadline_s: 5}}
""")
        (tmp_path / "ca.pem").write_bytes(pki.ca.read_bytes())
        out = tmp_path / "out"
        result = subprocess.run([sys.executable, "-m", "readygate", "run", "tls", "--config",
                                 str(config), "--out", str(out)], capture_output=True,
                                text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    texts = {"stdout": result.stdout, "stderr": result.stderr}
    texts.update({str(p): p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()})
    assert len(texts) > 3
    for where, text in texts.items():
        for word in ("webuser", "web-pass-77", "promuser", "prom-pass-77"):
            assert word not in text, f"{word} in {where}"
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "ready"


def test_the_suite_run_file_carries_url_credentials_only_in_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from gates.pytest_plugin import _suite_config
    from gates.pytest_suites import run_document
    from tests.reports.conftest import make_report

    config = parse_config(
        "target:\n  services: {web: 'https://suiteuser:suite-pass-5@web.internal'}\n"
        "backends:\n  prometheus: {url: 'https://promuser:suite-pass-6@prom.internal',\n"
        "               headers: {X-Api-Key: suite-key-7}}\n", "r.yaml")
    doc, env = run_document(make_report(), config)
    text = json.dumps(doc, default=str)
    for word in ("suite-pass-5", "suite-pass-6", "suite-key-7", "suiteuser"):
        assert word not in text
    assert sorted(env.values()) == ["suite-key-7", "suite-pass-6", "suiteuser:suite-pass-5"]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    child = _suite_config(json.dumps(doc["config"]), "<run file>")
    assert child.target.services["web"] == "https://suiteuser:suite-pass-5@web.internal"
    prom = child.backends.prometheus
    assert prom is not None and prom.basic_auth is not None
    assert prom.basic_auth.password.get_secret_value() == "suite-pass-6"
