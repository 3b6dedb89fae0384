"""The demo stack starts for real, is ready when it says so, detects a fault and stops cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from core.errors import ConfigError, EnvironmentProblem
from demo.stack import (
    RECEIVER_NAME,
    SINK_URL_PLACEHOLDER,
    WEB_URL_PLACEHOLDER,
    DemoStack,
    StackOptions,
    StackUrls,
    alertmanager_config_text,
    default_rules_text,
    duration,
    fill_placeholders,
    first_error_line,
    prometheus_config_text,
)

T = TypeVar("T")

needs_binaries = pytest.mark.skipif(
    any(shutil.which(b) is None for b in ("prometheus", "promtool", "prometheus-alertmanager",
                                          "amtool")),
    reason="needs the prometheus and prometheus-alertmanager Debian packages")


def poll(fn: Callable[[], T | None], *, timeout: float, what: str,
         interval: float = 0.05) -> tuple[T, float]:
    """Call ``fn`` until it returns something truthy; return it and the seconds it took."""
    start = time.monotonic()
    last: T | None = None
    while True:
        last = fn()
        if last:
            return last, time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what} not seen within {timeout:.0f}s; last: {last!r}")
        time.sleep(interval)


def alive(pid: int) -> bool:
    """Whether a process (zombies included) with this PID exists."""
    return os.path.exists(f"/proc/{pid}")


def http() -> httpx.Client:
    return httpx.Client(timeout=5.0, trust_env=False)


# -- config generation, no processes ---------------------------------------------------


def test_duration_formats_whole_seconds_and_milliseconds() -> None:
    assert duration(1.0) == "1s"
    assert duration(15) == "15s"
    assert duration(0.25) == "250ms"


def test_fill_placeholders_replaces_both_base_urls() -> None:
    text = f"{WEB_URL_PLACEHOLDER}/runbooks/X {SINK_URL_PLACEHOLDER}/alertmanager/webhook"
    filled = fill_placeholders(text, web_url="http://127.0.0.1:1/", sink_url="http://127.0.0.1:2")
    assert filled == "http://127.0.0.1:1/runbooks/X http://127.0.0.1:2/alertmanager/webhook"


def test_first_error_line_picks_the_line_after_failed() -> None:
    promtool_out = ("Checking alerts.yml\n  FAILED:\nalerts.yml: 5:15: group \"g\", rule 1:"
                    " could not parse expression\n")
    assert first_error_line(promtool_out).startswith("alerts.yml: 5:15:")
    amtool_out = "Checking 'am.yml'  FAILED: undefined receiver \"x\" used in route\n"
    assert first_error_line(amtool_out) == 'undefined receiver "x" used in route'


def test_prometheus_config_has_both_jobs_rules_and_alertmanager() -> None:
    config = yaml.safe_load(prometheus_config_text(scrape_interval_s=0.5))
    assert config["global"]["scrape_interval"] == "500ms"
    assert config["global"]["scrape_timeout"] == "500ms"
    assert [job["job_name"] for job in config["scrape_configs"]] == ["web", "storage"]
    assert config["rule_files"] == ["rules/alerts.yml"]
    assert config["alerting"]["alertmanagers"][0]["file_sd_configs"]


@needs_binaries
def test_generated_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    (tmp_path / "prometheus.yml").write_text(prometheus_config_text(), encoding="utf-8")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "alerts.yml").write_text(default_rules_text(), encoding="utf-8")
    (tmp_path / "targets").mkdir()
    for name in ("web", "storage", "alertmanager"):
        (tmp_path / "targets" / f"{name}.json").write_text("[]", encoding="utf-8")
    result = subprocess.run(["promtool", "check", "config", "prometheus.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr


@needs_binaries
def test_generated_alertmanager_config_routes_every_alert_to_the_sink(tmp_path: Path) -> None:
    path = tmp_path / "alertmanager.yml"
    path.write_text(alertmanager_config_text(group_interval_s=1), encoding="utf-8")
    check = subprocess.run(["amtool", "check-config", str(path)], capture_output=True,
                           text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    route = subprocess.run(["amtool", "config", "routes", "test", f"--config.file={path}",
                            "alertname=HighErrorRate", "service=web"],
                           capture_output=True, text=True, timeout=60, check=False)
    assert route.stdout.strip() == RECEIVER_NAME, route.stdout + route.stderr
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert config["route"]["group_by"] == ["alertname", "service"]
    assert config["route"]["group_wait"] == "0s"
    webhook = config["receivers"][0]["webhook_configs"][0]
    assert webhook == {"url": f"{SINK_URL_PLACEHOLDER}/alertmanager/webhook",
                       "send_resolved": True}


def test_options_reject_nonsense_intervals() -> None:
    with pytest.raises(ConfigError, match="scrape_interval_s"):
        StackOptions(password="x", scrape_interval_s=0)


def test_options_repr_hides_the_password() -> None:
    assert "hunter2" not in repr(StackOptions(password="hunter2"))


# -- start failures that must leave nothing behind --------------------------------------


@needs_binaries
def test_broken_rules_raise_config_error_naming_the_problem(tmp_path: Path) -> None:
    rules = default_rules_text().replace("> 0.05", "> (0.05")
    stack = DemoStack(StackOptions(password="x", rules_text=rules), tmp_path)
    with pytest.raises(ConfigError, match=r"alert rules rejected: .*HighErrorRate.*parse"):
        asyncio.run(stack.start())
    assert stack.pids() == []  # validation happens before anything starts


@needs_binaries
def test_broken_alertmanager_config_raises_config_error(tmp_path: Path) -> None:
    text = alertmanager_config_text().replace("receiver: readygate-sink", "receiver: nobody", 1)
    stack = DemoStack(StackOptions(password="x", alertmanager_config_text=text), tmp_path)
    with pytest.raises(ConfigError, match=r'Alertmanager config rejected: .*"nobody"'):
        asyncio.run(stack.start())
    assert stack.pids() == []


def test_unknown_sabotage_knob_is_a_config_error(tmp_path: Path) -> None:
    stack = DemoStack(StackOptions(password="x", sabotage=("no_such_knob",)), tmp_path)
    with pytest.raises(ConfigError, match="no_such_knob"):
        asyncio.run(stack.start())


def test_missing_binary_names_the_package_to_install(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    stack = DemoStack(StackOptions(password="x"), tmp_path)
    with pytest.raises(EnvironmentProblem,
                       match="prometheus not found: install it with: apt-get install prometheus"):
        asyncio.run(stack.start())


@pytest.mark.slow
@needs_binaries
def test_cancelled_start_leaves_no_process_behind(tmp_path: Path) -> None:
    """Cancel the start once some services run: every one of them is stopped."""
    stack: DemoStack

    async def main() -> None:
        task: asyncio.Task[StackUrls]

        def progress(message: str) -> None:
            if message.startswith("proxy ready"):
                task.cancel()

        nonlocal stack
        stack = DemoStack(StackOptions(password="x"), tmp_path, progress=progress)
        task = asyncio.create_task(stack.start())
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert len(stack.pids()) >= 3  # sink, storage and proxy at least were running
    assert [pid for pid in stack.pids() if alive(pid)] == []


@pytest.mark.slow
@needs_binaries
def test_start_cut_short_by_a_timeout_leaves_no_process_behind(tmp_path: Path) -> None:
    stack = DemoStack(StackOptions(password="x"), tmp_path)

    async def main() -> None:
        await asyncio.wait_for(stack.start(), timeout=1.0)

    with pytest.raises(TimeoutError):
        asyncio.run(main())
    assert [pid for pid in stack.pids() if alive(pid)] == []


@pytest.mark.slow
@needs_binaries
def test_a_port_taken_between_pick_and_bind_is_retried_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first port handed to Prometheus is in use: the stack retries on a fresh one."""
    import stack.tools as stack_tools  # the stack picks its ports through it

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    real_free_port = stack_tools.free_port
    ports = iter([taken])
    monkeypatch.setattr(stack_tools, "free_port", lambda: next(ports, None) or real_free_port())
    messages: list[str] = []
    tasks: list[asyncio.Task[StackUrls]] = []

    def progress(message: str) -> None:
        messages.append(message)
        if message.startswith("prometheus ready"):
            tasks[0].cancel()  # the retry is all this test is about

    stack = DemoStack(StackOptions(password="x"), tmp_path, progress=progress)

    async def main() -> None:
        tasks.append(asyncio.create_task(stack.start()))
        with contextlib.suppress(asyncio.CancelledError):
            await tasks[0]

    try:
        asyncio.run(main())
    finally:
        squatter.close()
    assert f"prometheus: port {taken} was taken meanwhile, retrying" in messages
    ready = [m for m in messages if m.startswith("prometheus ready")]
    assert ready and f":{taken}" not in ready[0]
    assert [pid for pid in stack.pids() if alive(pid)] == []


