"""The scenario runner owns time: baseline → fault → recovery, probes and load throughout.

It emits events (:mod:`core.events`); the timeline, the console and the report are
listeners. Checks of one phase run concurrently; a phase lasts at least its
``min_duration_s`` and until its checks have settled, at most ``max_duration_s`` — never
a fixed sleep for the fault. The fault is removed in a ``finally``: on success, on error
and on cancellation (Ctrl-C / SIGTERM), and the fault proxy's TTL covers SIGKILL. Load
(Locust, in its own processes) and the drill's alert watcher run from the first phase to
the last and are stopped on every path out, before the report is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from chaos.base import FaultError, FaultInjector, InjectedFault
from chaos.config import (
    Experiment,
    Fault,
    chaos_host_problem,
    experiment_urls,
    fault_urls,
)
from core.errors import ConfigError
from core.events import (
    CheckSettled,
    Event,
    EventBus,
    FaultInjected,
    FaultRemoved,
    Note,
    PhaseFinished,
    PhaseStarted,
    ProbeFinished,
    RunFinished,
    RunStarted,
    Timeline,
)
from gates.checks import MULTI_RUNNERS, judge_all
from gates.checks.probe import look_before_fault
from gates.config import Check, HealthCheck
from gates.context import Anchors, CheckContext
from gates.pytest_suites import run_suites
from probes.journeys import Journey, resolve
from probes.model import ProbeResult
from probes.scheduler import ProbeScheduler
from probes.spec import HttpJourney
from reports.model import CheckResult, Report, verdict_of
from scenarios.config import Gate, Phase, RunConfig, check_gate_journeys
from scenarios.drill import drill_summary
from scenarios.load import LoadRunner
from scenarios.watcher import AlertWatcher


@dataclass
class RunEnv:
    """Everything a run talks to, built by the caller (clients are passed in, not built here)."""

    config: RunConfig
    gate_name: str
    client: httpx.AsyncClient
    context: CheckContext
    injector: FaultInjector | None = None
    allow_production: bool = False
    stack_info: dict[str, Any] = field(default_factory=dict)
    workdir: Path | None = None  # where Locust writes its logs and summary


_ROLLBACK_TIMEOUT_S = 10.0


def expected_results(gate: Gate) -> int:
    """How many results a run of ``gate`` settles, as far as is known before it runs.

    A hygiene check settles four; a pytest suite counts once (its tests are not known yet);
    a Chaos Toolkit experiment settles as one check of its own.
    """
    experiment = 1 if gate.scenario.experiment is not None else 0
    return (sum(4 if c.signal in MULTI_RUNNERS else 1 for c in gate.checks)
            + len(gate.suites) + experiment)


class ScenarioRunner:
    """Runs one gate's scenario and checks; :meth:`report` is valid at any moment."""

    def __init__(self, env: RunEnv, bus: EventBus | None = None) -> None:
        self.env = env
        self.gate: Gate = env.config.gates[env.gate_name]
        self.bus = bus or EventBus()
        self.timeline = Timeline()
        self.bus.subscribe(self.timeline)
        self.results: dict[int, list[CheckResult]] = {}  # a hygiene check has several
        self.suite_results: list[CheckResult] = []
        self.extra_results: list[CheckResult] = []  # Chaos Toolkit experiments
        self.faults: list[InjectedFault] = []
        self.started_at = time.time()
        self.finished_at: float | None = None
        self._active_fault: InjectedFault | None = None
        self.fault_error: str | None = None  # the fault could not be injected (or had no effect)
        self.fault_effect: str | None = None  # the fault phase's probes never noticed the fault
        self.load: LoadRunner | None = None
        self.load_summary: dict[str, Any] | None = None
        self.watcher: AlertWatcher | None = None
        self._watch_task: asyncio.Task[None] | None = None

    # -- events ----------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        self.bus.emit(event)

    def _on_probe(self, result: ProbeResult) -> None:
        self.env.context.probe_results.append(result)
        self.emit(ProbeFinished(time.time(), result))

    # -- the run ---------------------------------------------------------------------
    def _safety(self) -> None:
        target = self.env.config.target
        fault = self.gate.scenario.fault
        if fault is None and self.gate.scenario.experiment is None:
            return
        if target.is_protected() and not self.env.allow_production:
            raise ConfigError(f"target {target.name!r} is {target.environment.strip()}: chaos "
                              "refused (pass --allow-production to override); it is one of "
                              "target.protected_environments", key="target.environment")
        # Checked again here, not only at load: `--demo` and scenario files change the target.
        experiment = self.gate.scenario.experiment
        problem = chaos_host_problem(
            (fault_urls(fault, target) if fault is not None else [])
            + (experiment_urls(experiment, target) if experiment is not None else []), target)
        if problem is not None:
            raise ConfigError(problem, key="target.chaos_allowed_hosts")
        if fault is not None and self.env.injector is None:
            raise ConfigError(f"gate {self.env.gate_name!r} injects a fault but no fault proxy "
                              "is configured", key="target.fault_proxies")

    async def run(self) -> Report:
        """Run the scenario to its end and return the report."""
        self._safety()
        config = self.env.config
        # library gates and scenario files name journeys too: refuse a name no probe runs
        # before anything starts (readygate.yaml's own gates were checked when it loaded)
        running = [j.name for j in self.journeys()] if self.gate.scenario.probes else []
        check_gate_journeys(self.gate, running, {}, f"gate {self.env.gate_name}", (),
                            defined=config.catalog.names)
        self.started_at = time.time()
        self.emit(RunStarted(self.started_at, self.env.gate_name, config.target.name))
        scenario = self.gate.scenario
        # a static gate (alert hygiene) needs no probes, so no target.services either
        probes = self._scheduler() if scenario.probes else None
        if probes is not None:
            probes.start()
        try:
            self._start_watcher()
            await self._start_load()
            await self._phase("baseline", scenario.baseline, also=self._until_load_runs())
            self._note_load_not_running()
            if scenario.fault is not None:
                await look_before_fault([c for _, c in self._checks_of("fault")
                                         if isinstance(c, HealthCheck)], self.env.context)
            if scenario.fault is not None and not await self._inject(scenario.fault):
                # not injected (or no effect): a fault phase would judge a healthy system
                self._skip_phase("fault", "the fault was not injected")
                self._skip_phase("recovery", "the fault was not injected")
            elif scenario.fault is not None or scenario.experiment is not None:
                experiment = self._start_experiment()
                await self._phase("fault", scenario.fault_phase, also=experiment)
                self._note_fault_effect()
                await self._rollback("rollback")
                await self._phase("recovery", scenario.recovery,
                                  also=self._until_recovered(probes))
            else:
                self._skip_phase("fault", "no fault configured")
                self._skip_phase("recovery", "no fault configured")
        except asyncio.CancelledError:
            # Ctrl-C / SIGTERM: the fault goes first, shielded from a second signal.
            await asyncio.shield(self._rollback("interrupted"))
            raise
        except BaseException:
            await asyncio.shield(self._rollback("aborted"))
            raise
        finally:
            # Shielded: a second signal must not leave Locust running or the watcher polling.
            await asyncio.shield(self._stop_helpers())
            if probes is not None:
                await probes.stop()
        if self.gate.suites:
            await self._suites()
        report = self.report()
        self.emit(RunFinished(time.time(), report.verdict))
        return report

    def journeys(self) -> list[Journey]:
        """The gate's probe journeys, as configured (any names, any shapes)."""
        config = self.env.config
        password = config.target.credentials.password
        return resolve(config.probes.journeys, config.catalog,
                       base_url=config.probes.base_url(config.target.services),
                       username=config.target.credentials.username,
                       password=password.get_secret_value() if password else None,
                       interval_s=config.probes.interval_s, timeout_s=config.probes.timeout_s)

    def _scheduler(self) -> ProbeScheduler:
        return ProbeScheduler(self.journeys(), self.env.client, self._on_probe,
                              http=self.env.config.probes.http)

    def _alertname(self) -> str | None:
        if self.gate.drill.alertname:
            return self.gate.drill.alertname
        return next((c.alertname for c in self.gate.checks
                     if c.signal == "alert" and c.phase == "fault"), None)

    def _alert_labels(self) -> dict[str, str]:
        if self.gate.drill.alertname:
            return dict(self.gate.drill.labels)
        check = next((c for c in self.gate.checks if c.signal == "alert" and c.phase == "fault"),
                     None)
        return dict(check.labels) if check is not None and check.signal == "alert" else {}

    def _start_watcher(self) -> None:
        """Watch the drill's alert from the start (so a false positive in baseline shows)."""
        name = self._alertname()
        ctx = self.env.context
        chaos = self.gate.scenario.fault is not None or self.gate.scenario.experiment is not None
        if not chaos or name is None or \
                (ctx.prometheus is None and ctx.sink is None):
            return
        self.watcher = AlertWatcher(self.emit, alertname=name, labels=self._alert_labels(),
                                    prometheus=ctx.prometheus, sink=ctx.sink,
                                    since=self.started_at,
                                    interval_s=self.gate.drill.poll_interval_s)
        self._watch_task = asyncio.create_task(self.watcher.run(), name="drill-watcher")

    async def _start_load(self) -> None:
        load = self.gate.scenario.load
        if load is None:
            return
        config = self.env.config
        services = config.target.services
        host = services.get(load.service) if load.service else \
            config.probes.base_url(services)
        if host is None:
            raise ConfigError(f"load.service {load.service!r} is not in target.services"
                              if load.service else "load needs a service: set load.service "
                              "or probes.service", key="scenario.load.service")
        workdir = self.env.workdir or Path(tempfile.mkdtemp(prefix="readygate-load-"))
        journeys = [] if load.locustfile else self._load_journeys(load.journeys, host)
        self.load = LoadRunner(load, host, journeys, workdir=workdir / "load", emit=self.emit)
        await self.load.start()

    def _load_journeys(self, weights: dict[str, int], host: str) -> list[tuple[Journey, int]]:
        """The journeys load runs, with their weights (default: every probe journey, 1)."""
        config = self.env.config
        password = config.target.credentials.password
        names = [n for n, w in weights.items() if w > 0] if weights else \
            (config.probes.journeys or config.catalog.names)
        journeys = resolve(names, config.catalog, base_url=host,
                           username=config.target.credentials.username,
                           password=password.get_secret_value() if password else None,
                           timeout_s=config.probes.timeout_s)
        tls = config.probes.http.tls
        if tls is not None:  # probes.http.tls is every journey's default, under load too
            journeys = [dataclasses.replace(j, spec=j.spec.model_copy(update={"tls": tls}))
                        if isinstance(j.spec, HttpJourney) and j.spec.tls is None else j
                        for j in journeys]
        return [(j, weights.get(j.name, 1) if weights else 1) for j in journeys]

    async def _stop_helpers(self) -> None:
        if self.load is not None and self.load_summary is None:
            try:
                self.load_summary = await self.load.stop()
            except Exception as exc:  # report it; the processes are stopped by PID regardless
                self.load_summary = {**self.load.summary(), "error": f"{type(exc).__name__}: "
                                     f"{exc}"}
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch_task
            self._watch_task = None
            if self.watcher is not None:
                # One last look: the recovery checks may have settled between two polls.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.watcher.poll_once(), 5.0)

    def _checks_of(self, phase: str) -> list[tuple[int, Check]]:
        return [(i, c) for i, c in enumerate(self.gate.checks) if c.phase == phase]

    async def _judge(self, index: int, check: Check, phase: str) -> None:
        results = await judge_all(check, self.env.context, phase)
        self.results[index] = results
        for result in results:
            self.emit(CheckSettled(time.time(), result))

    async def _suites(self) -> None:
        """The gate's pytest suites, after the scenario (the stack still runs): one check each."""
        start = time.time()
        self.env.context.anchors.phase_start["pytest"] = start
        self.emit(PhaseStarted(start, "pytest"))
        try:
            results = await run_suites(self.gate.suites, self.report(), self.env.config,
                                       timeout_s=self.gate.suite_timeout_s)
        finally:
            self.env.context.anchors.phase_end["pytest"] = time.time()
        self.suite_results = results
        for result in results:
            self.emit(CheckSettled(time.time(), result))
        self.emit(PhaseFinished(time.time(), "pytest", "settled"))

    async def _phase(self, name: str, phase: Phase,
                     also: asyncio.Task[None] | None = None) -> None:
        start = time.time()
        self.env.context.anchors.phase_start[name] = start
        self.env.context.anchors.phase_window_end[name] = start + phase.min_duration_s
        self.emit(PhaseStarted(start, name))
        tasks = {asyncio.create_task(self._judge(i, c, name), name=f"check:{c.display_name()}"):
                 (i, c) for i, c in self._checks_of(name)}
        # `also`: the Chaos Toolkit experiment, which settles like a check of this phase
        waiting: set[asyncio.Task[None]] = set(tasks) | ({also} if also is not None else set())
        reason = "settled"
        try:
            if waiting:
                _, pending = await asyncio.wait(waiting, timeout=phase.max_duration_s)
                if pending:
                    reason = "max_duration"
                    for task in pending:
                        task.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                    for task in pending & set(tasks):
                        i, c = tasks[task]
                        key = "fault_phase" if name == "fault" else name
                        self._unsettled(i, c, name, f"not settled when the {name} phase reached "
                                        f"its max duration ({phase.max_duration_s:g}s, "
                                        f"scenario.{key}.max_duration_s)", "fail")
            rest = start + phase.min_duration_s - time.time()
            if rest > 0:  # the observation window of a healthy phase, not a wait for a fault
                await asyncio.sleep(rest)
        except asyncio.CancelledError:
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            self.env.context.anchors.phase_end[name] = time.time()
            self.emit(PhaseFinished(time.time(), name, "interrupted"))
            raise
        self.env.context.anchors.phase_end[name] = time.time()
        self.emit(PhaseFinished(time.time(), name, reason))

    def _unsettled(self, index: int, check: Check, phase: str, message: str,
                   status: Any) -> None:
        result = CheckResult(name=check.display_name(), signal=check.signal, status=status,
                             message=message, severity=check.severity, phase=phase,
                             deadline_s=check.deadline_s, anchor=check.anchor,
                             settled_at=time.time())
        self.results[index] = [result]
        self.emit(CheckSettled(time.time(), result))

    def _start_experiment(self) -> asyncio.Task[None] | None:
        """Start the scenario's Chaos Toolkit experiment (if any) alongside the fault phase."""
        experiment = self.gate.scenario.experiment
        if experiment is None:
            return None
        return asyncio.create_task(self._experiment(experiment), name="ctk-experiment")

    def _experiment_config(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """Experiment configuration from readygate's config: URLs of named targets only."""
        config = self.env.config
        out: dict[str, Any] = {f"{name}_url": url
                               for name, url in config.target.services.items()}
        proxies = config.target.fault_proxies
        fault = self.gate.scenario.fault
        if proxies:
            service = fault.service if fault is not None and fault.service in proxies \
                else next(iter(proxies))
            out["proxy_url"] = proxies[service]
        out.update({f"{name}_proxy_url": url for name, url in proxies.items()})
        for name in ("prometheus", "alertmanager", "sink"):
            backend = getattr(config.backends, name)
            if backend is not None and backend.url:
                out[f"{name}_url"] = backend.url
        out.update(overrides)
        return out

    async def _experiment(self, experiment: Experiment) -> None:
        """Run the experiment; its judged journal becomes a check result of the fault phase."""
        from chaos.experiment import run_experiment  # chaoslib only when a scenario needs it
        from scenarios.files import experiment_path

        name = f"experiment {Path(experiment.path).name}"
        started = time.time()
        stand_in: InjectedFault | None = None
        if self.gate.scenario.fault is None:
            # The experiment is the fault: the drill's times are measured from its start.
            stand_in = InjectedFault(fault_id=f"ctk-{int(started * 1000)}", service="",
                                     kind="experiment", summary=name, started_at=started,
                                     expires_at=started + experiment.timeout_s)
            self.faults.append(stand_in)
            self.env.context.anchors.fault_start = started
            self.emit(FaultInjected(started, stand_in.fault_id, "", "experiment",
                                    experiment.model_dump(mode="json"), stand_in.expires_at))
        try:
            outcome = await run_experiment(experiment_path(experiment.path),
                                           self._experiment_config(dict(experiment.configuration)),
                                           timeout_s=experiment.timeout_s)
        finally:
            if stand_in is not None:
                stand_in.ended_at = time.time()
                stand_in.end_reason = "experiment ended"
                self.env.context.anchors.fault_end = stand_in.ended_at
                self.emit(FaultRemoved(stand_in.ended_at, stand_in.fault_id, "",
                                       stand_in.end_reason))
        result = CheckResult(name=name, signal="experiment", status=outcome.status,
                             message=outcome.message, severity=experiment.severity,
                             phase="fault", latency_s=round(outcome.ended_at - started, 3),
                             deadline_s=experiment.timeout_s, anchor="phase_start",
                             evidence=outcome.evidence(), settled_at=outcome.ended_at)
        self.extra_results.append(result)
        self.emit(CheckSettled(time.time(), result))

    def _skip_phase(self, phase: str, why: str) -> None:
        for i, c in self._checks_of(phase):
            self._unsettled(i, c, phase, f"skipped: {why}", "skipped")

    async def _inject(self, fault: Fault) -> bool:
        """Inject the fault; False, with the reason in the timeline and report, if it failed."""
        assert self.env.injector is not None
        try:
            injected = await self.env.injector.inject(fault)
        except FaultError as exc:  # a hook failed, a target refused, the fault had no effect
            self.fault_error = f"fault not injected: {exc}"
            self.emit(Note(time.time(), self.fault_error, "error"))
            return False
        self._active_fault = injected
        self.faults.append(injected)
        self.env.context.anchors.fault_start = injected.started_at
        self.emit(FaultInjected(injected.started_at, injected.fault_id, injected.service,
                                injected.kind, fault.model_dump(mode="json"), injected.expires_at))
        return True

    def _until_load_runs(self) -> asyncio.Task[None] | None:
        """Keep the baseline open until the load runs: a fault is injected under load.

        Locust takes seconds to import and spawn its users (more on a busy machine); a
        baseline that settles first would inject the fault before any load, and the drill
        would measure an idle system. Bounded by the baseline's ``max_duration_s``.
        """
        if self.load is None:
            return None
        return asyncio.create_task(self.load.wait_running(), name="load-running")

    def _note_load_not_running(self) -> None:
        if self.load is None or self.load.running_at is not None:
            return
        why = "Locust exited" if self.load.procs and not self.load.procs[0].alive() else \
            f"not every one of its {self.load.load.users} users was running"
        self.emit(Note(time.time(), f"the load was not running when the baseline ended ({why}):"
                       " what follows is not measured under the load asked for", "warning"))

    def _until_recovered(self, probes: ProbeScheduler | None) -> asyncio.Task[None] | None:
        """Keep the recovery phase open until the drill sees the system recovered.

        The recovery checks may settle (the alert resolved, one journey healthy) before every
        journey the fault touched has run again: a browser journey every few seconds would
        leave the drill's ``time_to_recover_s`` unmeasured. Bounded by the phase's
        ``max_duration_s``, and over as soon as a recovery check failed (the gate is not ready
        and the drill shows recovery as not observed).
        """
        if probes is None or not self.faults:
            return None
        names = [j.name for j in self.journeys()]
        alertname = self._alertname()
        recovery_checks = [i for i, _ in self._checks_of("recovery")]

        async def wait() -> None:
            while True:
                summary = drill_summary(self.timeline.events, alertname=alertname,
                                        journeys=names)
                if summary["time_to_recover_s"] is not None or any(
                        r.status == "fail" for i in recovery_checks
                        for r in self.results.get(i, ())):
                    return
                await asyncio.sleep(0.25)

        return asyncio.create_task(wait(), name="drill-recovered")

    def _note_fault_effect(self) -> None:
        """Name a fault nobody noticed: every probe during it succeeded (not the checks' fault)."""
        start = self.env.context.anchors.fault_start
        if start is None:
            return
        during = [p for p in self.env.context.probe_results if p.started_at >= start]
        if during and all(p.success and not p.retried for p in during):
            self.fault_effect = (f"no observable effect: all {len(during)} probes during the "
                                 "fault succeeded")
            self.emit(Note(time.time(), f"the fault had {self.fault_effect}", "warning"))

    async def _rollback(self, reason: str) -> None:
        fault = self._active_fault
        if fault is None or self.env.injector is None:
            return
        self._active_fault = None
        ended = time.time()
        try:
            ended = await asyncio.wait_for(self.env.injector.remove(fault), _ROLLBACK_TIMEOUT_S)
            fault.end_reason = reason
        except Exception as exc:  # the TTL still removes it; say so instead of crashing
            fault.end_reason = f"{reason} failed ({type(exc).__name__}); TTL expires it at " \
                               f"{fault.expires_at:.0f}"
        fault.ended_at = ended
        self.env.context.anchors.fault_end = ended
        self.emit(FaultRemoved(ended, fault.fault_id, fault.service, fault.end_reason))

    # -- the report ------------------------------------------------------------------
    def report(self, *, partial: bool = False, reason: str | None = None) -> Report:
        """The report as of now; with ``partial`` unsettled checks are marked skipped."""
        checks: list[CheckResult] = []
        for i, check in enumerate(self.gate.checks):
            if i in self.results:
                checks.extend(self.results[i])
            else:
                checks.append(CheckResult(
                    name=check.display_name(), signal=check.signal, status="skipped",
                    message=f"not judged: {reason or 'the run ended first'}",
                    severity=check.severity, phase=check.phase, deadline_s=check.deadline_s,
                    anchor=check.anchor))
        checks.extend(self.extra_results)
        checks.extend(self.suite_results)
        if self.gate.suites and not self.suite_results:
            checks.extend(CheckResult(
                name=f"pytest {suite}", signal="pytest", status="skipped", phase="pytest",
                message=f"not judged: {reason or 'the suites have not run yet'}")
                for suite in self.gate.suites)
        verdict = verdict_of(checks)
        if (partial or self.fault_error) and verdict == "ready":
            verdict = "inconclusive"
        finished = self.finished_at or time.time()
        anchors: Anchors = self.env.context.anchors
        phases = [{"phase": p, "started_at": anchors.phase_start[p],
                   "finished_at": anchors.phase_end.get(p)} for p in anchors.phase_start]
        return Report(
            gate=self.env.gate_name, target=self.env.config.target.name,
            started_at=self.started_at, finished_at=finished, verdict=verdict, checks=checks,
            partial=partial, reason=reason or self.fault_error,
            description=self.gate.description.strip(), fault_effect=self.fault_effect,
            phases=phases, faults=[dataclasses.asdict(f) for f in self.faults],
            probes=[p.to_dict() for p in self.env.context.probe_results],
            timeline=[_event_dict(e) for e in self.timeline.events
                      if not isinstance(e, ProbeFinished)],
            stack=self.env.stack_info, drill=self._drill(), load=self._load_block())

    def _load_block(self) -> dict[str, Any] | None:
        if self.load is None:
            return None
        return self.load_summary or self.load.summary()

    def _drill(self) -> dict[str, Any] | None:
        """The drill block whenever a fault was injected: milestones and measured times."""
        if not self.faults:
            return None
        watcher = None
        if self.watcher is not None:
            watcher = {"alertname": self.watcher.alertname, "labels": self.watcher.labels,
                       "polls": self.watcher.polls, "rule_for_s": self.watcher.for_s,
                       "errors": self.watcher.errors}
        out = drill_summary(self.timeline.events, alertname=self._alertname(),
                            journeys=[j.name for j in self.journeys()],
                            watcher=watcher)
        out["scenario"] = self.env.gate_name
        out["fault"] = dataclasses.asdict(self.faults[0])
        if self.load is not None:
            out["load"] = self._load_block()
        return out


def _event_dict(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(event).__name__}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if isinstance(value, CheckResult):
            out["check"] = value.name
            out["status"] = value.status
        else:
            out[f.name] = value
    return out

