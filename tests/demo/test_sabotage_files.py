"""demo/rules/sabotage/: each file is the demo's own rules or Alertmanager config with exactly
the one defect its header names, and promtool / amtool accept it (so the selftest and
`readygate demo --rules` reproduce that defect and nothing else)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from demo.stack import alertmanager_config_text

ROOT = Path(__file__).resolve().parents[2]
SABOTAGE = ROOT / "demo/rules/sabotage"


def rules_by_name(path: Path) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {r["alert"]: r for g in data["groups"] for r in g["rules"]}


DEMO = rules_by_name(ROOT / "demo/rules/alerts.yml")


def changed(path: Path) -> dict[str, Any]:
    """Alert name -> what differs from the demo's rule (the whole rule when it is new)."""
    out: dict[str, Any] = {}
    for name, rule in rules_by_name(path).items():
        demo = DEMO.get(name)
        if demo is None:
            out[name] = "new"
            continue
        diff = {k: rule.get(k) for k in {*rule, *demo} if rule.get(k) != demo.get(k)}
        if diff:
            out[name] = diff
    out.update({name: "removed" for name in DEMO if name not in rules_by_name(path)})
    return out


def test_each_rules_file_carries_exactly_its_defect() -> None:
    assert changed(SABOTAGE / "already-firing.yml") == {"HighErrorRate": {
        "expr": "sum by (service) (rate(http_requests_total[10s])) > 0"}}
    assert changed(SABOTAGE / "severity-downgraded.yml") == {"HighErrorRate": {
        "labels": {"severity": "info"}}}
    assert changed(SABOTAGE / "keep-firing.yml") == {"HighErrorRate": {"keep_firing_for": "1h"}}
    assert changed(SABOTAGE / "pending-in-baseline.yml") == {"HighRequestRate": "new"}
    assert rules_by_name(SABOTAGE / "pending-in-baseline.yml")["HighRequestRate"]["for"] == "1m"
    assert changed(SABOTAGE / "inhibiting.yml") == {"ServerErrorsSeen": "new"}


def test_each_alertmanager_config_is_the_demos_plus_its_defect() -> None:
    demo = yaml.safe_load(alertmanager_config_text())
    no_resolved = yaml.safe_load((SABOTAGE / "alertmanager-no-resolved.yml").read_text())
    demo["receivers"][0]["webhook_configs"][0]["send_resolved"] = False
    assert no_resolved == demo
    demo["receivers"][0]["webhook_configs"][0]["send_resolved"] = True
    inhibited = yaml.safe_load((SABOTAGE / "alertmanager-inhibited.yml").read_text())
    assert inhibited.pop("inhibit_rules") == [{
        "source_matchers": ['alertname="ServerErrorsSeen"'],
        "target_matchers": ['alertname="HighErrorRate"'], "equal": ["service"]}]
    assert inhibited == demo


@pytest.mark.skipif(shutil.which("promtool") is None or shutil.which("amtool") is None,
                    reason="needs the prometheus and prometheus-alertmanager Debian packages")
@pytest.mark.parametrize("path", sorted(SABOTAGE.glob("*.yml")), ids=lambda p: p.name)
def test_the_tools_accept_each_file(path: Path) -> None:
    argv = ["amtool", "check-config", str(path)] if path.name.startswith("alertmanager") \
        else ["promtool", "check", "rules", str(path)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
