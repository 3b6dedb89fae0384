"""Pytest wiring shared by readygate's own tests (and, later, the gate suites in gates/).

A session-wide guard fails the run if any process started by the tests outlives them:
tests must stop every Prometheus, Alertmanager, browser and demo service they start.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

# Real demo services (web, storage, sink) on free ports, shared by tests/demo and tests/probes.
# gates.pytest_plugin: the gate suites' fixtures (target, backends, probe results, timeline),
# so plain `pytest gates/ --readygate-run out/demo/report.json` works.
pytest_plugins = ["tests.fixtures.demo_system", "gates.pytest_plugin"]


def _descendants(root: int) -> dict[int, str]:
    """PID -> command line of every live descendant of ``root`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    cmdlines: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            state = stat.rsplit(")", 1)[1].split()[0]
            if state == "Z":
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
        cmdlines[int(entry.name)] = cmd.strip()
    out: dict[int, str] = {}
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            out[child] = cmdlines.get(child, "?")
            stack.append(child)
    return out


# Under pytest-xdist (`make test` runs `-n 2 --dist loadgroup`) the tests that start whole
# stacks (Prometheus, Alertmanager, demo services, Chromium, peers) or measure timing run
# one after another on one worker, as they would alone; the rest spread over the workers.
SERIAL = ("tests/selftest/", "tests/e2e/", "tests/stack/", "tests/demo/", "tests/scenarios/",
          "tests/peers/", "tests/chaos/", "tests/probes/test_timing_and_schedule.py",
          "tests/probes/test_workers.py", "tests/probes/test_hot_path.py",
          "tests/probes/test_browser", "tests/probes/test_web_vitals.py",
          "tests/probes/test_probe_cli.py", "tests/probes/test_blackbox_parity.py",
          "tests/reports/test_demo_reports.py", "tests/gates/test_library_demo.py",
          "tests/gates/test_real_prometheus.py", "tests/gates/test_alert_truth.py",
          "tests/gates/test_suites.py", "tests/readygate/test_cli.py",
          "tests/readygate/test_input_limits.py")


# ... except these, which start no stack and time nothing (CLI subprocesses, fake backends)
SPREAD = ("tests/selftest/test_bad_configs.py", "tests/selftest/test_backend_garbage.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the stack-starting and timing tests in one xdist group (see SERIAL)."""
    for item in items:
        if item.nodeid.startswith(SERIAL) and not item.nodeid.startswith(SPREAD):
            item.add_marker(pytest.mark.xdist_group("serial"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session when a test left a process running."""
    deadline = time.monotonic() + 5.0  # Chromium children linger 1-2 s after close
    left = _descendants(os.getpid())
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = _descendants(os.getpid())
    if left:
        lines = "\n".join(f"  {pid}: {cmd[:150]}" for pid, cmd in sorted(left.items()))
        print(f"\nreadygate: processes left running by the tests:\n{lines}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
