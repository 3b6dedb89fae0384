"""Bad input to `readygate stack`: one line naming the file (and line), exit 3, nothing started."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.stack.conftest import RULES, readygate, write_config

needs_binaries = pytest.mark.skipif(
    any(shutil.which(b) is None for b in ("promtool", "amtool")),
    reason="needs the prometheus and prometheus-alertmanager Debian packages")

# Nothing listens here: every case fails before the stack would start.
APP_URL = "http://127.0.0.1:9"

HEALTHY: dict[str, Any] = {"healthy": {
    "scenario": {"probes": False},
    "checks": [{"signal": "metric", "phase": "baseline", "query": "up == 1"},
               {"signal": "no_alert", "phase": "baseline", "window_s": 1}]}}


def line_of(path: Path, text: str) -> int:
    """The number of the first line of ``path`` holding ``text``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def one_line_exit_3(tmp_path: Path, *args: str) -> str:
    result = readygate(*args, cwd=tmp_path, timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()  # no report: nothing ran
    return lines[0]


def test_a_rules_file_that_does_not_exist(tmp_path: Path) -> None:
    config = write_config(tmp_path, APP_URL, gates=HEALTHY, stack={"rules": ["missing.yml"]})
    line = one_line_exit_3(tmp_path, "stack", "healthy")
    # relative to readygate.yaml, like every path in it; the message shows where it looked
    assert line == (f"readygate: readygate.yaml:{line_of(config, 'missing.yml')} "
                    "stack.rules[0]: rules file missing.yml not found")


def test_a_rules_glob_that_matches_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path, APP_URL, gates=HEALTHY, stack={"rules": ["rules/*.yml"]})
    line = one_line_exit_3(tmp_path, "stack", "healthy")
    assert line == (f"readygate: readygate.yaml:{line_of(config, 'rules/*.yml')} "
                    "stack.rules[0]: no file matches 'rules/*.yml'")


@needs_binaries
def test_rules_promtool_rejects_name_the_rules_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text(RULES.replace("> 0", "> (0"), encoding="utf-8")
    write_config(tmp_path, APP_URL, gates=HEALTHY, stack={"rules": ["rules.yml", "bad.yml"]})
    line = one_line_exit_3(tmp_path, "stack", "healthy")
    assert line.startswith('readygate: bad.yml:5 stack.rules: alert rules rejected: group "app",'
                           ' rule 1, "AppErrors": could not parse expression')


@pytest.mark.parametrize("target", ["localhost", "127.0.0.1:99999", "ftp://127.0.0.1:1/"])
def test_scrape_target_syntax(tmp_path: Path, target: str) -> None:
    config = write_config(tmp_path, APP_URL, gates=HEALTHY,
                          stack={"scrape": [{"job": "app", "targets": ["127.0.0.1:1", target]}]})
    line = one_line_exit_3(tmp_path, "stack", "healthy")
    assert line.startswith(f"readygate: readygate.yaml:{line_of(config, 'targets:')} "
                           f"stack.scrape[0].targets: [1] '{target}' is not"), line


@needs_binaries
def test_an_alertmanager_config_amtool_rejects_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "am.yml").write_text("route:\n  receiver: team\n  bogus: 1\n"
                                     "receivers:\n  - name: team\n", encoding="utf-8")
    write_config(tmp_path, APP_URL, gates=HEALTHY, stack={"alertmanager_config": "am.yml"})
    line = one_line_exit_3(tmp_path, "stack", "healthy")
    assert line == ("readygate: am.yml:3 stack.alertmanager_config: Alertmanager config rejected:"
                    " yaml: unmarshal errors: line 3: field bogus not found in type config.plain")
    (tmp_path / "am.yml").write_text("route:\n  receiver: nobody\nreceivers:\n  - name: team\n",
                                     encoding="utf-8")
    line = one_line_exit_3(tmp_path, "run", "healthy", "--stack")  # the same path
    assert line == ("readygate: am.yml stack.alertmanager_config: Alertmanager config rejected:"
                    ' undefined receiver "nobody" used in route')


def test_an_alertmanager_config_that_does_not_exist(tmp_path: Path) -> None:
    config = write_config(tmp_path, APP_URL, gates=HEALTHY,
                          stack={"alertmanager_config": "am.yml"})
    line = one_line_exit_3(tmp_path, "stack", "healthy")
    assert line == (f"readygate: readygate.yaml:{line_of(config, 'alertmanager_config')} "
                    "stack.alertmanager_config: Alertmanager config am.yml not found")


def test_no_stack_section(tmp_path: Path) -> None:
    (tmp_path / "readygate.yaml").write_text("target: {name: app}\n", encoding="utf-8")
    line = one_line_exit_3(tmp_path, "stack", "up")
    assert line.startswith("readygate: readygate.yaml: no stack: section")


def test_alert_checks_without_rules(tmp_path: Path) -> None:
    """no_alert with no rules loaded would pass on nothing: refused up front."""
    write_config(tmp_path, APP_URL, gates=HEALTHY, stack={"rules": []})
    line = one_line_exit_3(tmp_path, "stack", "healthy")
    assert line == ("readygate: readygate.yaml stack.rules: gate 'healthy' has no_alert checks "
                    "but stack.rules names no alert rules")
