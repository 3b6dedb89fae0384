"""Scenario files: ``scenarios/<name>.yaml``, a gate of its own that ``readygate drill`` runs.

A scenario file has the keys of a gate in readygate.yaml (``description``, ``scenario`` with
its phases, fault and load, ``checks``, ``drill``) plus an optional ``name``. It is loaded
with the config's own loader, so a mistake reads ``scenarios/x.yaml:12 scenario.fault.kind:
...`` and the CLI exits 3. The target, probes and backends come from the config.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field

from chaos.config import fault_target_problem
from core.config import parse_model, read_text
from core.errors import ConfigError
from scenarios.config import C, Gate

SCENARIO_DIR = Path(__file__).resolve().parent
"""Where the bundled scenario files live."""


class ScenarioFile(Gate):
    """A gate in a file of its own, run by ``readygate drill``."""

    name: str | None = Field(None, description="default: the file name without .yaml")


def _line(loc: tuple[str, ...], lines: Mapping[tuple[str | int, ...], int]) -> int | None:
    """The line of ``loc`` or of its nearest parent."""
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


def _experiment_path(given: str, scenario_file: Path) -> Path:
    """An experiment path as given, else relative to the scenario file, else the checkout."""
    for candidate in (Path(given), scenario_file.parent / given, SCENARIO_DIR.parent / given):
        if candidate.exists():
            return candidate
    return Path(given)


def experiment_path(given: str, scenario_file: Path | None = None) -> Path:
    """Where an experiment named in a scenario lives (see :func:`_experiment_path`)."""
    return _experiment_path(given, scenario_file or SCENARIO_DIR / "x.yaml")


def available() -> list[str]:
    """Names of the bundled scenarios."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def resolve(name_or_path: str) -> Path:
    """A scenario's file: a path as given, else ``scenarios/<name>.yaml``."""
    given = Path(name_or_path)
    if given.suffix in (".yaml", ".yml") or given.exists():
        if not given.exists():
            raise ConfigError("scenario file not found", path=str(given))
        return given
    bundled = SCENARIO_DIR / f"{name_or_path}.yaml"
    if bundled.exists():
        return bundled
    names = available()
    close = difflib.get_close_matches(name_or_path, names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (bundled: {', '.join(names)})"
    raise ConfigError(f"no scenario named '{name_or_path}'{hint}", key="scenario")


def load_scenario(name_or_path: str, config: C) -> tuple[str, C]:
    """Parse a scenario file and return its gate name and the config with that gate added."""
    path = resolve(name_or_path)
    shown = str(path)
    scenario, lines = parse_model(read_text(path, "scenario"), shown, ScenarioFile)
    fault = scenario.scenario.fault
    # Chaos touches only what the config names: the same rule as for readygate.yaml's gates.
    problem = None if fault is None else fault_target_problem(fault, config.target)
    if problem is not None:
        loc = ("scenario", "fault", "service")
        raise ConfigError(problem, path=shown, line=_line(loc, lines), key=".".join(loc))
    experiment = scenario.scenario.experiment
    if experiment is not None and not _experiment_path(experiment.path, path).exists():
        loc = ("scenario", "experiment", "path")
        raise ConfigError(f"experiment file {experiment.path!r} not found", path=shown,
                          line=_line(loc, lines), key=".".join(loc))
    if experiment is not None:
        # Absolute, so the drill finds it whatever the working directory.
        found = experiment.model_copy(
            update={"path": str(_experiment_path(experiment.path, path).resolve())})
        scenario = scenario.model_copy(update={
            "scenario": scenario.scenario.model_copy(update={"experiment": found})})
    load = scenario.scenario.load
    services = config.target.services
    if load is not None and load.locustfile is not None:
        found_file = Path(load.locustfile)
        found_file = found_file if found_file.is_absolute() else path.parent / found_file
        if not found_file.is_file():
            loc = ("scenario", "load", "locustfile")
            raise ConfigError(f"locustfile {load.locustfile!r} not found (looked at "
                              f"{found_file})", path=shown, line=_line(loc, lines),
                              key=".".join(loc))
        load = load.model_copy(update={"locustfile": str(found_file.resolve())})
        scenario = scenario.model_copy(update={
            "scenario": scenario.scenario.model_copy(update={"load": load})})
    if load is not None and services and load.service is not None \
            and load.service not in services:
        loc = ("scenario", "load", "service")
        raise ConfigError(f"{load.service!r} is not in target.services "
                          f"({', '.join(sorted(services))})", path=shown,
                          line=_line(loc, lines), key=".".join(loc))
    name = scenario.name or path.stem
    return name, config.model_copy(update={"gates": {**config.gates, name: scenario}})
