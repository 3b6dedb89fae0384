"""Pytest plugin for gate suites: fixtures over a readygate run, and a results file.

``readygate run GATE`` runs a gate's ``suites:`` in a child ``python -m pytest -p
gates.pytest_plugin --readygate-run RUN.json --readygate-results OUT.json``; every test
becomes a check in the same report. Plain ``pytest gates/`` works too: point
``--readygate-run`` (or ``READYGATE_RUN``) at a run file or at a previous run's
``report.json``. Without one, every fixture here skips with the reason: a suite that
could not look at anything must never pass.

Fixtures: ``readygate_run`` (the raw document), ``readygate_report``
(:class:`reports.model.Report`), ``probe_results`` (probe runs as dicts), ``timeline``
(events as dicts), ``phases`` (name -> (start, end)), ``target``
(:class:`readygate.config.Target`), ``backends`` (clients from readygate's backend
registry) and ``run_async`` (runs a backend coroutine on the session's event loop).
Mark a test ``@pytest.mark.severity("warning")`` to keep it from blocking the release.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import BaseModel, ConfigDict, Field

from core import redact
from core.config import parse_model, read_text
from core.errors import ConfigError
from core.http import client_kwargs, secret_values
from core.target import Target
from gates.backends.config import Backends
from gates.backends.registry import ContextBackends, build_all
from gates.context import Anchors, CheckContext
from probes.config import Probes
from reports.model import Report

T = TypeVar("T")

RUN_FILE_VERSION = 1
"""Version of the run file readygate writes for its suites (``readygate_run`` key)."""

SEVERITIES = ("critical", "warning")
_LONGREPR_MAX = 4000


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--readygate-run``, ``--readygate-config`` and ``--readygate-results``."""
    group = parser.getgroup("readygate", "readygate gate suites")
    group.addoption("--readygate-run", metavar="FILE", default=os.environ.get("READYGATE_RUN"),
                    help="a readygate run file or a previous run's report.json "
                         "(env READYGATE_RUN); without it the fixtures skip")
    group.addoption("--readygate-config", metavar="FILE",
                    default=os.environ.get("READYGATE_CONFIG"),
                    help="config for target/backends when the run file has none, e.g. a "
                         "report.json (env READYGATE_CONFIG)")
    group.addoption("--readygate-results", metavar="FILE", default=None,
                    help="write every test's outcome and severity here as JSON (readygate "
                         "turns them into checks)")


def pytest_configure(config: pytest.Config) -> None:
    """Register the severity marker; refuse a run file that does not exist."""
    config.addinivalue_line("markers", "severity(level): 'critical' (default) blocks the "
                            "release when the test fails; 'warning' never does")
    for option in ("readygate_run", "readygate_config"):
        value = config.getoption(option)
        if value and not Path(value).is_file():
            raise pytest.UsageError(f"--{option.replace('_', '-')}: {value} is not a file")
    if config.getoption("readygate_results"):
        config.pluginmanager.register(_Recorder(Path(config.getoption("readygate_results"))),
                                      "readygate-results")


def severity_of(item: pytest.Item) -> str:
    """The test's ``severity`` marker (default critical); anything else is a usage error."""
    marker = item.get_closest_marker("severity")
    if marker is None:
        return "critical"
    level = marker.args[0] if marker.args else marker.kwargs.get("level")
    if level not in SEVERITIES:
        raise pytest.UsageError(f"{item.nodeid}: severity must be one of {SEVERITIES}, "
                                f"got {level!r}")
    return str(level)


class _Recorder:
    """Collects each test's outcome (setup/call/teardown folded into one) and writes them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.severity: dict[str, str] = {}
        self.docs: dict[str, str] = {}
        self.tests: dict[str, dict[str, Any]] = {}
        self.collect_errors: list[dict[str, Any]] = []

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            self.severity[item.nodeid] = severity_of(item)
            doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
            self.docs[item.nodeid] = doc.strip().splitlines()[0] if doc.strip() else ""

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors.append({"nodeid": report.nodeid or "<collection>",
                                        "longrepr": _text(report)})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = self.tests.setdefault(report.nodeid, {
            "nodeid": report.nodeid, "outcome": None, "duration_s": 0.0,
            "severity": self.severity.get(report.nodeid, "critical"),
            "doc": self.docs.get(report.nodeid, ""), "message": "", "longrepr": ""})
        entry["duration_s"] += report.duration
        outcome = _outcome(report)
        if outcome is None:
            return
        # the first thing that went wrong wins: a setup error is not hidden by a teardown
        if entry["outcome"] in (None, "pass"):
            entry["outcome"] = outcome
            entry["message"] = _message(report, outcome)
            entry["longrepr"] = _text(report)[-_LONGREPR_MAX:]

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        data = {"exitstatus": int(exitstatus), "finished_at": time.time(),
                "tests": list(self.tests.values()), "collect_errors": self.collect_errors}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
        tmp.replace(self.path)


def _outcome(report: pytest.TestReport) -> str | None:
    """pass / fail / error / skipped for one phase of a test (None: nothing to say)."""
    if report.skipped:
        return "skipped"
    if report.failed:
        return "fail" if report.when == "call" else "error"
    if report.when == "call":
        return "pass"
    return None


def _message(report: pytest.TestReport, outcome: str) -> str:
    if outcome == "skipped":
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        return f"skipped: {reason.removeprefix('Skipped: ')}"
    if outcome == "pass":
        return "passed"
    lines = [ln[1:].strip() for ln in _text(report).splitlines() if ln.startswith("E ")]
    detail = " ".join(lines[:3]) or (_text(report).strip().splitlines() or ["?"])[-1]
    where = "" if report.when == "call" else f" in {report.when}"
    return f"{'failed' if outcome == 'fail' else 'error'}{where}: {detail[:500]}"


def _text(report: pytest.CollectReport | pytest.TestReport) -> str:
    try:
        return str(report.longreprtext)
    except Exception:  # longrepr of a plugin-defined type: show what we can
        return str(report.longrepr)


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def readygate_run(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The run document: a readygate run file, or a report.json given to plain pytest."""
    path = request.config.getoption("readygate_run")
    if not path:
        pytest.skip("no readygate run to judge: pass --readygate-run out/demo/report.json "
                    "(or set READYGATE_RUN), or run this suite through `readygate run GATE`")
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not ("readygate_run" in data or "checks" in data):
        pytest.fail(f"{path} is neither a readygate run file nor a report.json")
    return data


