"""The scenario runner owns time: baseline → fault → recovery, probes throughout.

It emits events (:mod:`readygate.events`); the timeline, the console and the report are
listeners. Checks of one phase run concurrently; a phase lasts at least its
``min_duration_s`` and until its checks have settled, at most ``max_duration_s`` — never
a fixed sleep for the fault. The fault is removed in a ``finally``: on success, on error
and on cancellation (Ctrl-C / SIGTERM), and the fault proxy's TTL covers SIGKILL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from chaos.base import FaultInjector, InjectedFault
from gates.checks import judge
from gates.context import Anchors, CheckContext
from probes.journeys import JourneyContext
from probes.model import ProbeResult
from probes.scheduler import ProbeScheduler
from readygate.config import Check, Config, Fault, Gate, Phase
from readygate.errors import ConfigError
from readygate.events import (
    CheckSettled,
    Event,
    EventBus,
    FaultInjected,
    FaultRemoved,
    PhaseFinished,
    PhaseStarted,
    ProbeFinished,
    RunFinished,
    RunStarted,
    Timeline,
)
from reports.model import CheckResult, Report, verdict_of


@dataclass
class RunEnv:
    """Everything a run talks to, built by the caller (clients are passed in, not built here)."""

    config: Config
    gate_name: str
    client: httpx.AsyncClient
    context: CheckContext
    injector: FaultInjector | None = None
    allow_production: bool = False
    stack_info: dict[str, Any] = field(default_factory=dict)


_ROLLBACK_TIMEOUT_S = 10.0


class ScenarioRunner:
    """Runs one gate's scenario and checks; :meth:`report` is valid at any moment."""

    def __init__(self, env: RunEnv, bus: EventBus | None = None) -> None:
        self.env = env
        self.gate: Gate = env.config.gates[env.gate_name]
        self.bus = bus or EventBus()
        self.timeline = Timeline()
        self.bus.subscribe(self.timeline)
        self.results: dict[int, CheckResult] = {}
        self.faults: list[InjectedFault] = []
        self.started_at = time.time()
        self.finished_at: float | None = None
        self._active_fault: InjectedFault | None = None

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
        if fault is None:
            return
        if target.environment == "production" and not self.env.allow_production:
            raise ConfigError(f"target {target.name!r} is production: chaos refused "
                              "(pass --allow-production to override)", key="target.environment")
        if self.env.injector is None:
            raise ConfigError(f"gate {self.env.gate_name!r} injects a fault but no fault proxy "
                              "is configured", key="target.fault_proxies")

    async def run(self) -> Report:
        """Run the scenario to its end and return the report."""
        self._safety()
        config = self.env.config
        self.started_at = time.time()
        self.emit(RunStarted(self.started_at, self.env.gate_name, config.target.name))
        probes = self._scheduler()
        probes.start()
        scenario = self.gate.scenario
        try:
            await self._phase("baseline", scenario.baseline)
            if scenario.fault is not None:
                await self._inject(scenario.fault)
                await self._phase("fault", scenario.fault_phase)
                await self._rollback("rollback")
                await self._phase("recovery", scenario.recovery)
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
            await probes.stop()
        report = self.report()
        self.emit(RunFinished(time.time(), report.verdict))
        return report

    def _scheduler(self) -> ProbeScheduler:
        config = self.env.config
        base = config.target.services.get(config.probes.service)
        if base is None:
            raise ConfigError(f"probes.service {config.probes.service!r} is not in "
                              "target.services", key="probes.service")
        password = config.target.credentials.password
        ctx = JourneyContext(base_url=base, username=config.target.credentials.username,
                             password=password.get_secret_value() if password else "",
                             timeout_s=config.probes.timeout_s,
                             upload_size_bytes=config.probes.upload_size_bytes)
        return ProbeScheduler(config.probes.journeys, self.env.client, ctx,
                              config.probes.interval_s, self._on_probe)

    def _checks_of(self, phase: str) -> list[tuple[int, Check]]:
        return [(i, c) for i, c in enumerate(self.gate.checks) if c.phase == phase]

    async def _judge(self, index: int, check: Check, phase: str) -> None:
        result = await judge(check, self.env.context, phase)
        self.results[index] = result
        self.emit(CheckSettled(time.time(), result))

    async def _phase(self, name: str, phase: Phase) -> None:
        start = time.time()
        self.env.context.anchors.phase_start[name] = start
        self.emit(PhaseStarted(start, name))
        tasks = {asyncio.create_task(self._judge(i, c, name), name=f"check:{c.display_name()}"):
                 (i, c) for i, c in self._checks_of(name)}
        reason = "settled"
        try:
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=phase.max_duration_s)
                if pending:
                    reason = "max_duration"
                    for task in pending:
                        task.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                    for task in pending:
                        i, c = tasks[task]
                        self._unsettled(i, c, name, f"not settled when the {name} phase reached "
                                        f"its max duration ({phase.max_duration_s:g}s)", "fail")
            rest = start + phase.min_duration_s - time.time()
            if rest > 0:  # the observation window of a healthy phase, not a wait for a fault
                await asyncio.sleep(rest)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
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
        self.results[index] = result
        self.emit(CheckSettled(time.time(), result))

    def _skip_phase(self, phase: str, why: str) -> None:
        for i, c in self._checks_of(phase):
            self._unsettled(i, c, phase, f"skipped: {why}", "skipped")

    async def _inject(self, fault: Fault) -> None:
        assert self.env.injector is not None
        injected = await self.env.injector.inject(fault)
        self._active_fault = injected
        self.faults.append(injected)
        self.env.context.anchors.fault_start = injected.started_at
        self.emit(FaultInjected(injected.started_at, injected.fault_id, injected.service,
                                injected.kind, fault.model_dump(mode="json"), injected.expires_at))

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
                checks.append(self.results[i])
            else:
                checks.append(CheckResult(
                    name=check.display_name(), signal=check.signal, status="skipped",
                    message=f"not judged: {reason or 'the run ended first'}",
                    severity=check.severity, phase=check.phase, deadline_s=check.deadline_s,
                    anchor=check.anchor))
        verdict = verdict_of(checks)
        if partial and verdict == "ready":
            verdict = "inconclusive"
        finished = self.finished_at or time.time()
        anchors: Anchors = self.env.context.anchors
        phases = [{"phase": p, "started_at": anchors.phase_start[p],
                   "finished_at": anchors.phase_end.get(p)} for p in anchors.phase_start]
        return Report(
            gate=self.env.gate_name, target=self.env.config.target.name,
            started_at=self.started_at, finished_at=finished, verdict=verdict, checks=checks,
            partial=partial, reason=reason, description=self.gate.description.strip(),
            phases=phases, faults=[dataclasses.asdict(f) for f in self.faults],
            probes=[p.to_dict() for p in self.env.context.probe_results],
            timeline=[_event_dict(e) for e in self.timeline.events
                      if not isinstance(e, ProbeFinished)],
            stack=self.env.stack_info)


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

