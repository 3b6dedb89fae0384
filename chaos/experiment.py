"""Run a Chaos Toolkit experiment from readygate, and read its journal correctly.

Two Chaos Toolkit behaviours make a naive reading wrong (see FIELD-NOTES):

- a method activity that raised leaves the journal ``status: completed, deviated: false``;
  only the activity says ``failed``. :func:`judge_journal` fails the run on any failed
  ``run[]`` activity, an unmet steady state, a deviation or a non-completed status;
- with the default rollback strategy, rollbacks are skipped when the run ends ``failed``
  or ``interrupted``. :class:`ExperimentRun` then runs them itself.

The experiment runs in a worker thread (chaoslib is synchronous). chaoslib's own runner
installs signal handlers, which only the main thread may do and which would replace
readygate's; :class:`_ThreadRunner` leaves them out. Interrupting raises
``KeyboardInterrupt`` inside the worker thread, between two Python steps: what Ctrl-C
raises in `chaos run`. chaoslib's ``InterruptExecution`` would not do: python providers
turn any ``Exception`` into a failed activity, and the experiment would go on (its next
probe may wait for minutes, and a later action may inject again).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from chaoslib.exceptions import InterruptExecution
from chaoslib.loader import load_experiment
from chaoslib.rollback import run_rollbacks
from chaoslib.run import Runner
from chaoslib.types import Strategy

from core import redact

Verdict = Literal["pass", "fail", "error"]


@dataclass
class ExperimentOutcome:
    """What an experiment run showed, judged from its journal."""

    status: Verdict
    message: str
    title: str = ""
    journal_status: str | None = None
    deviated: bool = False
    failed_activities: list[str] = field(default_factory=list)
    rollbacks: list[dict[str, Any]] = field(default_factory=list)
    rolled_back_by_readygate: bool = False
    started_at: float = 0.0
    ended_at: float = 0.0

    def evidence(self) -> dict[str, Any]:
        """The report's evidence block."""
        return {"title": self.title, "journal_status": self.journal_status,
                "deviated": self.deviated, "failed_activities": self.failed_activities,
                "rollbacks": self.rollbacks,
                "rolled_back_by_readygate": self.rolled_back_by_readygate}


def _name(run: dict[str, Any]) -> str:
    return str((run.get("activity") or {}).get("name") or "?")


def _why(run: dict[str, Any]) -> str:
    exc = run.get("exception")
    if isinstance(exc, list) and exc:
        return redact.scrub(str(exc[-1]).strip().splitlines()[-1])[:200]
    return ""


def judge_journal(journal: dict[str, Any]) -> tuple[Verdict, str, list[str]]:
    """pass / fail and a one-line reason; failed method activities count even when the
    journal says ``completed`` and ``deviated: false``."""
    runs = [r for r in journal.get("run") or [] if isinstance(r, dict)]
    failed = [r for r in runs if r.get("status") == "failed"]
    names = [_name(r) for r in failed]
    status = journal.get("status")
    steady = journal.get("steady_states") or {}
    for when in ("before", "after"):
        state = steady.get(when)
        if isinstance(state, dict) and state.get("steady_state_met") is False:
            bad = [_name(p) for p in state.get("probes") or [] if not p.get("tolerance_met")]
            return "fail", (f"steady state not met {when} the method"
                            f"{': ' + ', '.join(bad) if bad else ''}"), names
    if journal.get("deviated"):
        return "fail", "the steady state deviated after the method", names
    if failed:
        why = _why(failed[0])
        return "fail", (f"method activity failed: {', '.join(names)}"
                        f"{' (' + why + ')' if why else ''} — although the journal says "
                        f"{status!r}"), names
    if status != "completed":
        return "fail", f"the experiment ended {status!r}", names
    return "pass", f"completed: {len(runs)} method activities, steady state met", names


class _ThreadRunner(Runner):  # type: ignore[misc]
    """chaoslib's runner without ``exit_signals()``: it runs in a worker thread."""

    def run(self, experiment: dict[str, Any], settings: Any = None,
            experiment_vars: Any = None, journal: Any = None) -> dict[str, Any]:
        self.configure(experiment, settings, experiment_vars)
        result: dict[str, Any] = self._run(self.strategy, self.schedule, experiment, journal,
                                           self.config, self.secrets, self.settings,
                                           self.event_registry)
        return result


