"""Grafana-managed alerts as an alerts backend, through the real grafana-client against a
fake Grafana speaking the documented formats: a transition after the anchor passes; absent,
late, already active before the anchor and never-fired fail; down or garbage is an error."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from core.errors import BackendError, ConfigError
from core.http import HttpFields
from core.serve import bind_socket, socket_url
from gates.backends.grafana import GrafanaAlerts, grafana_api
from gates.checks import judge
from gates.context import Anchors, CheckContext
from readygate.config import parse_config
from readygate.runner import build_context
from reports.model import CheckResult
from tests.fakes.grafana import FakeGrafana, closed_url
from tests.fakes.server import serve
from tests.fixtures.tls import Pki, make_pki
from tests.gates.conftest import CHECK

TOKEN = "glsa-fake-token-0123456789"
ALERT = {"signal": "alert", "alertname": "HighErrorRate", "labels": {"service": "web"}}
RESOLVES = {"signal": "alert_resolves", "alertname": "HighErrorRate",
            "labels": {"service": "web"}, "phase": "recovery", "anchor": "fault_end"}


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana(token=TOKEN)
    with serve(fake.app()) as url:
        yield fake, url


def backend(url: str, token: str = TOKEN, org_id: int | None = None) -> GrafanaAlerts:
    return GrafanaAlerts(grafana_api(url, token=token, org_id=org_id, timeout_s=2.0), url)


def run(check: dict[str, Any], source: GrafanaAlerts, anchor: float,
        phase: str = "fault") -> CheckResult:
    async def go() -> CheckResult:
        ctx = CheckContext(prometheus=None, sink=None, alerts=source,
                           anchors=Anchors(phase_start={phase: anchor}, fault_start=anchor,
                                           fault_end=anchor),
                           probe_results=[], poll_interval_s=0.05)
        return await judge(CHECK.validate_python(check), ctx, phase)
    return asyncio.run(go())


def test_alerting_and_recovering_are_firing_pending_is_pending_others_are_quiet(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    now = time.time()
    fake.alert("HighErrorRate", "Alerting", now - 5, service="web")
    fake.alert("SlowRequests", "Pending", now - 2, service="web")
    fake.alert("DiskFull", "Alerting (NoData)", now - 9)
    fake.alert("Flapping", "Recovering", now - 9)
    fake.alert("Quiet", "Normal", now - 60)
    fake.alert("Broken", "Error", now - 60)
    fake.alert("Empty", "NoData", now - 60)
    found = {a.name: a for a in asyncio.run(backend(url).alerts())}
    assert {n: a.state for n, a in found.items()} == {
        "HighErrorRate": "firing", "SlowRequests": "pending", "DiskFull": "firing",
        "Flapping": "firing"}
    assert found["HighErrorRate"].labels == {"alertname": "HighErrorRate",
                                             "grafana_folder": "ops", "service": "web"}
    assert found["HighErrorRate"].active_at is not None
    assert found["HighErrorRate"].active_at.endswith("Z")


def test_fired_since_reads_the_state_history_by_name_labels_and_time(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    now = time.time()
    fake.transition("HighErrorRate", "Alerting", now - 100, service="web")  # before `since`
    fake.transition("HighErrorRate", "Pending", now - 5, service="web")
    fake.transition("HighErrorRate", "Alerting", now - 3, service="api")
    fake.transition("HighErrorRateSlow", "Alerting", now - 3, service="web")
    source = backend(url)
    assert not asyncio.run(source.fired_since("HighErrorRate", {"service": "web"}, now - 10))
    fake.transition("HighErrorRate", "Alerting", now - 2, prev="Pending", service="web")
    assert asyncio.run(source.fired_since("HighErrorRate", {"service": "web"}, now - 10))
    assert asyncio.run(source.fired_since("HighErrorRate", {}, now - 10))
    assert not asyncio.run(source.fired_since("HighErrorRate", {"service": "web"}, now - 1))


def test_the_org_id_is_sent_and_a_refused_token_is_an_error_never_a_pass(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    fake.org_id = 3
    with pytest.raises(BackendError, match=r"refused the request \(401\)"):
        asyncio.run(backend(url).alerts())
    assert asyncio.run(backend(url, org_id=3).alerts()) == []
    with pytest.raises(BackendError, match="401"):
        asyncio.run(backend(url, token="glsa-wrong-token-000", org_id=3).alerts())


def test_an_alert_that_begins_after_the_anchor_passes(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    anchor = time.time() - 0.2
    fake.alert("HighErrorRate", "Alerting", anchor + 0.1, service="web")
    r = run({**ALERT, "deadline_s": 2}, backend(url), anchor)
    assert r.status == "pass", r.message
    assert r.evidence["query"] == "grafana alert state"


def test_an_absent_alert_fails_and_a_pending_one_is_the_near_miss(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    anchor = time.time()
    assert run({**ALERT, "deadline_s": 0.3}, backend(url), anchor).status == "fail"
    fake.alert("HighErrorRate", "Pending", anchor + 0.01, service="web")
    r = run({**ALERT, "deadline_s": 0.3}, backend(url), anchor)
    assert r.status == "fail" and "seen instead" in r.message


def test_an_alert_firing_after_the_deadline_fails_as_late(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    anchor = time.time() - 1.0
    fake.alert("HighErrorRate", "Alerting", anchor + 0.9, service="web")
    r = run({**ALERT, "deadline_s": 0.5}, backend(url), anchor)
    assert r.status == "fail" and "late" in r.message


def test_an_alert_already_active_before_the_anchor_fails(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    anchor = time.time()
    fake.alert("HighErrorRate", "Alerting", anchor - 30, service="web")
    r = run({**ALERT, "deadline_s": 0.3}, backend(url), anchor)
    assert r.status == "fail" and "already active before fault_start" in r.message


def test_resolves_passes_only_on_an_alert_that_fired_since_the_fault_and_is_gone(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    anchor = time.time()
    never = run({**RESOLVES, "deadline_s": 0.3}, backend(url), anchor, "recovery")
    assert never.status == "fail" and "never fired" in never.message
    fake.transition("HighErrorRate", "Alerting", anchor - 60, service="web")  # an old one
    old = run({**RESOLVES, "deadline_s": 0.3}, backend(url), anchor, "recovery")
    assert old.status == "fail" and "never fired" in old.message
    fake.transition("HighErrorRate", "Alerting", anchor + 0.01, service="web")
    fake.alert("HighErrorRate", "Alerting", anchor + 0.01, service="web")
    still = run({**RESOLVES, "deadline_s": 0.3}, backend(url), anchor, "recovery")
    assert still.status == "fail" and "did not resolve" in still.message
    fake.alerts.clear()
    resolved = run({**RESOLVES, "deadline_s": 1}, backend(url), anchor, "recovery")
    assert resolved.status == "pass", resolved.message


def test_no_alert_fails_on_a_pending_grafana_alert(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    anchor = time.time()
    check = {"signal": "no_alert", "phase": "baseline", "window_s": 0.3}
    assert run(check, backend(url), anchor, "baseline").status == "pass"
    fake.alert("HighErrorRate", "Pending", anchor, service="web")
    r = run(check, backend(url), anchor, "baseline")
    assert r.status == "fail" and "was pending" in r.message


def test_grafana_down_or_answering_garbage_is_an_error_for_every_alert_check(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    anchor = time.time()
    checks: list[dict[str, Any]] = [
        ALERT, {"signal": "no_alert", "phase": "baseline", "window_s": 0.3}, RESOLVES]
    fake.garbage = True
    for check in checks:
        phase = str(check.get("phase", "fault"))
        r = run({**check, "deadline_s": 0.3}, backend(url), anchor, phase)
        assert r.status == "error", (check, r.message)
    down = backend(closed_url())
    for check in checks:
        phase = str(check.get("phase", "fault"))
        r = run({**check, "deadline_s": 0.3}, down, anchor, phase)
        assert r.status == "error", (check, r.message)


def config_text(url: str, kind: str = "grafana") -> str:
    return f"""version: 1
