"""junit.xml is accepted by a real JUnit parser (junitparser) and maps statuses faithfully."""

from __future__ import annotations

from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped

from core import redact
from reports.junit import render_junit
from reports.model import Report
from reports.writer import write_reports
from tests.reports.conftest import make_check, make_report


def _parse(tmp_path: Path, text: str) -> JUnitXml:
    path = tmp_path / "junit.xml"
    path.write_text(text, encoding="utf-8")
    return JUnitXml.fromfile(str(path))


def test_a_real_report_parses_with_one_case_per_check(tmp_path: Path,
                                                      demo_report: Report) -> None:
    xml = _parse(tmp_path, render_junit(demo_report))
    cases = [case for suite in xml for case in suite]
    assert [c.name for c in cases] == [c.name for c in demo_report.checks]
    assert {suite.name for suite in xml} == {"release.baseline", "release.fault",
                                             "release.recovery"}
    assert all(case.is_passed for case in cases)
    assert xml.tests == len(demo_report.checks) and xml.failures == 0


def test_fail_error_and_skipped_map_to_junit_elements(tmp_path: Path) -> None:
    report = make_report(make_check("pass", "ok"), make_check("fail", "late alert"),
                         make_check("error", "prometheus down"), make_check("skipped", "later"),
                         make_check("fail", "resolved", severity="warning"))
    xml = _parse(tmp_path, render_junit(report))
    by_name = {case.name: case for suite in xml for case in suite}
    assert by_name["ok"].is_passed
    fail = by_name["late alert"].result[0]
    assert isinstance(fail, Failure) and fail.message == "late alert fail"
    assert isinstance(by_name["prometheus down"].result[0], Error)
    assert isinstance(by_name["later"].result[0], Skipped)
    warning = by_name["resolved"].result[0]
    assert isinstance(warning, Failure) and warning.type == "warning"
    suite = next(iter(xml))
    props = {p.name: p.value for p in suite.properties()}
    assert props["verdict"] == "not_ready"
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (5, 2, 1, 1)


def test_control_characters_and_markup_cannot_break_the_xml(tmp_path: Path) -> None:
    report = make_report(make_check("fail", "a <b> & \"c\"", message="bell\x07 esc\x1b[31m ]]>"))
    xml = _parse(tmp_path, render_junit(report))
    case = next(case for suite in xml for case in suite)
    assert case.name == 'a <b> & "c"'
    assert case.result[0].message == "bell esc[31m ]]>"


def test_written_junit_is_scrubbed_of_secrets(tmp_path: Path) -> None:
    redact.register("s3cret-junit-token")
    report = make_report(make_check("fail", "logs", message="leaked s3cret-junit-token",
                                    evidence={"line": "token=s3cret-junit-token"}))
    write_reports(report, tmp_path)
    text = (tmp_path / "junit.xml").read_text()
    assert "s3cret-junit-token" not in text and "leaked ***" in text