class ExperimentRun:
    """One experiment: run it (blocking, in a thread), interrupt it, finish its rollbacks."""

    def __init__(self, path: str | Path, configuration: dict[str, Any] | None = None) -> None:
        self.path = str(path)
        self.configuration = dict(configuration or {})
        self.experiment: dict[str, Any] = {}
        self.journal: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.rolled_back_by_readygate = False
        self._runner: _ThreadRunner | None = None
        self._thread_id: int | None = None

    def run(self) -> None:
        """Load and run the experiment; never raises (the error is kept)."""
        self._thread_id = threading.get_ident()
        try:
            self.experiment = load_experiment(self.path)
            self._runner = _ThreadRunner(Strategy.DEFAULT)
            # extra vars override the experiment's configuration (env-typed keys included)
            self.journal = self._runner.run(self.experiment, {},
                                            (dict(self.configuration), None))
        except BaseException as exc:  # an interrupt before chaoslib's try, a bad file...
            self.error = exc
        finally:
            self._thread_id = None
            self.done.set()

    def interrupt(self) -> None:
        """Raise ``KeyboardInterrupt`` in the experiment's thread (if it still runs).

        chaoslib ends the run ``interrupted`` at once (a ``BaseException`` passes through
        the providers), then :meth:`ensure_rollbacks` runs the rollbacks it skipped.
        """
        tid = self._thread_id
        if tid is not None and not self.done.is_set():
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid),
                                                       ctypes.py_object(KeyboardInterrupt))

    def ensure_rollbacks(self) -> None:
        """Run the experiment's rollbacks if chaoslib skipped them (failed, interrupted)."""
        declared = self.experiment.get("rollbacks") or []
        if not declared or (self.journal and self.journal.get("rollbacks")):
            return
        runner = self._runner
        config = getattr(runner, "config", None) or {}
        secrets = getattr(runner, "secrets", None) or {}
        results: list[Any] = []
        with ThreadPoolExecutor(max_workers=1) as pool:
            for result in run_rollbacks(self.experiment, config, secrets, pool, None):
                results.append(result.result() if hasattr(result, "result") else result)
        self.rolled_back_by_readygate = True
        if self.journal is not None:
            self.journal["rollbacks"] = results

    def outcome(self, started_at: float) -> ExperimentOutcome:
        """Judge the finished run."""
        ended = time.time()
        title = str(self.experiment.get("title", Path(self.path).name))
        journal = self.journal
        if journal is None:
            err = self.error
            kind = "interrupted" if isinstance(err, InterruptExecution | KeyboardInterrupt) \
                else "could not run"
            return ExperimentOutcome(
                status="fail" if kind == "interrupted" else "error",
                message=redact.scrub(f"experiment {kind}: {type(err).__name__}: {err}")[:300],
                title=title, started_at=started_at, ended_at=ended,
                rolled_back_by_readygate=self.rolled_back_by_readygate)
        verdict, message, failed = judge_journal(journal)
        rollbacks = [{"name": _name(r), "status": r.get("status")}
                     for r in journal.get("rollbacks") or [] if isinstance(r, dict)]
        if any(r["status"] == "failed" for r in rollbacks):
            verdict = "fail"
            message += "; a rollback failed"
        if self.rolled_back_by_readygate:
            message += " (rollbacks run by readygate: Chaos Toolkit skipped them)"
        return ExperimentOutcome(
            status=verdict, message=redact.scrub(message), title=title,
            journal_status=journal.get("status"), deviated=bool(journal.get("deviated")),
            failed_activities=failed, rollbacks=rollbacks,
            rolled_back_by_readygate=self.rolled_back_by_readygate,
            started_at=started_at, ended_at=ended)


async def run_experiment(path: str | Path, configuration: dict[str, Any] | None = None, *,
                         timeout_s: float = 300.0, poll_s: float = 0.05) -> ExperimentOutcome:
    """Run an experiment in a worker thread; on timeout or cancellation interrupt it, and
    always make sure its rollbacks ran before returning (or re-raising the cancellation)."""
    run = ExperimentRun(path, configuration)
    started = time.time()
    thread = threading.Thread(target=run.run, name="ctk-experiment", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    timed_out = False
    try:
        while not run.done.is_set():
            if time.monotonic() > deadline:
                timed_out = True
                run.interrupt()
                break
            await asyncio.sleep(poll_s)
    except asyncio.CancelledError:
        run.interrupt()
        await asyncio.shield(_finish(run, thread))
        raise
    await _finish(run, thread)
    outcome = run.outcome(started)
    if timed_out:
        outcome.status = "fail"
        outcome.message = f"experiment did not finish within {timeout_s:g}s; " + outcome.message
    return outcome


async def _finish(run: ExperimentRun, thread: threading.Thread) -> None:
    """Wait (bounded) for the thread to stop, then run skipped rollbacks."""
    deadline = time.monotonic() + 30.0
    # Not interrupted again: chaoslib may be running the rollbacks by now.
    while thread.is_alive() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    with contextlib.suppress(Exception):
        await asyncio.to_thread(run.ensure_rollbacks)
