"""The ``hygiene`` check: gates/hygiene.py's alert-hygiene results, inside a gate's report.

One config check yields up to four results (promtool check rules; severity, summary and
a runbook that answers; routed to a receiver that sends; promtool unit tests). Missing
unit tests are optional ("run when present"), so that skip is a warning, not a blocker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import glob
from pathlib import Path

import httpx

from core.config import resolve_path
from gates.checks.common import Judge
from gates.config import HygieneCheck
from gates.context import CheckContext
from gates.hygiene import alert_hygiene
from reports.model import CheckResult


def rule_files(check: HygieneCheck) -> list[Path]:
    """The check's rule files, globs expanded (relative paths as in resolve_path)."""
    files: set[Path] = set()
    for spec in check.rules:
        path = resolve_path(spec)
        matches = glob.glob(str(path)) if any(c in spec for c in "*?[") else [str(path)]
        files.update(Path(m) for m in matches)
    return sorted(files)


async def hygiene_check(check: HygieneCheck, ctx: CheckContext, j: Judge) -> list[CheckResult]:
    """Every alert-hygiene result, named and with the check's severity and phase."""
    files = rule_files(check)
    if not files:
        what = f"rules {check.rules} match no file" if check.rules else \
            "no rules configured (set rules:, or run under `readygate demo`)"
        return [j.result("error", f"could not look: {what}")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        return [j.result("error", f"could not look: rule file(s) not found: "
                                  f"{', '.join(missing)}")]
    am = resolve_path(check.alertmanager_config) if check.alertmanager_config else None
    tests = None if check.rule_tests is None else [resolve_path(t) for t in check.rule_tests]

    def run() -> list[CheckResult]:
        with httpx.Client() as client:
            return alert_hygiene(files, am, client, test_files=tests,
                                 alert_labels=check.alert_labels)

    results = await asyncio.to_thread(run)
    out = []
    for r in results:
        optional = r.name == "promtool rule unit tests" and r.status == "skipped"
        out.append(dataclasses.replace(
            r, name=f"{check.name}: {r.name}" if check.name else r.name, phase=j.phase,
            severity="warning" if optional else check.severity, deadline_s=check.deadline_s,
            anchor=check.anchor, evidence={**r.evidence, "rule_files": [str(f) for f in files],
                                           "alertmanager_config": str(am) if am else None}))
    return out
