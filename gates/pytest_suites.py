"""A gate's pytest suites: run after the scenario, each test becomes a check.

The suites run in a child ``python -m pytest -p gates.pytest_plugin``, not in-process:
pytest keeps global state (imported test modules, assertion rewriting, plugins, capture
of fds 1/2) that must not leak into a long-lived runner, ``pytest.main`` would block the
event loop that handles Ctrl-C and rollback, and a child can be killed when it hangs.
The child reads a run file (what the run produced; secrets replaced by environment
references handed only to the child) and writes one JSON result per test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

from pydantic import SecretStr

from core.config import resolve_path
from core.http import userinfo
from core.procs import _die_with_parent  # the child must not outlive a SIGKILLed run
from core.target import Target
from gates.backends.config import Backends
from probes.config import Probes
from reports.model import CheckResult, Report


class SuiteSections(Protocol):
    """The config sections a suite run hands to the child: any root config has them."""

    @property
    def target(self) -> Target: ...
    @property
    def backends(self) -> Backends: ...
    @property
    def probes(self) -> Probes: ...


SIGNAL = "pytest"
PHASE = "pytest"
_SECRET_ENV = "READYGATE_SUITE_SECRET_"
_MESSAGE_MAX = 500


def run_document(report: Report, config: SuiteSections) -> tuple[dict[str, Any], dict[str, str]]:
    """The run file's content and the environment holding its secrets.

    Every secret value (password, tokens, a URL's user:password) is replaced by
    ``${READYGATE_SUITE_SECRET_n}``; the values travel only in the child's environment,
    never in a file.
    """
    env: dict[str, str] = {}

    def strip(value: Any) -> Any:
        if isinstance(value, SecretStr):
            name = f"{_SECRET_ENV}{len(env)}"
            env[name] = value.get_secret_value()
            return "${" + name + "}"
        if isinstance(value, str) and (raw := userinfo(value)) is not None:
            name = f"{_SECRET_ENV}{len(env)}"
            env[name] = raw
            return value.replace(raw + "@", "${" + name + "}@", 1)
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if v is not None}
        if isinstance(value, list | tuple):
            return [strip(v) for v in value]
        return value

    parts = {name: strip(getattr(config, name).model_dump(mode="python", exclude_none=True))
             for name in ("target", "backends", "probes")}
    return {"readygate_run": 1, "report": report.to_dict(), "config": parts}, env


def to_check_results(data: dict[str, Any], suites: list[str]) -> list[CheckResult]:
    """The child's results file as check results (collection errors included)."""
    out: list[CheckResult] = []
    now = time.time()
    for err in data.get("collect_errors") or []:
        out.append(_result(f"pytest {err['nodeid']} collects", "error",
                           f"could not collect: {_last_line(err.get('longrepr', ''))}",
                           "critical", {"longrepr": err.get("longrepr", "")}, now))
    for test in data.get("tests") or []:
        status = test.get("outcome") or "error"
        message = test.get("message") or status
        if status == "pass" and test.get("doc"):
            message = f"passed: {test['doc']}"
        out.append(_result(f"pytest {test['nodeid']}", status, message[:_MESSAGE_MAX],
                           test.get("severity", "critical"),
                           {"nodeid": test["nodeid"], "duration_s": round(test["duration_s"], 3),
                            **({"longrepr": test["longrepr"]} if test.get("longrepr") else {})},
                           now))
    if not out:
        # nothing collected is never a pass
        out.append(_result(f"pytest {', '.join(suites)}", "error",
                           "the suites collected no tests", "critical", {}, now))
    return out


async def run_suites(suites: list[str], report: Report, config: SuiteSections, *,
                     timeout_s: float) -> list[CheckResult]:
    """Run the suites in a child pytest; one check result per test (errors never pass).

    Each result's evidence keeps its test's traceback; the whole output only when pytest
    itself failed, so no log file is needed (and only the report writer writes files).
    """
    doc, secret_env = run_document(report, config)
    tmp = Path(tempfile.mkdtemp(prefix="readygate-suites-"))
    run_file, results_file = tmp / "run.json", tmp / "results.json"
    run_file.write_text(json.dumps(doc, default=str), encoding="utf-8")
    paths = [str(resolve_path(s).resolve()) for s in suites]
    argv = [sys.executable, "-m", "pytest", "-p", "gates.pytest_plugin", "-p", "no:cacheprovider",
            "-q", "-rN", "--readygate-run", str(run_file), "--readygate-results",
            str(results_file), *paths]
    env = {**os.environ, **secret_env}
    env.pop("READYGATE_RUN", None)
    started = time.time()
    text = ""
    data: dict[str, Any] | None = None
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
            preexec_fn=_die_with_parent)
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
            text = output.decode("utf-8", errors="replace")
        except TimeoutError:
            return [_result(f"pytest {', '.join(suites)}", "error",
                            f"the suites did not finish within {timeout_s:g}s (killed)",
                            "critical", {}, time.time())]
        finally:
            if proc.returncode is None:  # timeout or cancellation: stop the child by its PID
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(results_file.read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not isinstance(data, dict):
        return [_result(f"pytest {', '.join(suites)}", "error",
                        f"pytest exited {proc.returncode} without results: {_last_line(text)}",
                        "critical", {"output": text[-2000:]}, time.time())]
    results = to_check_results(data, suites)
    if data.get("exitstatus") in (2, 3, 4):  # interrupted / internal / usage error
        results.append(_result(f"pytest {', '.join(suites)}", "error",
                               f"pytest exited {data['exitstatus']}: {_last_line(text)}",
                               "critical", {"output": text[-2000:],
                                            "duration_s": round(time.time() - started, 3)},
                               time.time()))
    return results


def _result(name: str, status: Any, message: str, severity: str, evidence: dict[str, Any],
            at: float) -> CheckResult:
    return CheckResult(name=name, signal=SIGNAL, status=status, message=message,
                       severity=severity if severity in ("critical", "warning") else "critical",
                       phase=PHASE, evidence=evidence, settled_at=at)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"
