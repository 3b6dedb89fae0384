"""Journeys by name, from journeys files and readygate.yaml, ready to run.

There are no built-in journeys: a gate, a drill, ``probe run``, ``probe serve`` and load
all run what the user wrote (the demo ships its own journeys file, demo/journeys.yaml).

Each journey takes the httpx client it should use (tests hand in a transport, real runs a
pooled client), returns a :class:`ProbeResult`, and never raises for a failing target:
a failure is a result. Every request carries readygate's traceparent and a request id.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import SecretStr

from core.errors import ConfigError
from core.http import secret_values
from probes.correlation import Correlation
from probes.http import run_http
from probes.model import ProbeResult
from probes.spec import (
    VAR_RE,
    BrowserJourney,
    BrowserSettings,
    HttpJourney,
    JourneysFile,
    load_journeys,
)


class StepFailed(Exception):
    """A step's assertion failed; the message says what was expected and what came back."""


@dataclass(frozen=True)
class Journey:
    """A runnable journey: its definition, its target and how often it runs."""

    name: str
    spec: HttpJourney | BrowserJourney
    base_url: str
    interval_s: float = 30.0
    files_dir: Path | None = None
    browser: BrowserSettings = field(default_factory=BrowserSettings)

    @property
    def kind(self) -> str:
        """``http`` or ``browser``."""
        return "browser" if isinstance(self.spec, BrowserJourney) else "http"

    @property
    def steps(self) -> list[str]:
        """The step names, in order (for the info metric)."""
        if isinstance(self.spec, HttpJourney):
            return [s.display_name(i) for i, s in enumerate(self.spec.steps)]
        return [b.display_name(i) for i, b in enumerate(self.spec.steps)]

    @property
    def run_timeout_s(self) -> float:
        """An upper bound for one run: every step's timeout with its retries, plus slack."""
        spec = self.spec
        total = 0.0
        if isinstance(spec, HttpJourney):
            for step in spec.steps:
                retry = step.retry or spec.retry
                total += ((step.timeout_s or spec.timeout_s) * retry.attempts
                          + retry.backoff_s * retry.attempts ** 2)
        else:
            total = sum(b.timeout_s or spec.timeout_s for b in spec.steps)
        # A browser needs time to launch and to write a trace on failure.
        return total + (15.0 if self.kind == "browser" else 1.0)

    async def run(self, client: httpx.AsyncClient) -> ProbeResult:
        """Run once; a failing target is a failed result, never an exception."""
        if isinstance(self.spec, BrowserJourney):
            from probes.browser import run_browser  # Playwright only when a browser runs

            return await run_browser(self.name, self.spec, self.base_url, self.browser,
                                     files_dir=self.files_dir)
        return await run_http(self.name, self.spec, client, self.base_url, self.files_dir)


def timed_out(journey: Journey, started_at: float, duration_s: float) -> ProbeResult:
    """The result of a run that did not finish within its bound."""
    corr = Correlation(journey.name)
    return ProbeResult(journey=journey.name, started_at=started_at, duration_s=duration_s,
                       success=False, trace_id=corr.trace_id,
                       error=f"{journey.name}: did not finish within "
                             f"{journey.run_timeout_s:.1f}s", kind=journey.kind,
                       target=journey.base_url, user_agent=corr.user_agent)


@dataclass(frozen=True)
class Defined:
    """One journey definition and where it came from (for errors and relative files)."""

    spec: HttpJourney | BrowserJourney
    source: str
    files_dir: Path | None


@dataclass(frozen=True)
class Catalog:
    """Every journey the config defines, by name: from journeys files and inline."""

    journeys: dict[str, Defined] = field(default_factory=dict)
    browser: BrowserSettings = field(default_factory=BrowserSettings)

    @property
    def names(self) -> list[str]:
        """Every defined journey's name, in definition order."""
        return list(self.journeys)

    def secrets(self) -> list[str]:
        """Every secret the journeys define (secrets, passwords, URL credentials, key passwords)."""
        return secret_values(*(d.spec for d in self.journeys.values()))


