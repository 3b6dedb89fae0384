"""Journeys by name: the built-ins (health, login, upload) and those from journeys files.

Each journey takes the httpx client it should use (tests hand in a transport, real runs a
pooled client), returns a :class:`ProbeResult`, and never raises for a failing target:
a failure is a result. Every request carries readygate's traceparent and a request id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx

from core.errors import ConfigError
from probes.builtin import builtin, expand
from probes.correlation import Correlation
from probes.http import run_http
from probes.model import ProbeResult
from probes.spec import BUILTINS, BrowserJourney, BrowserSettings, HttpJourney, JourneysFile


@dataclass(frozen=True)
class JourneyContext:
    """What a journey needs to know about the target."""

    base_url: str
    username: str
    password: str
    timeout_s: float = 5.0
    upload_size_bytes: int = 1024


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


def from_context(name: str, ctx: JourneyContext, interval_s: float = 30.0) -> Journey:
    """A built-in journey configured from a :class:`JourneyContext`."""
    if name not in BUILTINS:
        raise ConfigError(f"no built-in journey {name!r} (one of: {', '.join(BUILTINS)})")
    params = {"size_bytes": ctx.upload_size_bytes} if name == "upload" else {}
    spec = builtin(name, **params).model_copy(update={"timeout_s": ctx.timeout_s})
    spec = expand(name, spec, username=ctx.username, password=ctx.password)
    return Journey(name, spec, ctx.base_url, interval_s)


def resolve(names: list[str], journeys_file: JourneysFile | None, *, base_url: str | None,
            username: str | None, password: str | None, interval_s: float,
            files_dir: Path | None = None, timeout_s: float = 10.0,
            upload_size_bytes: int = 1024) -> list[Journey]:
    """The journeys to run: the named ones (all of the file's, else the built-ins, if none)."""
    defined: dict[str, HttpJourney | BrowserJourney] = {}
    if journeys_file is not None:
        defined.update(journeys_file.journeys)
        defined.update(journeys_file.browser_journeys)
    for name in BUILTINS:
        params = {"size_bytes": upload_size_bytes} if name == "upload" else {}
        defined.setdefault(name, builtin(name, **params).model_copy(
            update={"timeout_s": timeout_s}))
    if not names:
        names = list(journeys_file.journeys) + list(journeys_file.browser_journeys) \
            if journeys_file is not None and (journeys_file.journeys
                                              or journeys_file.browser_journeys) \
            else list(BUILTINS)
    out: list[Journey] = []
    for name in names:
        if name not in defined:
            raise ConfigError(f"no journey named {name!r} (defined: {', '.join(sorted(defined))})")
        spec = defined[name]
        if isinstance(spec, HttpJourney):
            spec = expand(name, spec, username=username, password=password)
        target = spec.base_url or base_url
        if not target:
            raise ConfigError(f"journey {name!r} has no base_url and the config names no "
                              "probe target", key=f"journeys.{name}.base_url")
        browser = journeys_file.browser if journeys_file is not None else BrowserSettings()
        out.append(Journey(name, spec, target, spec.interval_s or interval_s, files_dir,
                           browser))
    return out


# Built-in journeys by name (kept for callers that list them).
JOURNEYS: tuple[str, ...] = BUILTINS


async def run_journey(name: str, client: httpx.AsyncClient, ctx: JourneyContext) -> ProbeResult:
    """Run one built-in journey once; failures are results, never exceptions."""
    return await from_context(name, ctx).run(client)
