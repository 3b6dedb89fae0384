"""A fault that changed nothing is named as such: in the report, not blamed on the checks.

Real processes: the service is a launcher serving HTTP from its child (tests/fixtures/
launcher.py); the fault is a real process fault; the probes are real HTTP journeys.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from readygate.config import parse_config
from readygate.runner import RunOptions, run_gate
from reports.model import Report
from reports.render import render_console, render_markdown
from tests.fixtures.launcher import LAUNCHER_MARK, Launched, answers, launch, wait_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Launched]:
    with launch(tmp_path / "web") as service:
        yield service


@pytest.fixture
def bystander(tmp_path: Path) -> Iterator[Path]:
    """A process that serves nothing anyone probes; its pidfile."""
    pidfile = tmp_path / "batch.pid"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                             LAUNCHER_MARK])
    pidfile.write_text(str(proc.pid))
    try:
        wait_for(lambda: LAUNCHER_MARK in Path(f"/proc/{proc.pid}/cmdline").read_text(), 10,
                 "bystander exec'd")
        yield pidfile
    finally:
        proc.kill()
        proc.wait(5)


def config_text(url: str, pidfile: Path, batch: Path, fault: str,
                probe_timeout_s: float = 1.0) -> str:
    return f"""
target:
  name: local
  services: {{web: "{url}"}}
  processes:
    web: {{pidfile: "{pidfile}", command_contains: {LAUNCHER_MARK}}}
    batch: {{pidfile: "{batch}", command_contains: {LAUNCHER_MARK}}}
journeys:
  ping:
    timeout_s: {probe_timeout_s}
    retry: {{attempts: 1}}
    steps: [{{url: /}}]
probes: {{journeys: [ping], interval_s: 0.1}}
gates:
  g:
    scenario:
      baseline: {{min_duration_s: 0.5, max_duration_s: 5}}
      fault: {fault}
      fault_phase: {{max_duration_s: 5}}
      recovery: {{max_duration_s: 5}}
    checks:
      - {{signal: health, service: web, paths: [/], expect: down, deadline_s: 2.5}}
      - {{signal: probe, phase: recovery, journey: ping, deadline_s: 5}}
"""


async def run(tmp_path: Path, web: Launched, fault: str,
              probe_timeout_s: float = 1.0) -> Report:
    text = config_text(web.url, web.pidfile, tmp_path / "batch.pid", fault, probe_timeout_s)
    config = parse_config(text, str(tmp_path / "r.yaml"))
    options = RunOptions(out_dir=tmp_path / "out", stdout=io.StringIO(), stderr=io.StringIO())
    return await run_gate(config, "g", options)


def notes(report: Report) -> list[tuple[str, str]]:
    return [(e["level"], e["message"]) for e in report.timeline if e["type"] == "Note"]


async def test_a_fault_nobody_noticed_is_named_next_to_the_failing_check(
        tmp_path: Path, web: Launched, bystander: Path) -> None:
    # a roomy timeout: on a busy machine a 1 s probe of a healthy web can time out, and
    # the fault would then seem to have had an effect
    report = await run(tmp_path, web,
                       "{kind: process, service: batch, action: stop, ttl_s: 30}",
                       probe_timeout_s=5.0)
    health = next(c for c in report.checks if c.signal == "health")
    assert health.status == "fail"  # web never went down: the fault paused the wrong thing
    assert report.verdict == "not_ready"
    during = [p for p in report.probes if p["started_at"] >= report.faults[0]["started_at"]
              and p["started_at"] <= report.faults[0]["ended_at"]]
    assert during and all(p["success"] for p in during)
    assert report.fault_effect is not None
    assert report.fault_effect.startswith("no observable effect: all ")
    assert report.fault_effect.endswith(" probes during the fault succeeded")
    assert ("warning", f"the fault had {report.fault_effect}") in notes(report)
    assert report.to_dict()["fault_effect"] == report.fault_effect
    md = render_markdown(report)
    assert f"> ⚠️ Fault effect: the fault had {report.fault_effect}: a failing fault-phase " \
           "check may mean the fault never reached the service" in md
    row = next(line for line in md.splitlines() if "web / reports down" in line)
    assert row.startswith("| ❌ |") and row.endswith("*the fault had no observable effect* |")
    console = render_console(report)
    assert f"fault effect: the fault had {report.fault_effect}" in console
    assert Report.from_dict(report.to_dict()).fault_effect == report.fault_effect


async def test_a_fault_the_probes_saw_has_no_such_note(
        tmp_path: Path, web: Launched, bystander: Path) -> None:
    report = await run(tmp_path, web, "{kind: process, service: web, action: stop, ttl_s: 30}")
    assert report.faults[0]["detail"]["pids"] == sorted([web.launcher.pid, web.child])
    during = [p for p in report.probes if p["started_at"] >= report.faults[0]["started_at"]
              and p["started_at"] <= report.faults[0]["ended_at"]]
    assert any(not p["success"] for p in during)  # paused: the probes timed out
    assert report.fault_effect is None
    assert "fault_effect" not in report.to_dict()
    assert "Fault effect" not in render_markdown(report)
    assert answers(web.url)  # resumed by the rollback


async def test_a_fault_without_effect_at_injection_is_recorded_and_inconclusive(
        tmp_path: Path, web: Launched, bystander: Path) -> None:
    report = await run(tmp_path, web, "{kind: process, service: web, action: kill, "
                                      "scope: pid, verify_s: 1, ttl_s: 30}")
    expected = (f"fault not injected: process fault on 'web' had no effect: pid {web.child} (")
    assert report.reason is not None and report.reason.startswith(expected)
    assert "still running 1s after SIGKILL; scope pid signals only PID" in report.reason
    assert ("error", report.reason) in notes(report)
    assert report.verdict == "inconclusive"
    assert not report.faults
    for check in report.checks:
        assert check.status == "skipped"
        assert check.message == "skipped: the fault was not injected"
    assert answers(web.url)  # the launcher is dead, its child serves on


async def test_the_recovery_phase_waits_for_every_journey_the_fault_broke(
        tmp_path: Path, web: Launched, bystander: Path) -> None:
    # `ping` recovers at once and settles the recovery check; `slow` (every 3 s) met the
    # fault too, so the drill's recovery is measured only when it has succeeded again.
    text = config_text(web.url, web.pidfile, tmp_path / "batch.pid",
                       "{kind: process, service: web, action: stop, ttl_s: 30}")
    text = text.replace("probes: {journeys: [ping], interval_s: 0.1}", """\
  slow:
    timeout_s: 1.0
    interval_s: 3
    retry: {attempts: 1}
    steps: [{url: /}]
