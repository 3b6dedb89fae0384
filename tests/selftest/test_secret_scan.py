"""No configured secret in any artifact of a demo run: console output, the copied logs under
out/, report.json/md/html, junit.xml and the Slack payload sent to a local fake Slack. The run
uses `--sabotage leak_password`, so the demo itself writes the password into its logs: the
scan must hold even then (readygate scrubs what it copies), and the secret_leak check fails."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from core.redact import find_leaks
from tests.e2e.conftest import ROOT, assert_all_stopped, fast_config
from tests.reports.fake_slack import FakeSlack

pytestmark = pytest.mark.slow


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    try:
        yield fake
    finally:
        fake.close()


def scan(texts: dict[str, str], secrets: list[str]) -> dict[str, list[str]]:
    """Where each secret appears: artifact name -> the (masked) secrets found in it."""
    hits = {name: find_leaks(text, secrets) for name, text in texts.items()}
    return {name: found for name, found in hits.items() if found}


def test_the_scan_itself_can_fail() -> None:
    secret = "pw-" + uuid.uuid4().hex
    assert scan({"planted": f"user=demo password={secret}"}, [secret]) == \
        {"planted": find_leaks(secret, [secret])}
    assert scan({"clean": "password=***"}, [secret]) == {}


def test_no_secret_in_any_artifact_even_when_the_demo_leaks_its_password(
        tmp_path: Path, slack: FakeSlack) -> None:
    password = "pw-Scan-" + uuid.uuid4().hex[:12]
    config_path = fast_config(tmp_path)
    data = yaml.safe_load(config_path.read_text())
    data["notify"] = {"slack": {"token": "${RG_SCAN_SLACK_TOKEN}", "channel": "#ci",
                                "base_url": slack.url + "/api/"}}
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "out"
    env = {**os.environ, "CI": "true", "READYGATE_DEMO_PASSWORD": password,
           "RG_SCAN_SLACK_TOKEN": slack.token}
    proc = subprocess.run([sys.executable, "-m", "readygate", "demo", "--out", str(out),
                           "--config", str(config_path), "--sabotage", "leak_password"],
                          cwd=ROOT, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]

    artifacts = {"stdout": proc.stdout, "stderr": proc.stderr}
    files = [p for p in out.rglob("*") if p.is_file()]
    artifacts.update({str(p.relative_to(out)): p.read_text(errors="replace") for p in files})
    # The bot token must reach Slack in its Authorization header (that is its job); the body
    # and every other header must not carry it, nor the password.
    artifacts.update({f"slack request {i}": r.raw + repr({k: v for k, v in r.headers.items()
                                                          if k.lower() != "authorization"})
                      for i, r in enumerate(slack.received)})
    # Everything the issue lists is there, so the scan is not vacuous.
    names = set(artifacts)
    assert {"report.json", "report.md", "report.html", "junit.xml", "logs/web.log"} <= names
    assert any(n.startswith("slack request") for n in names), "no Slack payload was sent"
    # The demo did leak: readygate saw it, and its copy of the log is scrubbed.
    import json
    report = json.loads(artifacts["report.json"])
    leak = next(c for c in report["checks"] if c["signal"] == "secret_leak")
    assert leak["status"] == "fail" and "secret leaked into the logs" in leak["message"]
    assert "password=***" in artifacts["logs/web.log"]

    assert scan(artifacts, [password, slack.token]) == {}
    assert_all_stopped(report["stack"]["pids"])
