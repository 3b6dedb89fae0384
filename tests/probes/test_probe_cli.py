"""`readygate probe run` and `readygate probe serve` as real processes, scraped by Prometheus."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.procs import ManagedProcess
from demo.stack import free_port
from tests.fixtures.demo_system import Demo, eventually

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "demo" / "journeys-examples.yaml"


def write_config(tmp: Path, web: str) -> Path:
    path = tmp / "readygate.yaml"
    path.write_text(f"""version: 1
target:
  services: {{web: "{web}"}}
  credentials: {{username: demo, password: "${{TEST_PW}}"}}
probes: {{timeout_s: 5, interval_s: 0.5, journeys_file: "{ROOT / 'demo' / 'journeys.yaml'}"}}
""", encoding="utf-8")
    return path


def readygate(*args: str, password: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TEST_PW": password, "DEMO_PASSWORD": password}
    return subprocess.run([sys.executable, "-m", "readygate.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env, cwd=ROOT)


@pytest.fixture()
def config(demo: Demo, tmp_path: Path) -> Path:
    url = demo.web().url
    assert url is not None
    return write_config(tmp_path, url)


def test_probe_run_prints_a_table_and_exits_0_when_all_pass(demo: Demo, config: Path) -> None:
    out = readygate("probe", "run", "--config", str(config), password=demo.password)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["STATUS", "JOURNEY", "/"]
    for journey in ("health", "login", "upload"):
        assert any(line.startswith("PASS") and f" {journey} " in line for line in lines)
    total = sum(1 for line in lines if line.startswith(("PASS", "FAIL")))
    assert total >= 3 and f"{total}/{total} journeys passed" in out.stdout
    assert demo.password not in out.stdout + out.stderr


def test_probe_run_json_with_a_journeys_file_and_a_wrong_password_exits_1(
        demo: Demo, config: Path) -> None:
    wrong = "Wr0ng-password-for-the-leak-scan"
    out = readygate("probe", "run", "--config", str(config), "-j", str(EXAMPLE), "--json",
                    "upload-api", "login-form", password=wrong)
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    errors = {r["journey"]: r["error"] for r in data["results"]}
    assert errors == {"upload-api": "login: POST /api/login returned 401, expected 200",
                      "login-form": "login: POST /login returned 401, expected 303"}
    for r in data["results"]:
        assert r["user_agent"].endswith(f"(journey={r['journey']})")
        assert all(s["traceparent"].split("-")[1] == r["trace_id"]
                   for s in r["steps"] if s["traceparent"])
    assert wrong not in out.stdout + out.stderr


def test_probe_run_with_a_bad_journeys_file_exits_3_with_one_line(demo: Demo, config: Path,
                                                                   tmp_path: Path) -> None:
    bad = tmp_path / "j.yaml"
    bad.write_text("journeys:\n  x:\n    steps:\n      - {url: /, expct: {status: 200}}\n")
    out = readygate("probe", "run", "--config", str(config), "-j", str(bad),
                    password=demo.password)
    assert out.returncode == 3
    assert out.stderr == (f"readygate: {bad}:4 journeys.x.steps[0].expct: unknown key 'expct' "
                          "(did you mean 'expect'?)\n")


def test_probe_run_of_an_unknown_journey_exits_3(demo: Demo, config: Path) -> None:
    out = readygate("probe", "run", "--config", str(config), "helth", password=demo.password)
    assert out.returncode == 3 and "no journey named 'helth'" in out.stderr


@pytest.fixture()
def serve(demo: Demo, config: Path, tmp_path: Path) -> Iterator[ManagedProcess]:
    """`readygate probe serve` on a free port with the built-ins and the example journeys."""
    proc = ManagedProcess("probe-serve", [
        sys.executable, "-m", "readygate.cli", "probe", "serve", "--config", str(config),
        "-j", str(EXAMPLE), "--port", "0", "--location", "ci", "--interval", "0.5",
        "health", "login", "upload-api"],
        env={"TEST_PW": demo.password, "DEMO_PASSWORD": demo.password},
        log_path=tmp_path / "serve.log", cwd=ROOT)
    proc.start()
    try:
        asyncio.run(proc.wait_ready_line(30))
        yield proc
    finally:
        proc.stop()


def metric(text: str, prefix: str) -> float:
    line = next((x for x in text.splitlines() if x.startswith(prefix)), None)
    assert line is not None, f"no {prefix} in metrics"
    return float(line.rsplit(" ", 1)[1])


def test_probe_serve_metrics_probe_endpoint_and_clean_sigterm(demo: Demo,
                                                              serve: ManagedProcess) -> None:
    url = serve.url
    assert url is not None
    assert httpx.get(url + "/-/healthy", timeout=5).text == "Healthy"

    def all_ran() -> str | None:
        text = httpx.get(url + "/metrics", timeout=5).text
        done = all(f'probe_success{{journey="{j}"}}' in text
                   for j in ("health", "login", "upload-api"))
        return text if done else None
    text = eventually(all_ran, timeout=15, what="a first run of every journey")
    for journey in ("health", "login", "upload-api"):
        assert metric(text, f'probe_success{{journey="{journey}"}}') == 1.0
    assert metric(text, 'probe_http_status_code{journey="health"}') == 200.0
    assert 'probe_http_duration_seconds{journey="upload-api",phase="processing"}' in text
    assert 'readygate_step_success{journey="upload-api",step="read back"} 1.0' in text
    assert ('readygate_probe_info{journey="upload-api",kind="http",location="ci",'
            'step="clean up",target="' + str(demo.web().url) + '"} 1.0') in text
    assert 'readygate_journey_runs_total{journey="login",result="success"}' in text
    assert "readygate_journey_duration_seconds_bucket" in text
    assert demo.password not in text

    web = demo.web().url
    assert web is not None
    probe = httpx.get(url + "/probe", params={"target": web, "module": "health"}, timeout=10)
    assert probe.status_code == 200
    assert metric(probe.text, 'probe_success{journey="health"}') == 1.0
    assert metric(probe.text, 'probe_http_version{journey="health"}') == 1.1
    # http_2xx is blackbox's own module: its series, no journey label, no retry of a refusal
    down = httpx.get(url + "/probe", params={"target": "http://127.0.0.1:9", "module": "http_2xx"},
                     timeout=10)
    assert metric(down.text, "probe_success ") == 0.0
    assert metric(down.text, "probe_duration_seconds ") < 0.1
    # a module with credentials never follows a target the scrape names
    refused = httpx.get(url + "/probe", params={"target": "http://127.0.0.1:9",
                                                "module": "upload-api"}, timeout=10)
    assert refused.status_code == 403
    assert httpx.get(url + "/probe", params={"module": "health"}, timeout=5).status_code == 400

    assert serve.proc is not None
    t0 = time.monotonic()
    serve.proc.send_signal(signal.SIGTERM)
    # uvicorn re-raises SIGTERM after its graceful shutdown, so the status is -15 or 0
    assert serve.proc.wait(10) in (0, -signal.SIGTERM)
    assert time.monotonic() - t0 < 5
    assert "probe serve: stopped cleanly (3 journeys)" in serve.log_tail()


@pytest.mark.slow
def test_a_real_prometheus_scrapes_probe_serve_and_the_probe_endpoint(
        demo: Demo, serve: ManagedProcess, tmp_path: Path) -> None:
    url, web = serve.url, demo.web().url
    assert url is not None and web is not None
    exporter = url.removeprefix("http://")
    (tmp_path / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 1s, scrape_timeout: 1s}}
scrape_configs:
  - job_name: readygate
    static_configs: [{{targets: ["{exporter}"]}}]
  - job_name: blackbox-style        # an unchanged blackbox_exporter multi-target config
    metrics_path: /probe
    params: {{module: [health]}}
    static_configs: [{{targets: ["{web}"]}}]
    relabel_configs:
      - {{source_labels: [__address__], target_label: __param_target}}
      - {{source_labels: [__param_target], target_label: instance}}
      - {{target_label: __address__, replacement: "{exporter}"}}
""", encoding="utf-8")
    port = free_port()
    prom = ManagedProcess("prometheus", [
        "/usr/bin/prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
        "--web.console.templates=", "--web.console.libraries="], log_path=tmp_path / "prom.log")
    prom.start()
    try:
        api = f"http://127.0.0.1:{port}/api/v1/query"

        def query(q: str) -> list[dict[str, object]] | None:
            try:
                resp = httpx.get(api, params={"query": q}, timeout=2)
            except httpx.HTTPError:
                return None
            if resp.status_code != 200:  # 503 "Service Unavailable" while it starts
                return None
            result: list[dict[str, object]] = resp.json().get("data", {}).get("result", [])
            return result or None
        scraped = eventually(lambda: query('probe_success{job="readygate"} == 1'), timeout=30,
                             interval=0.25, what="probe_success scraped from probe serve")
        assert {r["metric"]["journey"] for r in scraped} == {  # type: ignore[index]
            "health", "login", "upload-api"}
        assert eventually(lambda: query('probe_success{job="blackbox-style",'
                                        f'instance="{web}"}} == 1'),
                          timeout=15, interval=0.25, what="the /probe multi-target scrape")
        assert query('probe_http_duration_seconds{job="readygate",phase="processing"}')
        assert query('readygate_probe_info{location="ci"}')
    finally:
        prom.stop()
