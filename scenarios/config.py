"""A gate: its scenario (phases, fault, experiment, load), checks, drill and suites."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Protocol, Self, TypeVar

from pydantic import Field, model_validator

from chaos.config import Experiment, Fault, fault_target_problem
from core.config import Loc, Model, dotted, line_for, resolve_path
from core.errors import ConfigError
from core.target import Target
from gates.backends.config import Backends
from gates.config import Check
from probes.config import JourneyName, Probes
from probes.journeys import Catalog, shown_names


class Phase(Model):
    """A phase lasts at least min_duration_s and until its checks settle, at most max_duration_s."""

    min_duration_s: float = Field(0.0, ge=0, le=86400)
    max_duration_s: float = Field(60.0, gt=0, le=86400)

    @model_validator(mode="after")
    def _order(self) -> Phase:
        if self.max_duration_s < self.min_duration_s:
            raise ValueError("max_duration_s must be >= min_duration_s")
        return self


class Load(Model):
    """Locust load running throughout the scenario, in its own process(es)."""

    users: int = Field(5, ge=1, le=100_000)
    spawn_rate: float = Field(5.0, gt=0, le=10_000, description="users started per second")
    journeys: dict[JourneyName, int] = Field(
        default_factory=dict,
        description="journey -> weight; each becomes a Locust task running the journey's "
                    "steps (default: every probe journey, weight 1)")
    locustfile: str | None = Field(
        None, description="your own locustfile instead of the journeys (relative to this "
                          "config); Locust runs it as is")
    service: str | None = Field(
        None, description="the target service the load calls (default: the probes' service)")
    wait_min_s: float = Field(0.1, ge=0, le=3600, description="pause between a user's tasks")
    wait_max_s: float = Field(0.5, ge=0, le=3600)
    max_duration_s: float = Field(900.0, gt=0, le=86400,
                                  description="upper bound: Locust stops by itself after this")
    workers: int = Field(0, ge=0, le=64, description="0: one local Locust process; N: a master "
                         "and N local worker processes (Locust's distributed mode)")
    external_workers: int = Field(0, ge=0, le=10_000, description="workers started elsewhere "
                                  "that the master also waits for (load beyond one machine)")
    master_bind_host: str = Field("127.0.0.1", description="where the master listens for workers")
    stats_interval_s: float = Field(1.0, ge=0.2, le=60, description="how often RPS, failures "
                                    "and p95 go into the timeline")

    @model_validator(mode="after")
    def _checked(self) -> Load:
        if self.wait_max_s < self.wait_min_s:
            raise ValueError("wait_max_s must be >= wait_min_s")
        if self.journeys and not any(w > 0 for w in self.journeys.values()):
            raise ValueError("journeys: at least one journey needs a weight > 0")
        return self


class Scenario(Model):
    """Baseline (healthy) → fault → recovery, probes (and optional load) running throughout."""

    baseline: Phase = Field(default_factory=lambda: Phase(min_duration_s=5, max_duration_s=30))
    fault: Fault | None = None
    experiment: Experiment | None = Field(
        None, description="a Chaos Toolkit experiment run in the fault phase")
    fault_phase: Phase = Field(default_factory=lambda: Phase(max_duration_s=60))
    recovery: Phase = Field(default_factory=lambda: Phase(max_duration_s=60))
    load: Load | None = None
    probes: bool = Field(True, description="run the probes throughout; false for a static "
                         "gate (e.g. alert hygiene) that needs no target.services")


class Drill(Model):
    """What a drill measures: the alert whose pending/firing/notified times make its timeline."""

    alertname: str | None = Field(
        None, description="default: the first alert check of the fault phase")
    labels: dict[str, str] = Field(default_factory=dict)
    poll_interval_s: float = Field(0.25, gt=0, le=60)


class Gate(Model):
    """A named set of a scenario and checks with severities."""

    description: str = ""
    scenario: Scenario = Field(default_factory=Scenario)
    checks: list[Check] = Field(default_factory=list)
    drill: Drill = Field(default_factory=Drill)
    suites: list[str] = Field(
        default_factory=list, description="pytest files or directories run after the scenario; "
        "each test becomes a check (docs/gates.md)")
    suite_timeout_s: float = Field(300.0, gt=0, le=86400, description="for all suites together")

def check_gate_references(gate: Gate, target: Target, lines: Mapping[Loc, int], path: str,
                          prefix: Loc) -> None:
    """One gate's cross-field rules: its fault touches a named target; its suites exist."""
    fault = gate.scenario.fault
    if fault is not None:
        problem = fault_target_problem(fault, target)
        if problem is not None:
            loc: Loc = (*prefix, "scenario", "fault", "service")
            raise ConfigError(problem, path=path, line=line_for(loc, lines), key=dotted(loc))
    for i, suite in enumerate(gate.suites):
        if not resolve_path(suite).exists():
            loc = (*prefix, "suites", i)
            raise ConfigError(f"pytest suite {suite!r} does not exist", path=path,
                              line=line_for(loc, lines), key=dotted(loc))
    chaos = gate.scenario.fault is not None or gate.scenario.experiment is not None
    if not chaos:
        # these would be silently ignored: a gate without a fault has no fault or
        # recovery phase and nothing to drill
        ignored: list[tuple[Loc, str]] = [
            (("scenario", k), f"scenario.{k}") for k in ("fault_phase", "recovery")
                   if k in gate.scenario.model_fields_set]
        ignored += [(("drill",), "drill")] if "drill" in gate.model_fields_set else []
        ignored += [((*("checks", i), "phase"), f"a {c.signal} check in the {c.phase} phase")
                    for i, c in enumerate(gate.checks) if c.phase != "baseline"]
        if ignored:
            loc, what = ignored[0]
            raise ConfigError(f"{what} is never used: this gate has no scenario.fault or "
                              "scenario.experiment, so it runs only the baseline phase",
                              path=path, line=line_for((*prefix, *loc), lines),
                              key=dotted((*prefix, *loc)))


