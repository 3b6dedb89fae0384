"""Journeys as YAML: typed models, the file loader, and the static checks on variables.

A journeys file holds HTTP journeys (``journeys:``) and browser journeys
(``browser_journeys:``), each a mapping of name to definition. Errors are one line naming
the file, line and key, like readygate.yaml's (the same loader does the work). Values in
``secrets:`` and basic-auth passwords are registered with :mod:`core.redact`.

Journey variables are written ``{{name}}`` (``${VAR}`` is the environment, resolved when the
file is read). ``{{username}}`` and ``{{password}}`` come from ``target.credentials`` unless
the journey defines them in ``vars`` / ``secrets``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from core import redact
from core.config import parse_model, read_text
from core.errors import ConfigError
from core.http import TlsOptions, check_secret_lengths, resolve_tls_files, secret_values
from probes import jsonpath

Scalar = str | int | float | bool
VAR_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# Set by the engine on every run, usable in any step.
RUNTIME_VARS = frozenset({"run_id", "trace_id", "base_url", "request_sha256", "request_size"})
# Filled from target.credentials when the journey does not define them itself.
TARGET_VARS = frozenset({"username", "password"})


class Model(BaseModel):
    """Journey models: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _exactly_one(model: BaseModel, names: tuple[str, ...], what: str) -> None:
    given = [n for n in names if getattr(model, n) is not None]
    if len(given) != 1:
        shown = ", ".join(n.rstrip("_") for n in names)
        raise ValueError(f"{what} needs exactly one of: {shown}"
                         + (f" (got {', '.join(g.rstrip('_') for g in given)})" if given else ""))


def _regex(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad regex /{pattern}/: {exc}") from None


class Content(Model):
    """Bytes to send: inline text, a file on disk, or ``generate`` random bytes of a size."""

    text: str | None = None
    file: str | None = Field(None, description="path, relative to the journeys file")
    generate: int | None = Field(None, ge=0, le=1_000_000_000,
                                 description="this many random bytes, new on every run")
    filename: str | None = Field(None, description="multipart file name")
    content_type: str = "application/octet-stream"

    @model_validator(mode="after")
    def _one(self) -> Content:
        _exactly_one(self, ("text", "file", "generate"), "a body")
        return self


class BasicAuth(Model):
    """HTTP basic credentials (the password is a secret)."""

    username: str
    password: SecretStr


class Extract(Model):
    """Take a value from the response into a variable: JSON path, header, cookie or regex."""

    json_: str | None = Field(None, alias="json", description="JSON path, e.g. $.items[0].id")
    header: str | None = None
    cookie: str | None = None
    regex: str | None = Field(None, description="on the body; group 1 if there is one")
    secret: bool = Field(False, description="mask the value in every message (tokens)")

    @model_validator(mode="after")
    def _one(self) -> Extract:
        _exactly_one(self, ("json_", "header", "cookie", "regex"), "an extraction")
        if self.regex is not None:
            _regex(self.regex)
        if self.json_ is not None:
            jsonpath.parse(self.json_)
        return self


class JsonExpect(Model):
    """A condition on one JSON path: equal, present/absent, or matching a regex."""

    equals: Any = None
    exists: bool | None = None
    matches: str | None = None


class Expect(Model):
    """Assertions on a response; the first that fails is the step's message."""

    status: int | list[int] | None = Field(None, description="default: any 2xx")
    headers: dict[str, str] = Field(default_factory=dict, description="header: regex")
    json_: dict[str, Scalar | JsonExpect | None] = Field(
        default_factory=dict, alias="json", description="JSON path: value or condition")
    regex: str | None = Field(None, description="the body must match this")
    sha256: str | None = Field(None, description="hex digest the body must have")
    latency_ms: float | None = Field(None, gt=0, description="the step must take at most this")

    @model_validator(mode="after")
    def _regexes(self) -> Expect:
        for pattern in [self.regex, *self.headers.values()]:
            if pattern is not None:
                _regex(pattern)
        for path in self.json_:
            jsonpath.parse(path)
        return self


RetryOn = Literal["network", "timeout", "5xx"]


def _network_only() -> list[RetryOn]:
    return ["network"]


class Retry(Model):
    """When to send a step again; a success after a retry is reported as such."""

    attempts: int = Field(2, ge=1, le=10, description="total tries, the first included")
    on: list[RetryOn] = Field(
        default_factory=_network_only,
        description="network: connection failures; timeout: no answer in time; 5xx")
    backoff_s: float = Field(0.2, ge=0, le=60)


class Step(Model):
    """One HTTP request of a journey."""

    name: str | None = None
    method: str = "GET"
    url: str = Field(description="path under base_url, or a full URL")
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Scalar] = Field(
        default_factory=dict, description="query parameters, added to any in the url")
    json_: Any = Field(None, alias="json", description="JSON body")
    form: dict[str, Scalar] | None = None
    multipart: dict[str, Scalar | Content] | None = None
    body: Content | None = Field(None, description="raw body")
    basic_auth: BasicAuth | None = None
    follow_redirects: bool = False
    timeout_s: float | None = Field(None, gt=0, le=300)
    retry: Retry | None = Field(None, description="default: the journey's retry")
    expect: Expect = Field(default_factory=Expect)
    extract: dict[str, Extract] = Field(default_factory=dict)
    always: bool = Field(False, description="run even after an earlier step failed (clean-up)")

    @model_validator(mode="after")
    def _one_body(self) -> Step:
        bodies = [n for n in ("json_", "form", "multipart", "body") if getattr(self, n) is not None]
        if len(bodies) > 1:
            raise ValueError("a step has at most one of json, form, multipart, body")
        return self

    def display_name(self, index: int) -> str:
        """The step's name, or ``step N``."""
        return self.name or f"step {index + 1}"


