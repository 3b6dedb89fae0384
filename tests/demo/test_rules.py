"""The shipped alert rules are valid and behave as their promtool unit tests say."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from demo.stack import RULES_PATH, WEB_URL_PLACEHOLDER

RULES_TEST_PATH = RULES_PATH.with_name("alerts_test.yml")
EXPECTED_ALERTS = {"ServiceDown", "HighErrorRate", "SlowRequests", "UploadFailureSpike"}

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None,
                                reason="promtool not installed (apt-get install prometheus)")


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)


def test_promtool_check_rules_accepts_the_shipped_rules() -> None:
    result = promtool("check", "rules", RULES_PATH.name, cwd=RULES_PATH.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    # Rule-file paths in the test file are relative to it, so run from its directory.
    result = promtool("test", "rules", RULES_TEST_PATH.name, cwd=RULES_TEST_PATH.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_fail_when_a_threshold_never_triggers(tmp_path: Path) -> None:
    """The unit tests are not vacuous: a rule that can never fire makes them fail."""
    broken = RULES_PATH.read_text(encoding="utf-8").replace("> 0.05", "> 1000")
    (tmp_path / "alerts.yml").write_text(broken, encoding="utf-8")
    shutil.copy(RULES_TEST_PATH, tmp_path / "alerts_test.yml")
    result = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "HighErrorRate" in result.stdout + result.stderr


def test_every_rule_has_severity_summary_description_and_runbook() -> None:
    doc = yaml.safe_load(RULES_PATH.read_text(encoding="utf-8"))
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} == EXPECTED_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], rule["alert"]
        assert annotations["runbook_url"] == (
            f"{WEB_URL_PLACEHOLDER}/runbooks/{rule['alert']}"), rule["alert"]


def test_every_rule_has_a_unit_test_that_fires_and_one_that_stays_silent() -> None:
    doc = yaml.safe_load(RULES_TEST_PATH.read_text(encoding="utf-8"))
    firing: set[str] = set()
    silent: set[str] = set()
    for test in doc["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else silent).add(case["alertname"])
    assert firing == EXPECTED_ALERTS
    assert silent == EXPECTED_ALERTS
