"""Alert hygiene: rules that a team can act on, routed to someone (the alert-hygiene gate).

Each function looks at files and answers one :class:`reports.model.CheckResult`:
``promtool check rules`` passes; every alert has ``severity``, ``summary`` and a
``runbook_url`` that answers; every alert routes to a receiver that sends somewhere
(``amtool config routes test``); ``promtool test rules`` passes where unit tests exist.
A tool that is missing or a file that cannot be read is an ``error`` (could not look).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from reports.model import CheckResult, Status

_TOOL_TIMEOUT_S = 30.0
_RUNBOOK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Alert:
    """One alerting rule as written (labels and annotations unexpanded)."""

    name: str
    file: str
    labels: dict[str, str]
    annotations: dict[str, str]


def _result(name: str, status: Status, message: str, **evidence: Any) -> CheckResult:
    return CheckResult(name=name, signal="hygiene", status=status, message=message,
                       phase="static", evidence=evidence, settled_at=time.time())


def _tool(name: str) -> str | None:
    return shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists()
                                  else None)


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=_TOOL_TIMEOUT_S,
                          check=False)


def load_alerts(rule_files: list[Path]) -> list[Alert]:
    """Every alerting rule in the files (recording rules are not alerts)."""
    alerts: list[Alert] = []
    for path in rule_files:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for group in data.get("groups") or []:
            for rule in group.get("rules") or []:
                if "alert" in rule:
                    alerts.append(Alert(
                        name=str(rule["alert"]), file=str(path),
                        labels={str(k): str(v) for k, v in (rule.get("labels") or {}).items()},
                        annotations={str(k): str(v) for k, v in
                                     (rule.get("annotations") or {}).items()}))
    return alerts


def check_rules_syntax(rule_files: list[Path]) -> CheckResult:
    """`promtool check rules` accepts every rule file."""
    name = "promtool check rules"
    promtool = _tool("promtool")
    if promtool is None:
        return _result(name, "error", "promtool not found (apt-get install prometheus)")
    proc = _run([promtool, "check", "rules", *map(str, rule_files)])
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        return _result(name, "fail", f"promtool rejects the rules: {_last(output)}",
                       output=output[-2000:])
    return _result(name, "pass", f"{len(rule_files)} rule file(s) valid", output=output[-2000:])


def check_alert_metadata(alerts: list[Alert], client: httpx.Client,
                         expected: dict[str, dict[str, str]] | None = None) -> CheckResult:
    """Every alert has a severity label, a summary and a runbook_url that answers (< 400);
    the alerts named in ``expected`` carry those labels with exactly those values."""
    name = "every alert has severity, summary and a runbook that answers"
    if not alerts:
        return _result(name, "fail", "no alerting rules found: nothing would ever page")
    problems: list[str] = []
    # An expected value, not just a present one: critical downgraded to info pages nobody.
    by_name = {a.name: a for a in alerts}
    for alertname, labels in sorted((expected or {}).items()):
        rule = by_name.get(alertname)
        if rule is None:
            problems.append(f"{alertname}: no such alert in the rules (expected labels "
                            f"{', '.join(f'{k}={v}' for k, v in sorted(labels.items()))})")
            continue
        problems += [f"{alertname}: {k}={rule.labels[k]}, expected {k}={v}" if k in rule.labels
                     else f"{alertname}: no '{k}' label (expected {k}={v})"
                     for k, v in sorted(labels.items()) if rule.labels.get(k) != v]
    answered: dict[str, int | str] = {}
    for a in alerts:
        missing = [k for k, have in (("severity label", a.labels.get("severity")),
                                     ("summary", a.annotations.get("summary")),
                                     ("runbook_url", a.annotations.get("runbook_url")))
                   if not have]
        if missing:
            problems.append(f"{a.name}: no {', no '.join(missing)}")
        url = a.annotations.get("runbook_url")
        if url:
            status = _answers(url, client)
            answered[a.name] = status
            if not (isinstance(status, int) and status < 400):
                problems.append(f"{a.name}: runbook {url} does not answer ({status})")
    if problems:
        return _result(name, "fail", "; ".join(problems), alerts=len(alerts), problems=problems,
                       runbooks=answered)
    return _result(name, "pass", f"{len(alerts)} alert(s) complete, every runbook answers",
                   alerts=len(alerts), runbooks=answered)


def _answers(url: str, client: httpx.Client) -> int | str:
    if "{{" in url:
        return "templated URL, cannot be followed"
    try:
        return client.get(url, timeout=_RUNBOOK_TIMEOUT_S, follow_redirects=True).status_code
    except httpx.HTTPError as exc:
        return type(exc).__name__


def receivers_that_send(am_config: Path) -> dict[str, bool]:
    """Receiver name -> whether it has any integration (a receiver without one drops alerts)."""
    data = yaml.safe_load(am_config.read_text(encoding="utf-8")) or {}
    return {str(r.get("name")): any(k.endswith("_configs") and v for k, v in r.items())
            for r in data.get("receivers") or []}


def check_alert_routing(alerts: list[Alert], am_config: Path) -> CheckResult:
    """Every alert's labels route (per amtool) to a receiver that sends somewhere."""
    name = "every alert routes to a receiver"
    amtool = _tool("amtool")
    if amtool is None:
        return _result(name, "error", "amtool not found (apt-get install prometheus-alertmanager)")
    sends = receivers_that_send(am_config)
    routes: dict[str, list[str]] = {}
    problems: list[str] = []
    for a in alerts:
        labels = [f"{k}={v}" for k, v in {**a.labels, "alertname": a.name}.items()
                  if "{{" not in v]
        proc = _run([amtool, "config", "routes", "test", f"--config.file={am_config}", *labels])
        if proc.returncode != 0:
            return _result(name, "error", f"amtool could not test routes: "
                           f"{_last(proc.stderr or proc.stdout)}")
        receivers = [r.strip() for r in proc.stdout.strip().split(",") if r.strip()]
        routes[a.name] = receivers
        live = [r for r in receivers if sends.get(r)]
        if not live:
            problems.append(f"{a.name} routes to {', '.join(receivers) or 'nothing'}, "
                            "which sends nowhere")
    if problems:
        return _result(name, "fail", "; ".join(problems), routes=routes)
    return _result(name, "pass", f"{len(alerts)} alert(s) reach a receiver", routes=routes)