class RunConfig(Protocol):
    """What the scenarios layer reads of the root config (``readygate.config.Config``).

    The root config composes every layer's models and lives at the roof; the layers below
    it take this view of it, so none of them imports the roof.
    """

    @property
    def target(self) -> Target: ...
    @property
    def probes(self) -> Probes: ...
    @property
    def backends(self) -> Backends: ...
    @property
    def gates(self) -> Mapping[str, Gate]: ...
    @property
    def catalog(self) -> Catalog: ...
    def model_copy(self, *, update: Mapping[str, Any] | None = None,
                   deep: bool = False) -> Self: ...


C = TypeVar("C", bound=RunConfig)
"""A root config type: functions that add a gate return the caller's own type."""


def journey_problem(name: str, names: list[str]) -> str:
    """Why ``name`` is not a journey the gate runs (with did-you-mean), for config errors."""
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        return f"no journey named {name!r} runs in this gate (did you mean {close[0]!r}?)"
    shown = shown_names(names) or "none: define journeys or set probes.journeys_file"
    return f"no journey named {name!r} runs in this gate (running: {shown})"


def check_gate_journeys(gate: Gate, running: list[str], lines: Mapping[Loc, int], path: str,
                        prefix: Loc, defined: list[str] | None = None) -> None:
    """Checks that follow a journey name one the gate runs; a gate without probes has none.

    ``running`` is the journeys the gate's probes run; a check that follows probes in a gate
    with ``scenario.probes: false`` could only end inconclusive, so it is refused here.
    """
    for i, check in enumerate(gate.checks):
        if "journey" not in type(check).model_fields:
            continue
        loc: Loc = (*prefix, "checks", i)
        if not gate.scenario.probes:
            raise ConfigError(f"a {check.signal} check follows probes, but this gate runs none "
                              "(scenario.probes is false)", path=path,
                              line=line_for((*loc, "signal"), lines), key=dotted(loc))
        journey = getattr(check, "journey", None)
        if journey is not None and journey not in running:
            raise ConfigError(journey_problem(journey, running), path=path,
                              line=line_for((*loc, "journey"), lines),
                              key=dotted((*loc, "journey")))
    load = gate.scenario.load
    if load is not None:
        for name in load.journeys:
            if name not in (defined or running):
                loc = (*prefix, "scenario", "load", "journeys", name)
                raise ConfigError(journey_problem(name, defined or running), path=path,
                                  line=line_for(loc, lines), key=dotted(loc))
