"""`readygate demo --backends real` as a user runs it: the demo services send OTLP to a real
OpenTelemetry Collector, which fans traces out to a real Jaeger and logs to a real
VictoriaLogs; the gate reads them there (errors and notifications stay on the sink)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import ROOT, assert_all_stopped, demo_argv, fast_config, run_demo
from tests.peers.conftest import peer_binary

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def peers_built() -> None:
    for peer in ("otelcol", "jaeger", "victorialogs", "victoriametrics"):
        peer_binary(peer)


def test_real_backends_demo_ends_ready_reading_jaeger_victorialogs_and_victoriametrics(
        peers_built: None, tmp_path: Path) -> None:
    run = run_demo(tmp_path, "--backends", "real", "--config", str(fast_config(tmp_path)))
    assert run.returncode == 0, run.stderr[-3000:]
    report = run.report
    assert report["verdict"] == "ready"
    components = report["stack"]["components"]
    assert {"collector", "jaeger", "victorialogs", "victoriametrics"} <= set(components)
    trace = run.check("trace", "baseline")
    assert trace["status"] == "pass" and "jaeger" in str(trace["evidence"]).lower(), trace
    logs = run.check("logs", "baseline")
    assert logs["status"] == "pass" and logs["evidence"]["backend"] == "victorialogs", logs
    metric = run.check("metric", "baseline")
    assert metric["status"] == "pass" and metric["evidence"]["backend"] == "victoriametrics"
    # VictoriaMetrics stopped with the demo: its vmui link is kept as text, not offered
    assert "/vmui/" in metric["evidence"]["link_at_run"] and "link" not in metric["evidence"]
    assert run.check("metric_contract")["status"] == "pass"
    # errors and notifications still come from the sink
    assert run.check("error_event")["status"] == "pass"
    assert run.check("notification")["status"] == "pass"
    assert (run.out / "logs" / "otelcol.log").exists()
    assert_all_stopped(report["stack"]["pids"])


def baseline_only(tmp_path: Path) -> Path:
    """The release gate cut to its baseline trace and logs checks, no fault (a short run)."""
    path = fast_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    gate = config["gates"]["release"]
    gate["scenario"] = {"baseline": {"min_duration_s": 3, "max_duration_s": 20}}
    gate["checks"] = [c for c in gate["checks"] if c["signal"] in ("trace", "logs")
                      and c.get("phase") == "baseline"]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_real_backends_demo_without_propagation_is_not_ready_on_jaeger(
        peers_built: None, tmp_path: Path) -> None:
    run = run_demo(tmp_path, "--backends", "real", "--sabotage", "no_propagation",
                   "--config", str(baseline_only(tmp_path)))
    assert run.returncode == 1, run.stderr[-3000:]
    assert run.report["verdict"] == "not_ready"
    trace = run.check("trace", "baseline")
    assert trace["status"] == "fail" and "storage" in trace["message"], trace
    assert run.check("logs", "baseline")["status"] == "pass"  # only the traces broke
    assert_all_stopped(run.report["stack"]["pids"])


def test_real_backends_demo_without_the_peers_is_exit_3_naming_the_build_script(
        tmp_path: Path) -> None:
    proc = subprocess.run(demo_argv(tmp_path / "out", "--backends", "real"), cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "READYGATE_PEERS_BIN": str(tmp_path)})
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "scripts/install-peers.sh" in lines[0], proc.stderr
    assert "otelcol, jaeger, victorialogs, victoriametrics" in lines[0]
    assert not (tmp_path / "out").exists()  # nothing started, nothing written