probes: {journeys: [ping, slow], interval_s: 0.1}""")
    text = text.replace("fault_phase: {max_duration_s: 5}",
                        "fault_phase: {min_duration_s: 3.5, max_duration_s: 6}")
    text = text.replace("recovery: {max_duration_s: 5}", "recovery: {max_duration_s: 10}")
    text = text.replace("deadline_s: 2.5", "deadline_s: 5")  # a stopped web: 3 s timeouts
    config = parse_config(text, str(tmp_path / "r.yaml"))
    options = RunOptions(out_dir=tmp_path / "out", stdout=io.StringIO(), stderr=io.StringIO())
    report = await run_gate(config, "g", options)
    assert report.verdict == "ready", render_console(report)
    fault = report.faults[0]
    slow = [p for p in report.probes if p["journey"] == "slow"]
    assert any(not p["success"] and fault["started_at"] <= p["started_at"] < fault["ended_at"]
               for p in slow), slow
    back = next(p for p in slow if p["success"] and p["started_at"] >= fault["ended_at"])
    assert report.drill is not None
    at = {m["name"]: m["at"] for m in report.drill["milestones"]}
    assert at["probes_recovered"] == pytest.approx(back["started_at"] + back["duration_s"])
    assert report.drill["time_to_recover_s"] == pytest.approx(
        at["probes_recovered"] - fault["ended_at"], abs=1e-3)


async def test_a_check_cut_short_by_its_phase_names_the_bound_to_raise(
        tmp_path: Path, web: Launched, bystander: Path) -> None:
    text = config_text(web.url, web.pidfile, tmp_path / "batch.pid",
                       "{kind: process, service: batch, action: stop, ttl_s: 30}")
    text = text.replace("fault_phase: {max_duration_s: 5}", "fault_phase: {max_duration_s: 1}")
    text = text.replace("deadline_s: 2.5", "deadline_s: 20")  # web never goes down
    config = parse_config(text, str(tmp_path / "r.yaml"))
    options = RunOptions(out_dir=tmp_path / "out", stdout=io.StringIO(), stderr=io.StringIO())
    report = await run_gate(config, "g", options)
    health = next(c for c in report.checks if c.signal == "health")
    assert health.status == "fail" and report.verdict == "not_ready"
    assert health.message == ("not settled when the fault phase reached its max duration "
                              "(1s, scenario.fault_phase.max_duration_s)")
