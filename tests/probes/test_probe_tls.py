"""Journeys over HTTPS with a private CA, client certificates, SNI and URL credentials.

Without the options a journey fails (CERTIFICATE_VERIFY_FAILED, certificate required),
never passes; with ``probes.http.tls`` or a journey's own ``tls:`` it passes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import core.http
from core.http import ConnectOptions, TlsOptions
from probes.journeys import Journey
from probes.metrics import ProbeMetrics
from probes.model import ProbeResult
from probes.scheduler import ProbeScheduler
from probes.spec import HttpJourney, Step, parse_journeys
from probes.transport import lean_client
from readygate.probe_cli import render_table
from tests.fixtures.tls import Pki, https_server, make_pki

ROOT = Path(__file__).resolve().parents[2]
GET = [Step(name="get", url="/metrics")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls(pki: Pki) -> Iterator[str]:
    with https_server(pki, require_client_cert=True) as (url, _):
        yield url


def client_tls(pki: Pki, **extra: object) -> TlsOptions:
    return TlsOptions.model_validate({"ca_file": str(pki.ca), "cert_file": str(pki.client_cert),
                                      "key_file": str(pki.client_key), **extra})


def run(journeys: list[Journey], http: ConnectOptions | None = None,
        times: int = 1) -> list[ProbeResult]:
    async def go() -> list[ProbeResult]:
        async with lean_client() as client:
            scheduler = ProbeScheduler(journeys, client, lambda r: None, http=http)
            try:
                return [await scheduler.run_once(j) for _ in range(times) for j in journeys]
            finally:
                await scheduler.stop()
    return asyncio.run(go())


def test_a_journey_to_internal_https_fails_without_options(pki: Pki, mtls: str) -> None:
    [r] = run([Journey("internal", HttpJourney(steps=GET), mtls)])
    assert not r.success and r.error is not None
    assert r.error.startswith("get: GET /metrics: ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED]")
    assert "set tls.ca_file" in r.error


def test_the_right_ca_without_a_client_certificate_fails_every_time(pki: Pki,
                                                                    mtls: str) -> None:
    """The server's alert arrives as httpx.ReadError or as a raw ssl.SSLError (anyio lets it
    through); either way the run is a failed result, never an exception or a pass."""
    journey = Journey("internal", HttpJourney(steps=GET, retry={"attempts": 1}), mtls)
    results = run([journey], ConnectOptions(tls=TlsOptions(ca_file=str(pki.ca))), times=20)
    assert not any(r.success for r in results)
    assert all(r.error and r.error.startswith("get: GET /metrics: ") for r in results)


def test_probes_http_tls_with_a_client_certificate_passes(pki: Pki, mtls: str) -> None:
    [r] = run([Journey("internal", HttpJourney(steps=GET), mtls)],
              ConnectOptions(tls=client_tls(pki)))
    assert r.success, r.error
    assert r.phases.get("tls", 0) > 0


def test_a_journeys_own_tls_wins_over_probes_http(pki: Pki, mtls: str) -> None:
    wrong = ConnectOptions(tls=TlsOptions(ca_file=str(pki.other_ca)))
    own = Journey("own", HttpJourney(steps=GET, tls=client_tls(pki)), mtls)
    shared = Journey("shared", HttpJourney(steps=GET), mtls)
    r_own, r_shared = run([own, shared], wrong)
    assert r_own.success, r_own.error
    assert not r_shared.success and "CERTIFICATE_VERIFY_FAILED" in (r_shared.error or "")


def test_server_name_checks_the_certificate_for_that_name(pki: Pki, mtls: str) -> None:
    ok = Journey("sni", HttpJourney(steps=GET, tls=client_tls(pki, server_name="internal.test")),
                 mtls)
    bad = Journey("bad-sni", HttpJourney(steps=GET, tls=client_tls(pki, server_name="x.test")),
                  mtls)
    r_ok, r_bad = run([ok, bad])
    assert r_ok.success, r_ok.error
    assert not r_bad.success and "not valid for 'x.test'" in (r_bad.error or "")


def test_skip_verify_passes_and_warns_once_naming_the_journey(
        pki: Pki, mtls: str, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core.http, "_warned", set())
    tls = TlsOptions(insecure_skip_verify=True, cert_file=str(pki.client_cert),
                     key_file=str(pki.client_key))
    with caplog.at_level(logging.WARNING, "readygate.tls"):
        results = run([Journey("skippy", HttpJourney(steps=GET), mtls)],
                      ConnectOptions(tls=tls), times=3)
    assert all(r.success for r in results)
    assert [r.getMessage() for r in caplog.records] == [
        "readygate: WARNING: TLS certificate verification is OFF for journeys.skippy "
        "(insecure_skip_verify: true): anyone on the path can read and change this traffic; "
        "use tls.ca_file instead"]


def test_credentials_in_the_target_url_are_basic_auth_and_shown_nowhere(pki: Pki) -> None:
    with https_server(pki, basic_auth=("probeuser", "probe-pass-9")) as (url, server):
        target = url.replace("https://", "https://probeuser:probe-pass-9@")
        journey = Journey("auth", HttpJourney(steps=GET), target)
        [ok] = run([journey], ConnectOptions(tls=TlsOptions(ca_file=str(pki.ca))))
        wrong = Journey("auth", HttpJourney(steps=GET), url.replace("https://",
                                                                    "https://probeuser:nope1@"))
        [refused] = run([wrong], ConnectOptions(tls=TlsOptions(ca_file=str(pki.ca))))
    assert ok.success, ok.error
    assert server.seen[0]["authorization"].startswith("Basic ")
    assert not refused.success and "returned 401" in (refused.error or ""), refused.error
    metrics = ProbeMetrics([journey], "here")
    metrics.observe(ok)
    outputs = [json.dumps(ok.to_dict()), render_table([ok, refused]),
               json.dumps(refused.to_dict()), metrics.render().decode()]
    assert ok.target == url
    for text in outputs:
        for word in ("probeuser", "probe-pass-9", "nope1"):
            assert word not in text, (word, text)


def test_journey_tls_files_are_relative_to_the_journeys_file(pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    for name in ("ca", "client_cert", "client_key"):
        (tmp_path / "certs" / f"{name}.pem").write_bytes(getattr(pki, name).read_bytes())
    path = tmp_path / "journeys.yaml"
    path.write_text("journeys:\n  internal:\n    steps: [{url: /metrics}]\n    tls:\n"
                    "      ca_file: certs/ca.pem\n      cert_file: certs/client_cert.pem\n"
                    "      key_file: certs/client_key.pem\n")
    spec = parse_journeys(path.read_text(), str(path))
    tls = spec.journeys["internal"].tls
    assert tls is not None and tls.ca_file == str(tmp_path / "certs" / "ca.pem")
    path.write_text("journeys:\n  internal:\n    steps: [{url: /metrics}]\n    tls:\n"
                    "      ca_file: certs/nope.pem\n")
    with pytest.raises(Exception, match=rf"^{path}:5 journeys.internal.tls.ca_file: CA bundle"):
        parse_journeys(path.read_text(), str(path))


def test_probe_run_uses_probes_http_and_never_prints_url_credentials(pki: Pki,
                                                                    tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_bytes(pki.ca.read_bytes())
    with https_server(pki, basic_auth=("cliuser", "cli-pass-31")) as (url, _):
        target = url.replace("https://", "https://cliuser:cli-pass-31@")
        config = tmp_path / "readygate.yaml"
        config.write_text(f"""version: 1
target:
  services: {{web: "{target}"}}
probes:
  http: {{tls: {{ca_file: ca.pem}}}}
journeys:
  metrics: {{steps: [{{url: /metrics, expect: {{regex: demo_requests_total}}}}]}}
""")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SSL_CERT_")}
        outs = [subprocess.run([sys.executable, "-m", "readygate", "probe", "run", "--config",
                                str(config), *extra], capture_output=True, text=True,
                               timeout=60, cwd=ROOT, env=env)
                for extra in ([], ["--json"])]
    for out in outs:
        assert out.returncode == 0, out.stdout + out.stderr
        for word in ("cliuser", "cli-pass-31"):
            assert word not in out.stdout + out.stderr
    assert "1/1 journeys passed" in outs[0].stdout
