"""`readygate demo` interrupted in every phase: SIGINT/SIGTERM leave no fault, no process and a
partial report on disk; SIGKILL leaves no child behind (PR_SET_PDEATHSIG), and the fault, which
lives in the fault proxy, dies with it. (Mid-fault SIGINT: tests/e2e; a fault outliving a
SIGKILLed readygate until its TTL, on a proxy readygate did not start: tests/scenarios.)"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import _descendants
from tests.e2e.conftest import ROOT, _alive, assert_all_stopped, demo_argv, fast_config

pytestmark = pytest.mark.slow

# The console line that marks each phase (reports.console / demo.stack progress).
PHASES = {"stack": "sink ready at", "baseline": "phase baseline started",
          "fault": "fault injected", "recovery": "phase recovery started"}


def start_demo(tmp_path: Path) -> tuple[subprocess.Popen[str], queue.Queue[str], Path]:
    out = tmp_path / "out"
    proc = subprocess.Popen(demo_argv(out, "--config", str(fast_config(tmp_path)), "--no-notify"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "CI": "true"})
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines, out


def wait_for(lines: queue.Queue[str], needle: str, timeout: float = 90) -> None:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if needle in line:
            return
    raise AssertionError(f"{needle!r} not printed within {timeout}s:\n" + "".join(seen))


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(("phase", "sig"), [
    ("stack", signal.SIGTERM), ("baseline", signal.SIGINT), ("fault", signal.SIGTERM),
    ("recovery", signal.SIGINT)], ids=["stack-SIGTERM", "baseline-SIGINT", "fault-SIGTERM",
                                       "recovery-SIGINT"])
def test_a_signal_in_any_phase_leaves_a_partial_report_and_nothing_running(
        phase: str, sig: signal.Signals, tmp_path: Path) -> None:
    proc, lines, out = start_demo(tmp_path)
    try:
        wait_for(lines, PHASES[phase])
        children = _descendants(proc.pid)
        assert children, "the demo started no process?"
        signalled = time.time()
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        stop(proc)
    assert proc.returncode == 2
    report = json.loads((out / "report.json").read_text())
    assert report["partial"] is True and report["verdict"] == "inconclusive"
    assert report["reason"].startswith(f"interrupted by {sig.name}")
    assert any(c["status"] == "skipped" for c in report["checks"])
    assert (out / "report.md").exists() and (out / "junit.xml").exists()
    if phase in ("fault", "recovery"):
        fault = report["faults"][0]
        assert fault["ended_at"] is not None
        assert fault["end_reason"] == ("interrupted" if phase == "fault" else "rollback")
    else:
        assert report["faults"] == []
    pids = report.get("stack", {}).get("pids") or list(children)
    # Chromium's helpers outlive a closed browser by a second or two (the session guard in
    # conftest.py allows the same): give them 5 s, then nothing of ours may run
    ours = sorted(set(pids) | set(children))
    deadline = time.monotonic() + 5
    while any(_alive(pid, signalled + 1) for pid in ours) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert_all_stopped(ours, born_before=signalled + 1)


@pytest.mark.parametrize("phase", ["baseline", "fault"])
def test_sigkill_leaves_no_child_and_takes_the_fault_with_the_proxy(phase: str,
                                                                   tmp_path: Path) -> None:
    proc, lines, out = start_demo(tmp_path)
    try:
        wait_for(lines, PHASES[phase])
        children = _descendants(proc.pid)
        assert any("chaos.proxy" in cmd for cmd in children.values()), children
        killed = time.time()
        proc.kill()
        proc.wait(timeout=10)
    finally:
        stop(proc)
    # PR_SET_PDEATHSIG: every child gets SIGTERM when readygate dies; give them their grace.
    deadline = time.monotonic() + 15
    alive = list(children)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in children if _alive(pid, killed + 1)]
        time.sleep(0.1)
    assert not alive, {pid: children[pid] for pid in alive}
    assert not (out / "report.json").exists()  # SIGKILL: nothing could be written

