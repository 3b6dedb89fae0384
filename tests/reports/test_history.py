"""History: a run compared with the previous report of its gate shows regressions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from readygate.cli import main
from reports.history import compare, compare_for, history_reports
from reports.model import Report
from reports.render import render_json, render_markdown
from reports.writer import archive_report
from tests.reports.conftest import make_check, make_report


def _data(report: Report) -> dict[str, object]:
    return json.loads(render_json(report))  # type: ignore[no-any-return]


def test_a_check_that_stopped_passing_is_a_regression() -> None:
    before = make_report(make_check("pass", "alert fires", latency=2.0))
    now = make_report(make_check("fail", "alert fires", latency=None))
    cmp = compare(now, _data(before))
    assert "alert fires: fail (was pass)" in cmp["regressions"]
    assert "verdict not_ready (was ready)" in cmp["regressions"]
    assert cmp["checks"][0]["regressed"] is True


def test_slower_time_to_detect_is_a_regression_but_jitter_is_not() -> None:
    before = make_report(make_check("pass", "alert fires", latency=2.0),
                         make_check("pass", "notified", signal="notification", latency=2.5))
    now = make_report(make_check("pass", "alert fires", latency=4.1),
                      make_check("pass", "notified", signal="notification", latency=2.8))
    cmp = compare(now, _data(before))
    assert cmp["regressions"] == ["alert fires: 4.10s (was 2.00s)"]
    assert cmp["time_to_detect"]["alert fires"] == {"before": 2.0, "now": 4.1}
    md = render_markdown(_with(now, cmp))
    assert "### Compared with the previous run" in md and "+2.10s ❗" in md


def _with(report: Report, cmp: dict[str, object]) -> Report:
    report.comparison = cmp
    return report


def test_history_dir_keeps_runs_and_compares_with_the_latest(tmp_path: Path) -> None:
    for i, latency in enumerate((2.0, 2.2, 2.1)):
        r = make_report(make_check("pass", "alert fires", latency=latency))
        r.started_at += i * 100
        archive_report(r, tmp_path)
    assert len(history_reports(tmp_path, "release")) == 3
    now = make_report(make_check("pass", "alert fires", latency=2.3))
    now.started_at += 1000
    cmp = compare_for(now, history_dir=tmp_path)
    assert cmp is not None and cmp["checks"][0]["latency_before"] == 2.1
    assert cmp["checks"][0]["trend"] == [2.0, 2.2, 2.1, 2.3]
    assert compare_for(now, history_dir=tmp_path / "empty") is None


def test_a_previous_file_that_is_not_a_report_is_exit_3(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "old.json"
    bad.write_text("{not json")
    assert main(["run", "release", "--previous", str(bad)]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"readygate: {bad}: cannot read previous report") and err.count("\n") == 1
