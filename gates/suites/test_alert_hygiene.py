"""Alert hygiene as a pytest suite: `pytest gates/suites` against your own rules.

Configure with environment variables (so CI can point it at any repository):
``READYGATE_RULES`` (rule files, separated by ``:``; globs allowed) and
``READYGATE_ALERTMANAGER_CONFIG``. Without them the suite is skipped, not passed.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gates.hygiene import alert_hygiene
from reports.model import CheckResult


@pytest.fixture(scope="module")
def hygiene_results() -> Iterator[dict[str, CheckResult]]:
    """The four hygiene checks, judged once for the module."""
    spec = os.environ.get("READYGATE_RULES")
    if not spec:
        pytest.skip("set READYGATE_RULES (and READYGATE_ALERTMANAGER_CONFIG) to judge rules")
    files = sorted({Path(p) for part in spec.split(":") for p in glob.glob(part)})
    if not files:
        pytest.fail(f"READYGATE_RULES={spec!r} matches no file")
    am = os.environ.get("READYGATE_ALERTMANAGER_CONFIG")
    with httpx.Client() as client:
        results = alert_hygiene(files, Path(am) if am else None, client)
    yield {r.name: r for r in results}


@pytest.mark.parametrize("name", [
    "promtool check rules",
    "every alert has severity, summary and a runbook that answers",
    "every alert routes to a receiver",
    "promtool rule unit tests",
])
def test_alert_hygiene(hygiene_results: dict[str, CheckResult], name: str) -> None:
    """Each hygiene check passes (skipped ones, e.g. no unit tests, are skips)."""
    result = hygiene_results[name]
    if result.status == "skipped":
        pytest.skip(result.message)
    assert result.status == "pass", result.message
