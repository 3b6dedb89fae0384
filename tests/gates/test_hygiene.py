"""The alert-hygiene checks fail on a rule without a runbook and on an unrouted alert."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from demo.stack import WEB_URL_PLACEHOLDER, alertmanager_config_text
from gates.hygiene import alert_hygiene

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not (shutil.which("promtool") or Path("/usr/bin/promtool")
                                     .exists()), reason="promtool not installed")


@pytest.fixture
def demo_rules(tmp_path: Path, runbooks: str) -> Path:
    """The demo's rules and their unit tests, runbook links pointing at the local server."""
    for name in ("alerts.yml", "alerts_test.yml"):
        text = (ROOT / "demo/rules" / name).read_text().replace(WEB_URL_PLACEHOLDER, runbooks)
        (tmp_path / name).write_text(text)
    return tmp_path / "alerts.yml"


@pytest.fixture
def am_config(tmp_path: Path) -> Path:
    path = tmp_path / "alertmanager.yml"
    path.write_text(alertmanager_config_text(webhook_url="http://127.0.0.1:9/hook"))
    return path


def _by_name(results: list[Any]) -> dict[str, Any]:
    return {r.name: r for r in results}


def test_the_demo_rules_are_hygienic(demo_rules: Path, am_config: Path) -> None:
    with httpx.Client() as client:
        results = alert_hygiene([demo_rules], am_config, client)
    assert [r.status for r in results] == ["pass"] * 4, [r.message for r in results]


def test_a_rule_without_a_runbook_url_fails(demo_rules: Path, am_config: Path) -> None:
    rules = yaml.safe_load(demo_rules.read_text())
    del rules["groups"][0]["rules"][0]["annotations"]["runbook_url"]
    demo_rules.write_text(yaml.safe_dump(rules))
    with httpx.Client() as client:
        result = _by_name(alert_hygiene([demo_rules], am_config, client))[
            "every alert has severity, summary and a runbook that answers"]
    assert result.status == "fail"
    assert "ServiceDown: no runbook_url" in result.message


def test_a_runbook_that_does_not_answer_fails(demo_rules: Path, am_config: Path,
                                              runbooks: str) -> None:
    demo_rules.write_text(demo_rules.read_text().replace(f"{runbooks}/runbooks/HighErrorRate",
                                                         f"{runbooks}/wiki/gone"))
    with httpx.Client() as client:
        result = _by_name(alert_hygiene([demo_rules], am_config, client))[
            "every alert has severity, summary and a runbook that answers"]
    assert result.status == "fail" and "does not answer (404)" in result.message


def test_an_alert_routed_to_no_receiver_fails(demo_rules: Path, tmp_path: Path) -> None:
    am = tmp_path / "am.yml"
    am.write_text(yaml.safe_dump({
        "route": {"receiver": "blackhole", "routes": [
            {"matchers": ['alertname="HighErrorRate"'], "receiver": "pager"}]},
        "receivers": [{"name": "blackhole"},
                      {"name": "pager", "webhook_configs": [{"url": "http://127.0.0.1:9/"}]}]}))
    with httpx.Client() as client:
        result = _by_name(alert_hygiene([demo_rules], am, client))[
            "every alert routes to a receiver"]
    assert result.status == "fail"
    assert "ServiceDown routes to blackhole, which sends nowhere" in result.message
    assert "HighErrorRate" not in result.message
    assert result.evidence["routes"]["HighErrorRate"] == ["pager"]


def test_broken_rules_and_failing_unit_tests_fail(demo_rules: Path, am_config: Path) -> None:
    text = demo_rules.read_text().replace("> 0.05", "> 0.99")  # the unit tests expect 0.05
    demo_rules.write_text(text)
    with httpx.Client() as client:
        results = _by_name(alert_hygiene([demo_rules], am_config, client))
    assert results["promtool rule unit tests"].status == "fail"
    demo_rules.write_text(text.replace("expr: up{", "expr: up{{"))
    with httpx.Client() as client:
        results = _by_name(alert_hygiene([demo_rules], am_config, client))
    assert results["promtool check rules"].status == "fail"
