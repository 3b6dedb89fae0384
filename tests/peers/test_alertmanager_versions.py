"""The Alertmanager backend and the alert_not_silenced check against both Alertmanagers users
run: Debian's 0.25 and 0.35 built from its Go module. Alerts are posted straight to the v2
API, so each case needs no Prometheus."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from core.procs import ManagedProcess, python_module
from demo.stack import free_port
from gates.backends.alertmanager import AlertmanagerClient
from gates.checks import judge
from gates.context import Anchors, CheckContext
from reports.model import CheckResult
from stack.files import sink_webhook
from tests.gates.conftest import CHECK
from tests.peers.conftest import debian_binary, peer_binary, running

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {
    "route": {"receiver": "hook", "group_wait": "0s", "group_interval": "1s",
              "routes": [{"receiver": "mute", "matchers": ['team="nobody"']}]},
    "receivers": [{"name": "hook", "webhook_configs": [{"url": "http://127.0.0.1:9/hook",
                                                        "send_resolved": False}]},
                  {"name": "mute"}],
    "inhibit_rules": [{"source_matchers": ['severity="critical"'],
                       "target_matchers": ['severity="warning"'], "equal": ["service"]}],
}


def binary(which: str) -> Path:
    return debian_binary("prometheus-alertmanager") if which == "debian-0.25" \
        else peer_binary("alertmanager")


@pytest.fixture(scope="module", params=["debian-0.25", "go-0.35"])
def am(request: pytest.FixtureRequest,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = binary(str(request.param))
    tmp = tmp_path_factory.mktemp(f"am-{request.param}")
    (tmp / "am.yml").write_text(yaml.safe_dump(CONFIG))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(f"alertmanager-{request.param}", [
            str(exe), f"--config.file={tmp / 'am.yml'}", f"--storage.path={tmp / 'data'}",
            "--cluster.listen-address=", f"--web.listen-address=127.0.0.1:{port}"],
            tmp) as peer:
        peer.wait_http(url + "/-/ready", ok=lambda r: r.status_code == 200)
        yield url


def post_alerts(url: str, *labelsets: dict[str, str]) -> None:
    now = dt.datetime.now(dt.UTC)
    resp = httpx.post(url + "/api/v2/alerts", timeout=5, json=[{
        "labels": labels, "startsAt": now.isoformat(),
        "endsAt": (now + dt.timedelta(minutes=5)).isoformat()} for labels in labelsets])
    assert resp.status_code == 200, resp.text


def check(url: str, spec: dict[str, Any], anchor: float) -> CheckResult:
    async def go() -> CheckResult:
        async with httpx.AsyncClient(trust_env=False) as http:
            ctx = CheckContext(prometheus=None, sink=None,
                               anchors=Anchors(phase_start={"fault": anchor},
                                               fault_start=anchor),
                               probe_results=[], poll_interval_s=0.1, http=http,
                               alertmanager=AlertmanagerClient(url, http))
            return await judge(CHECK.validate_python(spec), ctx, "fault")
    return asyncio.run(go())


def test_active_silenced_and_inhibited_alerts_on_each_alertmanager(am: str) -> None:
    anchor = time.time() - 0.5
    resp = httpx.post(am + "/api/v2/silences", timeout=5, json={
        "matchers": [{"name": "service", "value": "quiet", "isRegex": False}],
        "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "readygate-test", "comment": "maintenance window"})
    assert resp.status_code == 200, resp.text
    post_alerts(am, {"alertname": "RgFault", "service": "web", "severity": "critical"},
                {"alertname": "RgFault", "service": "quiet", "severity": "critical"},
                {"alertname": "RgSlow", "service": "web", "severity": "warning"})
    spec = {"signal": "alert_not_silenced", "alertname": "RgFault", "deadline_s": 5}
    r = check(am, {**spec, "labels": {"service": "web"}}, anchor)
    assert r.status == "pass", r.message
    r = check(am, {**spec, "labels": {"service": "quiet"}}, anchor)
    assert r.status == "fail" and "silenced by" in r.message, r.message
    assert "maintenance window" in r.message
    r = check(am, {"signal": "alert_not_silenced", "alertname": "RgSlow", "deadline_s": 5},
              anchor)
    assert r.status == "fail" and "inhibited by" in r.message, r.message
    r = check(am, {"signal": "alert_not_silenced", "alertname": "RgNever", "deadline_s": 0.3},
              anchor)
    assert r.status == "fail" and "RgNever is not in Alertmanager" in r.message, r.message


def test_alert_already_active_before_the_anchor_proves_nothing(am: str) -> None:
    post_alerts(am, {"alertname": "RgOld", "service": "web", "severity": "critical"})
    time.sleep(1.1)  # startsAt must lie before the anchor, at Alertmanager's 1 s resolution
    r = check(am, {"signal": "alert_not_silenced", "alertname": "RgOld", "deadline_s": 0.5},
              time.time())
    assert r.status == "fail" and "proves nothing" in r.message, r.message


def test_receivers_and_routes_read_from_each_alertmanager(am: str) -> None:
    async def go() -> tuple[Any, Any]:
        async with httpx.AsyncClient(trust_env=False) as http:
            client = AlertmanagerClient(am, http)
            post_alerts(am, {"alertname": "RgRouted", "team": "nobody"})
            deadline = time.monotonic() + 5
            while True:
                alerts = await client.alerts("RgRouted")
                if (alerts and alerts[0].receivers) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            return await client.receivers(), alerts
    receivers, alerts = asyncio.run(go())
    assert receivers["hook"].integrations == ["webhook"] and receivers["hook"].sends_resolved == []
    assert receivers["mute"].integrations == []
    assert alerts and alerts[0].receivers == ["mute"]


@pytest.mark.parametrize("which", ["debian-0.25", "go-0.35"])
def test_each_alertmanager_delivers_to_a_token_sink_with_credentials_file(
        which: str, tmp_path: Path) -> None:
    """The webhook config `readygate stack` writes (stack.files.sink_webhook): Bearer from a
    credentials_file, which the sink (`--webhook-token-file`) requires."""
    token = "tok-" + secrets.token_urlsafe(24)
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    sink = ManagedProcess("sink", python_module(
        "sink.server", "--db", str(tmp_path / "s.db"), "--webhook-token-file", str(token_file)),
        cwd=ROOT, log_path=tmp_path / "sink.log")
    sink.start()
    try:
        sink_url = asyncio.run(sink.wait_ready_line(30))
        config = {"route": {"receiver": "sink", "group_wait": "0s", "group_interval": "1s"},
                  "receivers": [{"name": "sink", "webhook_configs": [
                      sink_webhook(sink_url + "/alertmanager/webhook", str(token_file))]}]}
        (tmp_path / "am.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with running(f"alertmanager-{which}", [
                str(binary(which)), f"--config.file={tmp_path / 'am.yml'}",
                f"--storage.path={tmp_path / 'data'}", "--cluster.listen-address=",
                f"--web.listen-address=127.0.0.1:{port}"], tmp_path) as peer:
            peer.wait_http(url + "/-/ready", ok=lambda r: r.status_code == 200)
            post_alerts(url, {"alertname": "RgToken", "service": "web"})
            deadline = time.monotonic() + 15
            rows: list[Any] = []
            while not rows and time.monotonic() < deadline:
                rows = httpx.get(sink_url + "/api/notifications", timeout=5,
                                 params={"alertname": "RgToken"}).json()["notifications"]
                time.sleep(0.2)
        assert rows and rows[0]["status"] == "firing", "no notification reached the sink"
    finally:
        sink.stop()
    assert token not in (tmp_path / "sink.log").read_text()
