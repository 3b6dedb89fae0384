"""Safety of `readygate drill`: signals mid-fault roll back, stop load, write a partial report;
after SIGKILL the fault expires by its TTL on a proxy readygate did not start."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from core.procs import ManagedProcess
from tests.e2e.conftest import assert_all_stopped

DEMO_JOURNEYS = str(Path(__file__).resolve().parents[2] / "demo" / "journeys.yaml")

ROOT = Path(__file__).resolve().parents[2]


def faults(proxy_url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(proxy_url + "/_readygate/faults", timeout=5).json()
    return body


def write_drill(tmp_path: Path, proxy_url: str, *, ttl_s: float, load: bool) -> tuple[Path, Path]:
    config = {"version": 1,
              "target": {"name": "signals", "environment": "staging",
                         "services": {"web": proxy_url}, "fault_proxies": {"web": proxy_url},
                         "credentials": {"username": "demo", "password": "pw-signal-test"}},
              "probes": {"journeys": ["health"], "journeys_file": DEMO_JOURNEYS,
                         "interval_s": 0.2, "timeout_s": 2}}
    scenario: dict[str, Any] = {
        "scenario": {"baseline": {"min_duration_s": 0.5, "max_duration_s": 5},
                     "fault": {"kind": "http_error", "service": "web", "status": 503,
                               "ttl_s": ttl_s},
                     # The check below cannot settle while the fault holds: the fault phase
                     # runs until the signal arrives (bounded by its max duration).
                     "fault_phase": {"max_duration_s": 60},
                     "recovery": {"max_duration_s": 5}},
        "checks": [{"signal": "probe", "journey": "health", "consecutive": 3,
                    "deadline_s": 60}]}
    if load:
        scenario["scenario"]["load"] = {"users": 2, "spawn_rate": 2, "journeys": {"health": 1},
                                        "stats_interval_s": 0.5}
    cfg, scen = tmp_path / "readygate.yaml", tmp_path / "sig.yaml"
    cfg.write_text(yaml.safe_dump(config))
    scen.write_text(yaml.safe_dump(scenario))
    return cfg, scen


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_drill(tmp_path: Path, cfg: Path, scen: Path, *, sigint_ignored: bool = False,
                ) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    """``readygate drill`` as a child; ``sigint_ignored`` starts it as a shell without job
    control starts a background command (`readygate drill ... &` in a CI script): with
    SIGINT ignored, which readygate must still act on."""
    argv = [sys.executable, "-m", "readygate", "drill", str(scen), "--config", str(cfg),
            "--out", str(tmp_path / "out"), "--no-notify"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "CI": "true"},
                            preexec_fn=_ignore_sigint if sigint_ignored else None)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def wait_for_line(lines: queue.Queue[str], needle: str, timeout: float = 60) -> str:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"{needle!r} not printed within {timeout}s:\n" + "".join(seen))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_fault_clears_it_stops_load_and_writes_a_partial_report(
        sig: signal.Signals, proxy: ManagedProcess, tmp_path: Path) -> None:
    assert proxy.url is not None
    cfg, scen = write_drill(tmp_path, proxy.url, ttl_s=60, load=True)
    proc, lines = start_drill(tmp_path, cfg, scen, sigint_ignored=sig == signal.SIGINT)
    try:
        wait_for_line(lines, "fault injected")
        # The load is up (Locust reported) before the signal: it must be stopped too.
        wait_for_line(lines, "phase fault started")
        assert len(faults(proxy.url)["active"]) == 1
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["partial"] is True and report["verdict"] == "inconclusive"
    assert report["reason"] == f"interrupted by {sig.name}"
    fault = report["faults"][0]
    assert fault["end_reason"] == "interrupted" and fault["ended_at"] is not None
    state = faults(proxy.url)
    assert state["active"] == []
    ended = next(f for f in state["history"] if f["id"] == fault["fault_id"])
    assert ended["end_reason"] == "removed"  # rolled back by readygate, not left to the TTL
    assert report["load"]["pids"], report["load"]
    assert_all_stopped(report["load"]["pids"])
    assert report["drill"]["milestones"][5]["name"] == "rollback"
    assert report["drill"]["milestones"][5]["at"] is not None
    assert (tmp_path / "out" / "report.md").exists()
    assert "pw-signal-test" not in (tmp_path / "out" / "report.json").read_text()


def test_after_sigkill_the_fault_expires_by_its_ttl(proxy: ManagedProcess,
                                                    tmp_path: Path) -> None:
    assert proxy.url is not None
    ttl = 3.0
    cfg, scen = write_drill(tmp_path, proxy.url, ttl_s=ttl, load=False)
    proc, lines = start_drill(tmp_path, cfg, scen)
    try:
        wait_for_line(lines, "fault injected")
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    active = faults(proxy.url)["active"]
    assert len(active) == 1, "readygate died: nobody removed the fault"
    fault_id = active[0]["id"]
    deadline = time.monotonic() + ttl + 5
    while faults(proxy.url)["active"]:
        assert time.monotonic() < deadline, "the fault outlived its TTL"
        time.sleep(0.1)
    ended = next(f for f in faults(proxy.url)["history"] if f["id"] == fault_id)
    assert ended["end_reason"] == "expired"
    assert ended["ended_at"] == pytest.approx(ended["started_at"] + ttl, abs=0.01)
    # and the data plane forwards again
    assert httpx.get(proxy.url + "/health/live", timeout=5).status_code == 200


def test_the_fault_goes_in_only_once_the_load_runs(proxy: ManagedProcess,
                                                   tmp_path: Path) -> None:
    """A baseline that settles in 0.5 s still waits for Locust's users: the fault phase is
    judged under the load asked for (Locust takes seconds to start on a busy machine)."""
    assert proxy.url is not None
    cfg, scen = write_drill(tmp_path, proxy.url, ttl_s=30, load=True)
    data = yaml.safe_load(scen.read_text())
    data["scenario"]["fault_phase"] = {"max_duration_s": 2}
    data["scenario"]["recovery"] = {"max_duration_s": 1}
    scen.write_text(yaml.safe_dump(data))
    argv = [sys.executable, "-m", "readygate", "drill", str(scen), "--config", str(cfg),
            "--out", str(tmp_path / "out"), "--no-notify"]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CI": "true"})
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    running_at, fault_at = report["load"]["running_at"], report["faults"][0]["started_at"]
    assert running_at is not None and report["load"]["started_at"] < running_at < fault_at
    assert report["drill"]["load_by_phase"]["fault"]["samples"] >= 1
    notes = [t["message"] for t in report["timeline"] if t["type"] == "Note"]
    assert any(n.startswith("load running: 2 users") for n in notes), notes
    assert_all_stopped(report["load"]["pids"])