class HttpJourney(Model):
    """An HTTP journey: ordered steps, each a request with its expectations."""

    base_url: str | None = Field(None, description="default: the config's probe target")
    interval_s: float | None = Field(None, gt=0, le=86400)
    timeout_s: float = Field(10.0, gt=0, le=300, description="per step, unless the step says")
    retry: Retry = Field(default_factory=Retry)
    vars: dict[str, Scalar] = Field(default_factory=dict)
    secrets: dict[str, SecretStr] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)
    tls: TlsOptions | None = Field(
        None, description="CA bundle, client certificate, skip-verify, server name for this "
                          "journey (default: probes.http.tls); files relative to this file")


class Fill(Model):
    """Type a value into a field."""

    selector: str
    value: str


class InputFiles(Model):
    """Choose a file for a file input (from disk or generated)."""

    selector: str
    content: Content


class BrowserStep(Model):
    """One browser action or expectation; exactly one of the action keys."""

    name: str | None = None
    goto: str | None = None
    fill: Fill | None = None
    click: str | None = None
    set_input_files: InputFiles | None = None
    expect_text: str | None = Field(None, description="text visible on the page")
    expect_selector: str | None = Field(None, description="an element that must be visible")
    expect_url: str | None = Field(None, description="regex the page URL must match")
    timeout_s: float | None = Field(None, gt=0, le=300)

    _ACTIONS = ("goto", "fill", "click", "set_input_files", "expect_text", "expect_selector",
                "expect_url")

    @model_validator(mode="after")
    def _one(self) -> BrowserStep:
        _exactly_one(self, self._ACTIONS, "a browser step")
        return self

    def action(self) -> str:
        """The action key this step uses."""
        return next(a for a in self._ACTIONS if getattr(self, a) is not None)

    def display_name(self, index: int) -> str:
        """The step's name, or ``<action> N``."""
        return self.name or f"{self.action()} {index + 1}"


