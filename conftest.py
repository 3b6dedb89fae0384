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


# `make test` runs pytest-xdist with `-n 3 --dist loadfile` on 2 cores: most of the suite
# waits on real servers, scrape and rule intervals and deadlines, not on the CPU (two workers
# kept the CPU 56 % busy). A file is one unit of work, so a module's stack fixture starts
# once. (`--dist loadgroup` silently stopped grouping with pytest 9.2: pytest-xdist#1386.)
# The heaviest files go first, so no long file starts last and stretches the run.
HEAVIEST = ("tests/selftest/test_selftest.py", "tests/e2e/test_third_party.py",
            "tests/stack/test_stack_gates.py", "tests/scenarios/test_drill_demo.py",
            "tests/e2e/test_demo.py", "tests/selftest/test_outages.py",
            "tests/selftest/test_interrupts.py", "tests/peers/test_demo_real_backends.py",
            "tests/gates/test_alert_truth.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The heaviest files first (`--durations`), then the other end-to-end (`slow`) ones."""
    def weight(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        if path in HEAVIEST:
            return HEAVIEST.index(path)
        return len(HEAVIEST) + (0 if item.get_closest_marker("slow") else 1)
    items.sort(key=weight)  # stable: a file's tests keep their order


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