backends:
  alerts: {{kind: {kind}, url: "{url}", token: "{TOKEN}", org_id: 2}}
"""


def test_backends_alerts_kind_grafana_builds_the_backend_and_its_token_is_a_secret(
        grafana: tuple[FakeGrafana, str]) -> None:
    import httpx

    fake, url = grafana
    fake.org_id = 2
    config = parse_config(config_text(url), "r.yaml")
    assert TOKEN in config.secrets()

    async def go() -> list[Any]:
        async with httpx.AsyncClient() as client:
            ctx = build_context(config, client, 0.1)
            assert isinstance(ctx.alerts, GrafanaAlerts)
            return await ctx.alerts.alerts()
    assert asyncio.run(go()) == []
    with pytest.raises(ConfigError, match="did you mean 'grafana'"):
        parse_config(config_text(url, "grafna"), "r.yaml")


@contextlib.contextmanager
def serve_tls(app: Any, pki: Pki) -> Iterator[str]:
    """``app`` over HTTPS with the PKI's server certificate, requiring a client certificate."""
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off",
        ssl_certfile=str(pki.server_cert), ssl_keyfile=str(pki.server_key),
        ssl_ca_certs=str(pki.ca), ssl_cert_reqs=ssl.CERT_REQUIRED,
        timeout_graceful_shutdown=1))  # a client's idle keep-alive TLS connection
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.01)
    try:
        yield socket_url(sock).replace("http://", "https://")
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_tls_options_reach_grafana_client_ca_client_key_password_and_server_name(
        tmp_path: Path) -> None:
    pki = make_pki(tmp_path, key_password=b"key-pass-1234")
    fake = FakeGrafana(token=TOKEN)
    fake.alert("HighErrorRate", "Alerting", time.time(), service="web")

    def over(url: str, **tls: Any) -> GrafanaAlerts:
        http = HttpFields.model_validate({"tls": tls} if tls else {})
        return GrafanaAlerts(grafana_api(url, token=TOKEN, timeout_s=3, http=http), url)

    mutual = {"ca_file": str(pki.ca), "cert_file": str(pki.client_cert),
              "key_file": str(pki.client_key), "key_password": "key-pass-1234",
              "server_name": "internal.test"}
    with serve_tls(fake.app(), pki) as url:
        for source in (over(url), over(url, ca_file=str(pki.ca)),
                       over(url, **{**mutual, "server_name": "wrong.test"})):
            with pytest.raises(BackendError, match="unreachable"):
                asyncio.run(source.alerts())
        (alert,) = asyncio.run(over(url, **mutual).alerts())
        assert alert.name == "HighErrorRate"


def test_a_grafana_under_a_sub_path_is_reached_there() -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    fake = FakeGrafana(token=TOKEN)
    fake.alert("HighErrorRate", "Alerting", time.time())
    with serve(Starlette(routes=[Mount("/grafana", app=fake.app())])) as url:
        for base in (f"{url}/grafana", f"{url}/grafana/"):
            assert [a.name for a in asyncio.run(backend(base).alerts())] == ["HighErrorRate"]
