"""Scenario files: the bundled ones are valid, bad ones fail with file:line key and exit 3."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.target import Target
from readygate.config import Config, parse_config
from scenarios.files import available, load_scenario, resolve

ROOT = Path(__file__).resolve().parents[2]


def demo_config() -> Config:
    return parse_config((ROOT / "readygate.yaml").read_text(), "readygate.yaml")


def test_the_three_demo_scenarios_are_bundled_and_valid() -> None:
    assert {"error-rate", "latency", "dependency-down"} <= set(available())
    for name in ("error-rate", "latency", "dependency-down"):
        gate_name, config = load_scenario(name, demo_config())
        gate = config.gates[gate_name]
        assert gate_name == name
        assert gate.scenario.fault is not None and gate.scenario.load is not None
        phases = {c.phase for c in gate.checks}
        assert phases == {"baseline", "fault", "recovery"}, name
        assert "release" in config.gates  # the config's own gates stay


def test_a_misspelt_key_names_file_line_and_key_with_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("scenario:\n  fault:\n    kind: latency\n    service: storage\n"
                    "    latncy_ms: 300\n")
    with pytest.raises(ConfigError) as err:
        load_scenario(str(path), demo_config())
    assert str(err.value) == (f"{path}:5 scenario.fault.latncy_ms: unknown key 'latncy_ms' "
                              "(did you mean 'latency_ms'?)")


def test_a_load_key_error_is_reported_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("scenario:\n  load:\n    users: 0\n")
    with pytest.raises(ConfigError) as err:
        load_scenario(str(path), demo_config())
    assert str(err.value).startswith(f"{path}:3 scenario.load.users: ")


def test_chaos_only_touches_services_named_in_fault_proxies(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("scenario:\n  fault:\n    kind: abort\n    service: database\n")
    config = demo_config()
    config = config.model_copy(update={"target": Target(
        services={"web": "http://127.0.0.1:1"}, fault_proxies={"storage": "http://127.0.0.1:2"})})
    with pytest.raises(ConfigError) as err:
        load_scenario(str(path), config)
    assert str(err.value) == (f"{path}:4 scenario.fault.service: 'database' is not in "
                              "target.fault_proxies (storage)")


def test_an_unknown_scenario_name_suggests_the_nearest() -> None:
    with pytest.raises(ConfigError, match="no scenario named 'error-rat' "
                                          r"\(did you mean 'error-rate'\?\)"):
        resolve("error-rat")


def test_cli_drill_with_a_bad_scenario_exits_3_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("scenario:\n  baseline: {min_duration_s: 5, max_duration_s: 1}\n")
    proc = subprocess.run([sys.executable, "-m", "readygate", "drill", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"readygate: {path}:2 scenario.baseline: max_duration_s must be >= min_duration_s"]


def test_cli_drill_refuses_production_without_the_flag(tmp_path: Path) -> None:
    config = tmp_path / "prod.yaml"
    config.write_text("version: 1\ntarget:\n  environment: production\n"
                      "  services: {web: 'http://127.0.0.1:9'}\n"
                      "  fault_proxies: {storage: 'http://127.0.0.1:9'}\n")
    proc = subprocess.run([sys.executable, "-m", "readygate", "drill", "error-rate",
                           "--config", str(config), "--out", str(tmp_path / "out"),
                           "--no-notify"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "chaos refused (pass --allow-production to override)" in proc.stderr