@pytest.fixture(scope="session")
def readygate_report(readygate_run: dict[str, Any]) -> Report:
    """The run's report as judged so far (before the suites' own checks)."""
    return Report.from_dict(readygate_run.get("report", readygate_run))


@pytest.fixture(scope="session")
def probe_results(readygate_run: dict[str, Any]) -> list[dict[str, Any]]:
    """Every probe run: journey, started_at, duration_s, success, trace_id, steps, error."""
    runs = list(readygate_run.get("report", readygate_run).get("probe_results") or [])
    if not runs:
        pytest.skip("the run has no probe results (a static gate?)")
    return runs


@pytest.fixture(scope="session")
def timeline(readygate_run: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's events in order: {type, at, ...} (PhaseStarted, FaultInjected, ...)."""
    return list(readygate_run.get("report", readygate_run).get("timeline") or [])


@pytest.fixture(scope="session")
def phases(readygate_report: Report) -> dict[str, tuple[float, float | None]]:
    """Phase name -> (started_at, finished_at) wall-clock times."""
    return {p["phase"]: (p["started_at"], p.get("finished_at")) for p in readygate_report.phases}


class SuiteConfig(BaseModel):
    """What the gate suites read of readygate.yaml: target, backends and probes.

    Other sections (gates, demo, ...) are the CLI's business and are ignored here.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    target: Target = Field(default_factory=Target)
    backends: Backends = Field(default_factory=Backends)
    probes: Probes = Field(default_factory=Probes)

    def secrets(self) -> list[str]:
        """The secret values of these sections (registered for redaction)."""
        return self.target.secrets() + self.backends.secrets() + secret_values(self.probes)


def _suite_config(text: str, path: str) -> SuiteConfig:
    config, _ = parse_model(text, path, SuiteConfig)
    redact.register(*config.secrets())
    return config


@pytest.fixture(scope="session")
def readygate_config(request: pytest.FixtureRequest,
                     readygate_run: dict[str, Any]) -> SuiteConfig:
    """Target and backends of the run (secrets come back from the environment)."""
    if "config" in readygate_run:
        try:
            return _suite_config(json.dumps(readygate_run["config"]), "<readygate run file>")
        except ConfigError as exc:
            pytest.skip(f"cannot rebuild the run's config: {exc}")
    path = request.config.getoption("readygate_config")
    if not path:
        pytest.skip("this report.json carries no target or backends: pass "
                    "--readygate-config FILE (or set READYGATE_CONFIG)")
    return _suite_config(read_text(path), str(path))


@pytest.fixture(scope="session")
def target(readygate_config: SuiteConfig) -> Target:
    """The system under test: services, environment, credentials (redacted)."""
    return readygate_config.target


class AsyncRunner:
    """Runs coroutines on one event loop for the session (backend clients are async)."""

    def __init__(self) -> None:
        self._runner = asyncio.Runner()

    def __call__(self, awaitable: Awaitable[T]) -> T:
        async def wrap() -> T:
            return await awaitable
        return self._runner.run(wrap())

    def close(self) -> None:
        self._runner.close()


@pytest.fixture(scope="session")
def run_async() -> Iterator[AsyncRunner]:
    """Run a coroutine (e.g. a backend query) to completion on the session's event loop."""
    runner = AsyncRunner()
    yield runner
    runner.close()


@pytest.fixture(scope="session")
def backends(readygate_config: SuiteConfig, run_async: AsyncRunner) -> Iterator[ContextBackends]:
    """Backend clients built by readygate's registry from the run's ``backends:``."""
    if not readygate_config.backends.by_signal() and not any(
            (readygate_config.backends.prometheus, readygate_config.backends.sink,
             readygate_config.backends.alertmanager)):
        pytest.skip("the run's config names no backends")
    client = httpx.AsyncClient(timeout=10.0, **client_kwargs(None, name="backends"))
    b = build_all(readygate_config.backends, client)
    # the same defaults the run's checks get: metrics -> prometheus, the rest -> the sink
    ctx = CheckContext(prometheus=b.prometheus, sink=b.sink, anchors=Anchors(),
                       probe_results=[], alertmanager=b.alertmanager, metrics=b.metrics,
                       logs=b.logs, traces=b.traces, errors=b.errors,
                       notifications=b.notifications, alerts=b.alerts)
    yield ContextBackends(prometheus=ctx.prometheus, alertmanager=ctx.alertmanager,
                          sink=ctx.sink, metrics=ctx.metrics, logs=ctx.logs, traces=ctx.traces,
                          errors=ctx.errors, notifications=ctx.notifications, alerts=ctx.alerts,
                          scrape=b.scrape)
    run_async(b.aclose())
    run_async(client.aclose())
