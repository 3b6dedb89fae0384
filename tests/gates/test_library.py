"""Library gates: loadable by name, the config's own gate wins, and alert hygiene judges
real rules with the real promtool and amtool through `readygate run`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.errors import ConfigError
from demo.stack import WEB_URL_PLACEHOLDER, alertmanager_config_text
from gates.library import names
from readygate.cli import main
from readygate.config import load_config, parse_config
from scenarios.library import load_gate, resolve_gate

ROOT = Path(__file__).resolve().parents[2]
_TOOLS = bool(shutil.which("promtool") or Path("/usr/bin/promtool").exists())
needs_tools = pytest.mark.skipif(not _TOOLS, reason="promtool/amtool not installed")


def test_the_library_gates_load_against_the_bundled_config() -> None:
    config = load_config(ROOT / "readygate.yaml")
    assert names() == ["alert-hygiene", "observability-readiness", "uptime-slo"]
    gates = {name: load_gate(name, config) for name in names()}
    signals = {c.signal for c in gates["observability-readiness"].checks}
    assert {"error_event", "trace", "logs", "metric", "counter_increases", "alert",
            "notification", "alert_rule"} <= signals
    assert gates["observability-readiness"].scenario.fault is not None
    assert gates["observability-readiness"].suites == ["gates/suites/test_example.py"]
    assert [c.signal for c in gates["alert-hygiene"].checks] == ["hygiene"]
    assert gates["alert-hygiene"].scenario.probes is False
    assert {c.signal for c in gates["uptime-slo"].checks} == {"slo"}


def test_a_gate_in_the_config_wins_over_the_library_gate_of_that_name(tmp_path: Path) -> None:
    config = parse_config("journeys:\n  health: {steps: [{url: /healthz}]}\n"
                          "gates:\n  uptime-slo:\n    checks:\n"
                          "      - {signal: probe, phase: baseline, journey: health}\n",
                          "mine.yaml")
    assert resolve_gate(config, "uptime-slo", "mine.yaml").gates["uptime-slo"] \
        .checks[0].signal == "probe"
    merged = resolve_gate(config, "alert-hygiene", "mine.yaml")
    assert set(merged.gates) == {"uptime-slo", "alert-hygiene"}


def test_an_unknown_gate_name_suggests_a_library_gate(capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    assert main(["run", "uptime-sl0", "--config", str(ROOT / "readygate.yaml"),
                 "--out", str(tmp_path)]) == 3
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "no gate named 'uptime-sl0' (did you mean 'uptime-slo'?)" in err
    assert main(["run", "zzz", "--config", str(ROOT / "readygate.yaml")]) == 3
    assert "(in the config: release; in gates/library: alert-hygiene, " \
           "observability-readiness, uptime-slo)" in capsys.readouterr().err


def test_a_suite_that_does_not_exist_is_a_config_error_with_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rg.yaml"
    path.write_text("gates:\n  g:\n    checks: []\n    suites:\n"
                    "      - gates/suites/test_example.py\n      - gates/suites/nope.py\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(exc.value) == f"{path}:6 gates.g.suites[1]: pytest suite " \
                             "'gates/suites/nope.py' does not exist"
    assert main(["validate", "--config", str(path)]) == 3
    assert "suites[1]" in capsys.readouterr().err


def _hygiene_config(tmp_path: Path, rules: dict[str, Any], am: dict[str, Any] | str) -> Path:
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    (tmp_path / "am.yml").write_text(am if isinstance(am, str) else yaml.safe_dump(am))
    path = tmp_path / "readygate.yaml"
    # no target.services and no fault: a static gate must run without probes
    path.write_text(yaml.safe_dump({"target": {"name": "rules-repo"}, "gates": {
        "alert-hygiene": {
            "scenario": {"probes": False, "baseline": {"min_duration_s": 0}},
            "checks": [{"signal": "hygiene", "rules": [str(tmp_path / "alerts.yml")],
                        "alertmanager_config": str(tmp_path / "am.yml")}]}}}))
    return path


def _demo_rules(runbooks: str) -> dict[str, Any]:
    text = (ROOT / "demo/rules/alerts.yml").read_text().replace(WEB_URL_PLACEHOLDER, runbooks)
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def _run(config: Path, out: Path) -> tuple[int, dict[str, Any]]:
    code = main(["run", "alert-hygiene", "--config", str(config), "--out", str(out),
                 "--no-notify"])
    return code, json.loads((out / "report.json").read_text())


def _check(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in report["checks"] if c["name"] == name)


@needs_tools
def test_the_hygiene_gate_is_ready_on_complete_routed_rules(tmp_path: Path, runbooks: str) -> None:
    config = _hygiene_config(tmp_path, _demo_rules(runbooks),
                             alertmanager_config_text(webhook_url="http://127.0.0.1:9/hook"))
    code, report = _run(config, tmp_path / "out")
    assert (code, report["verdict"]) == (0, "ready"), report["checks"]
    assert [c["signal"] for c in report["checks"]] == ["hygiene"] * 4
    assert report["probe_results"] == [] and [p["phase"] for p in report["phases"]] == [
        "baseline"]


@needs_tools
def test_the_hygiene_gate_fails_on_a_rule_without_a_runbook_url(tmp_path: Path,
                                                                 runbooks: str) -> None:
    rules = _demo_rules(runbooks)
    del rules["groups"][0]["rules"][1]["annotations"]["runbook_url"]
    config = _hygiene_config(tmp_path, rules,
                             alertmanager_config_text(webhook_url="http://127.0.0.1:9/hook"))
    code, report = _run(config, tmp_path / "out")
    assert (code, report["verdict"]) == (1, "not_ready")
    check = _check(report, "every alert has severity, summary and a runbook that answers")
    assert check["status"] == "fail" and "HighErrorRate: no runbook_url" in check["message"]


@needs_tools
def test_the_hygiene_gate_fails_on_an_alert_routed_to_no_receiver(tmp_path: Path,
                                                                   runbooks: str) -> None:
    am = {"route": {"receiver": "pager", "routes": [
              {"matchers": ['alertname="SlowRequests"'], "receiver": "nobody"}]},
          "receivers": [{"name": "nobody"},
                        {"name": "pager", "webhook_configs": [{"url": "http://127.0.0.1:9/"}]}]}
    code, report = _run(_hygiene_config(tmp_path, _demo_rules(runbooks), am), tmp_path / "out")
    assert (code, report["verdict"]) == (1, "not_ready")
    check = _check(report, "every alert routes to a receiver")
    assert check["status"] == "fail"
    assert check["message"] == "SlowRequests routes to nobody, which sends nowhere"


def test_the_library_hygiene_gate_without_rules_is_inconclusive_not_ready(
        tmp_path: Path) -> None:
    """Outside the demo nobody named the rules: could not look, never a pass."""
    config = tmp_path / "readygate.yaml"
    # (a config that defines nothing at all is refused before it runs: see test_input_limits)
    config.write_text("target: {name: nothing, services: {app: 'http://127.0.0.1:9'}}\n")
    code, report = _run(config, tmp_path / "out")
    assert (code, report["verdict"]) == (2, "inconclusive")
    assert report["checks"][0]["status"] == "error"
