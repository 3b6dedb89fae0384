"""The CLI contract: one-line errors, exit code 3 for bad input, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readygate(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "readygate", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_validate_accepts_the_default_config() -> None:
    result = readygate("validate")
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_validate_broken_config_prints_one_line_with_line_number(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "readygate.yaml").read_text().replace("deadline_s: 25",
                                                                 "deadline_sec: 25"))
    result = readygate("validate", "--config", str(bad))
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{bad}:" in lines[0] and "deadline_sec" in lines[0]
    assert "did you mean 'deadline_s'" in lines[0]


def test_missing_config_file_is_bad_input(tmp_path: Path) -> None:
    result = readygate("validate", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 3
    assert result.stderr.strip() == f"readygate: {tmp_path / 'nope.yaml'}: config file not found"


def test_unknown_gate_is_bad_input_with_a_suggestion() -> None:
    result = readygate("run", "relase")
    assert result.returncode == 3
    assert "no gate named 'relase' (did you mean 'release'?)" in result.stderr
    assert "Traceback" not in result.stderr


def test_schema_prints_json_schema() -> None:
    result = readygate("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "readygate.yaml" and "gates" in schema["properties"]


def test_production_target_refuses_chaos_without_the_flag(tmp_path: Path) -> None:
    config = tmp_path / "prod.yaml"
    config.write_text(
        "target:\n  environment: production\n  services: {web: 'http://127.0.0.1:9'}\n"
        "  fault_proxies: {storage: 'http://127.0.0.1:9'}\n"
        "gates:\n  g:\n    scenario:\n      baseline: {min_duration_s: 0, max_duration_s: 1}\n"
        "      fault: {service: storage}\n    checks: []\n")
    result = readygate("run", "g", "--config", str(config), "--out", str(tmp_path / "out"))
    assert result.returncode == 3, result.stderr
    assert "production: chaos refused" in result.stderr