# -- one real stack shared by the end-to-end tests --------------------------------------


class Running:
    """A started stack and what the tests need to talk to it."""

    def __init__(self, stack: DemoStack, urls: StackUrls, password: str) -> None:
        self.stack = stack
        self.urls = urls
        self.password = password


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    password = "pw-" + secrets.token_urlsafe(16)
    stack = DemoStack(StackOptions(password=password), tmp_path_factory.mktemp("stack"))
    try:
        urls = asyncio.run(stack.start())
        yield Running(stack, urls, password)
    finally:
        pids = stack.pids()
        stack.stop()
    left = [pid for pid in pids if alive(pid)]
    assert not left, f"processes left behind after stop(): {left}"


def prometheus_data(urls: StackUrls, path: str) -> Any:
    with http() as client:
        resp = client.get(urls.prometheus + path)
        resp.raise_for_status()
        return resp.json()["data"]


@pytest.mark.slow
@needs_binaries
def test_stack_starts_with_every_target_up(running: Running) -> None:
    targets = prometheus_data(running.urls, "/api/v1/targets?state=active")["activeTargets"]
    by_job = {t["labels"]["job"]: t for t in targets}
    assert set(by_job) == {"web", "storage"}
    for job, target in by_job.items():
        assert target["health"] == "up", target
        assert target["labels"]["service"] == job
    assert running.stack.timings["total"] < 30
    assert {"validate", "sink", "storage", "proxy", "web", "alertmanager", "prometheus",
            "prometheus_discovery", "total"} <= set(running.stack.timings)


