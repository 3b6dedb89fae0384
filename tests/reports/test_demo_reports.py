"""`readygate demo` writes all four report files, and each is valid for its consumer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from junitparser import JUnitXml

from tests.e2e.conftest import ROOT, assert_all_stopped
from tests.reports.conftest import SCHEMA

pytestmark = pytest.mark.slow


def test_demo_writes_json_junit_markdown_and_html(tmp_path: Path) -> None:
    out, history = tmp_path / "out", tmp_path / "history"
    proc = subprocess.run(
        [sys.executable, "-m", "readygate", "demo", "--out", str(out), "--history", str(history)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, env={**os.environ, "CI": "true"})
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert {p.name for p in out.iterdir() if p.is_file()} == {
        "report.json", "junit.xml", "report.md", "report.html"}
    data = json.loads((out / "report.json").read_text())
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(data)
    xml = JUnitXml.fromfile(str(out / "junit.xml"))
    assert xml.tests == len(data["checks"]) and xml.failures == 0
    page = (out / "report.html").read_text()
    assert "<svg" in page and 'fill="url(#hatch)"' in page and "READY" in page
    assert len(list((history / "release").glob("*.json"))) == 1
    assert "\x1b" not in proc.stderr, "CI output has no escape codes"
    assert "checks settled" in proc.stderr
    assert_all_stopped(data["stack"]["pids"])
