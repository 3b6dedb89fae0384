"""`readygate stack` for real: Prometheus, Alertmanager and the sink around the test's own service.

The service (tests/stack/app.py) runs in its own process, as a CI job would have started
it; each test gates it with one command and checks the verdict, the evidence and that
nothing the stack started is left running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.stack.conftest import (
    App,
    Receiver,
    alive,
    descendants,
    post_command,
    readygate,
    write_config,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(any(shutil.which(b) is None for b in (
        "prometheus", "promtool", "prometheus-alertmanager", "amtool")),
        reason="needs the prometheus and prometheus-alertmanager Debian packages"),
]

SCRAPED: dict[str, Any] = {"signal": "metric", "phase": "baseline", "name": "app scraped",
                           "query": 'up{job="app"} == 1', "deadline_s": 15}


def healthy_gate() -> dict[str, Any]:
    """A metric check and a no_alert check on a healthy baseline."""
    return {"healthy": {
        "scenario": {"probes": False, "baseline": {"min_duration_s": 3, "max_duration_s": 20}},
        "checks": [SCRAPED, {"signal": "no_alert", "phase": "baseline", "window_s": 3}]}}


def errors_gate(app: App) -> dict[str, Any]:
    """Break the app (its error counter rises): the alert fires and the sink is notified."""
    return {"errors": {
        "scenario": {
            "probes": False,
            "baseline": {"min_duration_s": 0, "max_duration_s": 20},
            "fault": {"kind": "command", "service": "app", "ttl_s": 60,
                      "inject": post_command(app.url + "/break"),
                      "rollback": post_command(app.url + "/fix")},
            "fault_phase": {"max_duration_s": 30},
            "recovery": {"max_duration_s": 10}},
        "checks": [SCRAPED,
                   {"signal": "alert", "alertname": "AppErrors", "labels": {"service": "app"},
                    "deadline_s": 15},
                   {"signal": "notification", "alertname": "AppErrors", "deadline_s": 20}]}}


def report_of(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return data


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"]}


def assert_stack_stopped(report: dict[str, Any]) -> None:
    pids = report["stack"]["pids"]
    assert len(pids) == 3, report["stack"]  # sink, Alertmanager, Prometheus
    assert [pid for pid in pids if alive(pid)] == []


def test_healthy_service_is_ready_and_the_scrape_token_stays_secret(
        tmp_path: Path, start_app: Callable[..., App]) -> None:
    """Metric + no_alert on a healthy service: READY; the bearer token shows up nowhere."""
    token = "tok-" + os.urandom(8).hex()
    app = start_app("--token", token)
    write_config(tmp_path, app.url, gates=healthy_gate(), stack={"scrape": [{
        "job": "app", "targets": [app.url + "/metrics"], "labels": {"service": "app"},
        "bearer_token": "${APP_SCRAPE_TOKEN}"}]})
    result = readygate("stack", "healthy", cwd=tmp_path, env={"APP_SCRAPE_TOKEN": token})
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path / "out" / "stack")
    assert report["verdict"] == "ready"
    assert statuses(report) == {"app scraped": "pass",
                                "no alert during healthy baseline": "pass"}
    assert set(report["stack"]["components"]) == {"prometheus", "alertmanager", "sink"}
    assert report["stack"]["warnings"] == []
    assert "prometheus scrapes app and knows alertmanager" in result.stderr
    assert {p.name for p in (tmp_path / "out" / "stack" / "logs").iterdir()} == {
        "prometheus.log", "alertmanager.log", "sink.log"}
    assert_stack_stopped(report)
    assert token not in result.stdout + result.stderr
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_an_alert_already_firing_makes_the_healthy_gate_not_ready(
        tmp_path: Path, start_app: Callable[..., App]) -> None:
    """The service fails from the start: AppErrors fires in the baseline, no_alert fails."""
    app = start_app("--broken")
    write_config(tmp_path, app.url, gates=healthy_gate())
    result = readygate("stack", "healthy", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    report = report_of(tmp_path / "out" / "stack")
    assert report["verdict"] == "not_ready"
    no_alert = next(c for c in report["checks"] if c["signal"] == "no_alert")
    assert no_alert["status"] == "fail" and "AppErrors" in no_alert["message"]
    assert_stack_stopped(report)


def test_rising_errors_fire_the_alert_and_notify_the_sink_and_the_users_receiver(
        tmp_path: Path, start_app: Callable[..., App], receiver: Receiver) -> None:
    """`run --stack` with the user's Alertmanager config: their receiver keeps receiving."""
    app = start_app()
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump({
        "route": {"receiver": "team-default", "group_wait": "0s", "group_interval": "1s",
                  "routes": [{"receiver": "team-pager", "matchers": ['severity="page"']}]},
        "receivers": [{"name": "team-default"},
                      {"name": "team-pager", "webhook_configs": [{"url": receiver.url}]}]}),
        encoding="utf-8")
    write_config(tmp_path, app.url, gates=errors_gate(app),
                 stack={"alertmanager_config": "alertmanager.yml"})
    result = readygate("run", "errors", "--stack", "--out", "out/errors", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(tmp_path / "out" / "errors")
    assert statuses(report) == {"app scraped": "pass", "alert AppErrors fires": "pass",
                                "notification AppErrors firing delivered": "pass"}
    assert "AppErrors" in receiver.alertnames("firing")
    assert_stack_stopped(report)


def test_a_service_down_at_start_is_judged_not_refused(tmp_path: Path) -> None:
    """Nothing listens on the target: the stack warns, starts anyway, and the gate fails."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # closed again: nothing listens
    write_config(tmp_path, url, gates=healthy_gate(), stack={"ready_timeout_s": 2})
    result = readygate("stack", "healthy", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    report = report_of(tmp_path / "out" / "stack")
    assert statuses(report)["app scraped"] == "fail"
    assert [w for w in report["stack"]["warnings"] if w.startswith("target app (")
            and " is down (" in w], report["stack"]["warnings"]
    assert_stack_stopped(report)


class Lines:
    """A child's stream read line by line in a thread, so the test can wait for a line."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if text in line]
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not seen within {timeout:.0f}s: {self.lines}")


def popen_readygate(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "readygate", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_stack_up_serves_until_sigint_then_stops_everything(
        tmp_path: Path, start_app: Callable[..., App]) -> None:
    app = start_app()
    write_config(tmp_path, app.url, gates={})
    proc = popen_readygate("stack", "up", cwd=tmp_path)
    try:
        out, err = Lines(proc.stdout), Lines(proc.stderr)
        err.wait_for("the stack runs until Ctrl-C")
        urls = {line.split()[0]: line.split()[1] for line in out.lines}
        assert set(urls) == {"prometheus", "alertmanager", "sink", "logs"}
        children = descendants(proc.pid)
        assert len(children) == 3, children
        with httpx.Client(timeout=5, trust_env=False) as client:
            targets = client.get(urls["prometheus"] + "/api/v1/targets").json()["data"]
            assert [t["health"] for t in targets["activeTargets"]] == ["up"]
            managers = client.get(urls["prometheus"] + "/api/v1/alertmanagers").json()
            assert managers["data"]["activeAlertmanagers"][0]["url"].startswith(
                urls["alertmanager"])
            assert client.get(urls["sink"] + "/api/notifications").status_code == 200
            # only the stack's Alertmanager, which has the token, may post notifications
            token_file = Path(urls["logs"]).parent / "alertmanager" / "sink-webhook-token"
            assert token_file.stat().st_mode & 0o077 == 0
            token = token_file.read_text().strip()
            fake = {"version": "4", "status": "firing", "receiver": "x", "alerts": [
                {"status": "firing", "labels": {"alertname": "Forged"},
                 "startsAt": "2026-12-02T10:00:00Z", "fingerprint": "f"}]}
            hook = urls["sink"] + "/alertmanager/webhook"
            assert client.post(hook, json=fake).status_code == 401
            assert client.get(urls["sink"] + "/api/notifications").json() == {
                "notifications": []}
            assert client.post(hook, json=fake, headers={
                "Authorization": f"Bearer {token}"}).status_code == 200
            am_config = (token_file.parent / "alertmanager.yml").read_text()
            assert str(token_file) in am_config and token not in am_config
        assert not any(token in line for line in out.lines + err.lines)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        err.wait_for("stopping the stack")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert [pid for pid in children if alive(pid)] == []
    assert not Path(urls["logs"]).exists()  # the workdir went with the stack


def test_ctrl_c_during_the_gate_writes_a_partial_report_and_stops_the_stack(
        tmp_path: Path, start_app: Callable[..., App]) -> None:
    app = start_app()
    gate = healthy_gate()
    gate["healthy"]["scenario"]["baseline"] = {"min_duration_s": 60, "max_duration_s": 90}
    write_config(tmp_path, app.url, gates=gate)
    proc = popen_readygate("stack", "healthy", cwd=tmp_path)
    try:
        err = Lines(proc.stderr)
        err.wait_for("phase baseline started")
        children = descendants(proc.pid)
        assert len(children) == 3, children
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    report = report_of(tmp_path / "out" / "stack")
    assert report["partial"] is True and report["verdict"] == "inconclusive"
    assert report["reason"] == "interrupted by SIGINT"
    assert [pid for pid in children if alive(pid)] == []
    assert_stack_stopped(report)