def check_rule_unit_tests(test_files: list[Path]) -> CheckResult:
    """`promtool test rules` passes for the rule unit tests (skipped when there are none)."""
    name = "promtool rule unit tests"
    if not test_files:
        return _result(name, "skipped", "no rule unit tests found (*_test.yml)")
    promtool = _tool("promtool")
    if promtool is None:
        return _result(name, "error", "promtool not found (apt-get install prometheus)")
    proc = _run([promtool, "test", "rules", *map(str, test_files)])
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        return _result(name, "fail", f"rule unit tests fail: {_last(output)}",
                       output=output[-2000:])
    return _result(name, "pass", f"{len(test_files)} rule test file(s) pass",
                   output=output[-2000:])


def alert_hygiene(rule_files: list[Path], am_config: Path | None, client: httpx.Client, *,
                  test_files: list[Path] | None = None,
                  alert_labels: dict[str, dict[str, str]] | None = None) -> list[CheckResult]:
    """All four hygiene checks; rule unit tests default to ``*_test.yml`` beside the rules;
    ``alert_labels``: alert name -> labels its rule must carry with those values."""
    results = [check_rules_syntax(rule_files)]
    try:
        alerts = load_alerts(rule_files)
    except (OSError, yaml.YAMLError) as exc:
        return [*results, _result("alert rules readable", "error", f"cannot read rules: {exc}")]
    results.append(check_alert_metadata(alerts, client, alert_labels))
    if am_config is None:
        results.append(_result("every alert routes to a receiver", "error",
                               "no Alertmanager config given"))
    else:
        results.append(check_alert_routing(alerts, am_config))
    if test_files is None:
        test_files = sorted({t for f in rule_files for t in f.parent.glob("*_test.y*ml")})
    results.append(check_rule_unit_tests(test_files))
    return results


def _last(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
