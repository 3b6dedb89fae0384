"""Progress: phase, fault and checks settled/pending; quiet and line-oriented in CI."""

from __future__ import annotations

import io

from core.events import (
    CheckSettled,
    FaultInjected,
    FaultRemoved,
    PhaseStarted,
    ProbeFinished,
    RunFinished,
    RunStarted,
)
from probes.model import ProbeResult
from reports.console import ConsoleProgress, is_interactive
from tests.reports.conftest import make_check


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(progress: ConsoleProgress) -> None:
    t = progress.t0
    progress(RunStarted(t, "release", "demo"))
    progress(PhaseStarted(t + 0.1, "baseline"))
    progress(CheckSettled(t + 1, make_check("pass", "trace spans web+storage")))
    progress(FaultInjected(t + 5, "f-1", "storage", "http_error", {}, t + 95))
    for i in range(20):
        progress(ProbeFinished(t + 5.1 + i / 100, ProbeResult(
            journey="upload", started_at=t + 5, duration_s=0.01, success=False,
            trace_id="0" * 32, error="HTTP 500")))
    progress(CheckSettled(t + 7, make_check("fail", "alert fires")))
    progress(FaultRemoved(t + 8, "f-1", "storage", "rollback"))
    progress(RunFinished(t + 9, "not_ready"))


def test_ci_output_is_line_oriented_with_counts_and_no_escape_codes() -> None:
    out = io.StringIO()
    _run(ConsoleProgress(out, total_checks=3, interactive=False))
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines[0].endswith("gate release on demo (3 checks)")
    assert "phase baseline started · 0/3 checks settled, 3 pending" in lines[1]
    assert "check PASS  [1/3] trace spans web+storage" in text
    assert "check FAIL  [2/3] alert fires" in text
    assert sum("probe upload failing" in line for line in lines) == 1, "once per streak"
    assert "fault removed: f-1 on storage (rollback, held 3.0s)" in text
    assert lines[-1].endswith("run finished: not_ready · 2/3 checks settled, 1 pending, "
                              "1 not passed")


def test_a_terminal_gets_a_status_line_with_the_active_fault() -> None:
    out = Tty()
    progress = ConsoleProgress(out, total_checks=3, interactive=True)
    _run(progress)
    text = out.getvalue()
    assert "\r\x1b[2K" in text
    assert "phase baseline · FAULT ACTIVE http_error on storage" in text
    assert "(upload failing)" in text
    assert text.endswith("1 not passed\n"), "no status line is left behind at the end"


def test_ci_variable_or_a_pipe_means_not_interactive() -> None:
    assert is_interactive(Tty(), {}) is True
    assert is_interactive(Tty(), {"CI": "true"}) is False
    assert is_interactive(Tty(), {"CI": "false"}) is True
    assert is_interactive(io.StringIO(), {}) is False