@pytest.mark.slow
@needs_binaries
def test_prometheus_knows_the_alertmanager(running: Running) -> None:
    managers = prometheus_data(running.urls, "/api/v1/alertmanagers")["activeAlertmanagers"]
    assert [m["url"] for m in managers] == [running.urls.alertmanager + "/api/v2/alerts"]


@pytest.mark.slow
@needs_binaries
def test_loaded_rules_link_runbooks_on_the_running_web(running: Running) -> None:
    groups = prometheus_data(running.urls, "/api/v1/rules")["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(rules) == {"ServiceDown", "HighErrorRate", "SlowRequests", "UploadFailureSpike"}
    with http() as client:
        for name, rule in rules.items():
            url = rule["annotations"]["runbook_url"]
            assert url == f"{running.urls.web}/runbooks/{name}"
            assert client.get(url).status_code == 200, url


@pytest.mark.slow
@needs_binaries
def test_password_is_never_on_a_command_line_nor_in_a_log(running: Running) -> None:
    for pid in running.stack.pids():
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert running.password.encode() not in cmdline, pid
    for name, path in running.stack.log_paths().items():
        assert running.password not in path.read_text(encoding="utf-8", errors="replace"), name


@pytest.mark.slow
@needs_binaries
def test_error_fault_on_storage_fires_high_error_rate_and_notifies_the_sink(
        running: Running) -> None:
    """A healthy baseline stays silent; a 500 fault between web and storage is alerted on."""
    urls = running.urls
    with http() as client:
        login = client.post(urls.web + "/api/login",
                            json={"username": "demo", "password": running.password})
        login.raise_for_status()
        auth = {"Authorization": f"Bearer {login.json()['token']}"}

        stop = threading.Event()
        statuses: list[int] = []

        def uploads() -> None:
            # A probe-like load: a few uploads and health checks per second, bounded.
            with http() as probe:
                deadline = time.monotonic() + 60
                while not stop.is_set() and time.monotonic() < deadline:
                    resp = probe.post(urls.web + "/api/uploads", headers=auth,
                                      files={"file": ("probe.txt", b"readygate probe")})
                    statuses.append(resp.status_code)
                    probe.get(urls.web + "/health")
                    stop.wait(0.1)

        loader = threading.Thread(target=uploads, daemon=True)
        loader.start()
        try:
            # Baseline: at least one evaluation over the healthy uploads and nothing fires.
            poll(lambda: len(statuses) >= 10, timeout=15, what="10 healthy uploads")
            assert set(statuses) == {201}
            assert prometheus_data(urls, "/api/v1/alerts")["alerts"] == []

            injected_at = time.time()
            fault = client.post(urls.proxy + "/_readygate/faults", json={
                "kind": "http_error", "status": 500, "rate": 1.0, "path_prefix": "/objects",
                "ttl_s": 30})
            assert fault.status_code == 201, fault.text

            def firing() -> list[Any]:
                alerts = prometheus_data(urls, "/api/v1/alerts")["alerts"]
                return [a for a in alerts if a["labels"]["alertname"] == "HighErrorRate"
                        and a["state"] == "firing" and a["labels"].get("service") == "web"]

            def notified() -> list[Any]:
                resp = client.get(urls.sink + "/api/notifications",
                                  params={"alertname": "HighErrorRate", "status": "firing"})
                return [n for n in resp.json()["notifications"]
                        if n["received_at"] >= injected_at]

            alert, _ = poll(firing, timeout=20, what="HighErrorRate firing in Prometheus")
            assert alert[0]["annotations"]["runbook_url"] == (
                f"{urls.web}/runbooks/HighErrorRate")
            notes, _ = poll(notified, timeout=20, what="HighErrorRate webhook in the sink")
            latency = notes[0]["received_at"] - injected_at
            print(f"fault injected -> HighErrorRate webhook in the sink: {latency:.2f}s")
            assert notes[0]["labels"]["service"] == "web"
            assert 500 <= max(statuses) < 600
        finally:
            stop.set()
            loader.join(10)
            client.delete(urls.proxy + "/_readygate/faults")