class BrowserJourney(Model):
    """A journey in a real browser (Playwright driving Chromium)."""

    base_url: str | None = None
    interval_s: float | None = Field(None, gt=0, le=86400)
    timeout_s: float = Field(10.0, gt=0, le=300, description="per step")
    vars: dict[str, Scalar] = Field(default_factory=dict)
    secrets: dict[str, SecretStr] = Field(default_factory=dict)
    steps: list[BrowserStep] = Field(min_length=1)


class BrowserSettings(Model):
    """How browser journeys launch Chromium and where failure artifacts go."""

    executable_path: str = "/usr/bin/chromium"
    artifacts_dir: str = Field("out/probes/artifacts",
                               description="screenshots and trace zips of failed runs")
    viewport: tuple[int, int] = (1280, 800)


class JourneysFile(Model):
    """A journeys file."""

    version: Literal[1] = 1
    journeys: dict[str, HttpJourney] = Field(default_factory=dict)
    browser_journeys: dict[str, BrowserJourney] = Field(default_factory=dict)
    browser: BrowserSettings = Field(default_factory=BrowserSettings)

    def secrets(self) -> list[str]:
        """Every configured secret value (for redaction and leak scans)."""
        out: list[str] = []
        for j in self.journeys.values():
            out += [s.get_secret_value() for s in j.secrets.values()]
            for step in j.steps:
                if step.basic_auth is not None:
                    out.append(step.basic_auth.password.get_secret_value())
        for b in self.browser_journeys.values():
            out += [s.get_secret_value() for s in b.secrets.values()]
        # URL user-info (base_url, step URLs) and TLS key passwords
        return out + secret_values(self)


def _strings(value: Any, loc: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    """Every string inside a dumped step, with its key path."""
    if isinstance(value, str):
        return [(loc, value)]
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _strings(v, (*loc, k))]
    if isinstance(value, list | tuple):
        return [x for i, v in enumerate(value) for x in _strings(v, (*loc, i))]
    return []


def _line(lines: dict[tuple[str | int, ...], int], loc: tuple[str | int, ...]) -> int | None:
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


def _dotted(loc: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p)
                   for i, p in enumerate(loc))


def check_variables(spec: JourneysFile, lines: dict[tuple[str | int, ...], int],
                    path: str) -> None:
    """Every ``{{var}}`` is defined before use (vars, secrets, an earlier extract, runtime)."""
    groups: list[tuple[str, str, dict[str, Any], list[Any]]] = [
        ("journeys", n, {**j.vars, **j.secrets}, list(j.steps)) for n, j in spec.journeys.items()]
    groups += [("browser_journeys", n, {**b.vars, **b.secrets}, list(b.steps))
               for n, b in spec.browser_journeys.items()]
    for section, name, defined, steps in groups:
        known = set(defined) | RUNTIME_VARS | TARGET_VARS
        for i, step in enumerate(steps):
            dumped = step.model_dump(by_alias=True, exclude_none=True)
            for loc, text in _strings(dumped, (section, name, "steps", i)):
                for var in VAR_RE.findall(text):
                    if var not in known:
                        raise ConfigError(f"unknown variable '{var}' (defined here: "
                                          f"{', '.join(sorted(known - RUNTIME_VARS)) or 'none'})",
                                          path=path, line=_line(lines, loc), key=_dotted(loc))
            known |= set(getattr(step, "extract", {}) or {})


def parse_journeys(text: str, path: str = "<journeys>") -> JourneysFile:
    """Parse a journeys file; raise :class:`ConfigError` naming file:line and key."""
    spec, lines = parse_model(text, path, JourneysFile)
    base = Path(path).resolve().parent if Path(path).is_file() else Path.cwd()
    spec = resolve_tls_files(spec, base, path=path, lines=lines)
    check_variables(spec, lines, path)
    check_secret_lengths(spec, path, lines)  # too short to mask: refused by name
    redact.register(*spec.secrets())
    return spec


def load_journeys(path: str | Path) -> JourneysFile:
    """Read and validate a journeys file."""
    # read_text bounds the size and names the file on any read or decoding problem
    return parse_journeys(read_text(path, "journeys"), str(path))