def build_catalog(files: list[Path], inline: JourneysFile | None = None,
                  inline_source: str = "readygate.yaml",
                  inline_dir: Path | None = None) -> Catalog:
    """Merge journeys files and inline journeys; a name defined twice is a ConfigError."""
    journeys: dict[str, Defined] = {}
    browser: BrowserSettings | None = None
    parts: list[tuple[JourneysFile, str, Path | None]] = [
        (load_journeys(f), str(f), f.parent) for f in files]
    if inline is not None:
        parts.append((inline, inline_source, inline_dir))
    for spec, source, files_dir in parts:
        defined: list[tuple[str, HttpJourney | BrowserJourney]] = [
            *spec.journeys.items(), *spec.browser_journeys.items()]
        for name, journey in defined:
            if name in journeys:
                raise ConfigError(f"journey {name!r} is defined twice (also in "
                                  f"{journeys[name].source})", path=source,
                                  key=f"journeys.{name}")
            journeys[name] = Defined(journey, source, files_dir)
        if "browser" in spec.model_fields_set:
            browser = spec.browser
    return Catalog(journeys, browser or BrowserSettings())


def unknown_journey(name: str, catalog: Catalog) -> str:
    """The message for a journey name the catalog does not define (with did-you-mean)."""
    close = difflib.get_close_matches(name, catalog.names, n=1)
    if close:
        return f"no journey named {name!r} (did you mean {close[0]!r}?)"
    defined = shown_names(catalog.names) or "none: add journeys or probes.journeys_file"
    return f"no journey named {name!r} (defined: {defined})"


def shown_names(names: list[str], at_most: int = 10) -> str:
    """Names for a one-line message: the first few, then how many more."""
    more = len(names) - at_most
    return ", ".join(names[:at_most]) + (f" and {more} more" if more > 0 else "")


def with_credentials(journey: HttpJourney | BrowserJourney, username: str | None,
                     password: str | None) -> HttpJourney | BrowserJourney:
    """``{{username}}`` / ``{{password}}`` from the target, unless the journey sets its own."""
    update: dict[str, object] = {}
    if username is not None and "username" not in journey.vars:
        update["vars"] = {**journey.vars, "username": username}
    if password and "password" not in journey.secrets:
        update["secrets"] = {**journey.secrets, "password": SecretStr(password)}
    return journey.model_copy(update=update) if update else journey


def _uses(journey: HttpJourney | BrowserJourney, var: str) -> bool:
    return var in VAR_RE.findall(journey.model_dump_json(by_alias=True))


def credentials_problem(name: str, spec: HttpJourney | BrowserJourney) -> str | None:
    """Why ``spec`` (credentials filled in) cannot run: it uses a credential nobody set."""
    for var in ("username", "password"):
        known = spec.vars if var == "username" else spec.secrets
        if var not in known and _uses(spec, var):
            return (f"journey {name!r} uses {{{{{var}}}}} but neither the journey nor "
                    f"target.credentials.{var} sets it")
    return None


def resolve(names: list[str], catalog: Catalog, *, base_url: str | None,
            username: str | None = None, password: str | None = None,
            interval_s: float = 30.0, timeout_s: float | None = None) -> list[Journey]:
    """The journeys to run: the named ones, or every defined one if ``names`` is empty.

    A journey without its own ``base_url`` calls ``base_url`` (the probes' service); one
    without its own ``timeout_s`` gets ``timeout_s``.
    """
    out: list[Journey] = []
    for name in names or catalog.names:
        if name not in catalog.journeys:
            raise ConfigError(unknown_journey(name, catalog), key="probes.journeys")
        defined = catalog.journeys[name]
        spec = with_credentials(defined.spec, username, password)
        problem = credentials_problem(name, spec)
        if problem is not None:
            raise ConfigError(problem, path=defined.source, key=f"journeys.{name}")
        if timeout_s is not None and "timeout_s" not in spec.model_fields_set:
            spec = spec.model_copy(update={"timeout_s": timeout_s})
        target = spec.base_url or base_url
        if not target:
            raise ConfigError(f"journey {name!r} has no base_url and the config names no "
                              "probe target (target.services and probes.service)",
                              path=defined.source, key=f"journeys.{name}.base_url")
        out.append(Journey(name, spec, target, spec.interval_s or interval_s,
                           defined.files_dir, catalog.browser))
    return out
