"""readygate.yaml: the root ``Config`` composing every layer's own models.

Each layer owns its configuration beside its code (``probes.config``, ``chaos.config``,
``gates.config``, ``gates.backends.config``, ``scenarios.config``, ``reports.config``,
``core.target``); the loader with line numbers and ``${VAR}`` is ``core.config``. Values
of secret fields (passwords, tokens, webhook URLs) are registered with
:mod:`core.redact` and never shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError

from core import redact
from core.config import (
    CHECKOUT,
    Loc,
    Model,
    error_at,
    format_validation,
    load_yaml,
    read_text,
)
from core.config import json_schema as schema_of
from core.http import check_secret_lengths, resolve_tls_files, secret_values
from core.target import Target
from gates.backends.config import Backends, check_backends
from probes.config import Probes
from probes.journeys import (
    Catalog,
    build_catalog,
    credentials_problem,
    unknown_journey,
    with_credentials,
)
from probes.spec import (
    BrowserJourney,
    BrowserSettings,
    HttpJourney,
    JourneysFile,
    check_variables,
)
from reports.config import Links, Notify, Reports
from scenarios.config import Gate, RunConfig, check_gate_journeys, check_gate_references
from stack.config import StackSettings, check_stack


class DemoSettings(Model):
    """How `readygate demo` runs the bundled demo system."""

    gate: str = "release"
    sabotage: list[str] = Field(default_factory=list)
    rules_file: str | None = Field(
        None, description="alert rules to load instead of the demo's own")


class Config(Model):
    """The whole readygate.yaml."""

    version: Literal[1] = 1
    target: Target = Field(default_factory=Target)
    backends: Backends = Field(default_factory=Backends)
    probes: Probes = Field(default_factory=Probes)
    journeys: dict[str, HttpJourney] = Field(
        default_factory=dict, description="HTTP journeys written inline (the same shape as a "
                                          "journeys file's; docs/journeys.md)")
    browser_journeys: dict[str, BrowserJourney] = Field(
        default_factory=dict, description="browser journeys written inline")
    browser: BrowserSettings | None = Field(
        None, description="how browser journeys launch Chromium (default: a journeys file's)")
    gates: dict[str, Gate] = Field(default_factory=dict)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    links: Links = Field(default_factory=Links)
    notify: Notify = Field(default_factory=Notify)
    reports: Reports = Field(default_factory=Reports)
    stack: StackSettings | None = Field(
        None, description="what `readygate stack` starts around your running service "
                          "(docs/stack.md)")

    _catalog: Catalog = PrivateAttr(default_factory=Catalog)

    @property
    def catalog(self) -> Catalog:
        """Every journey defined for this config: its journeys files and inline journeys."""
        return self._catalog

    def secrets(self) -> list[str]:
        """Every secret value in this config (for redaction and leak scans)."""
        out: list[str] = []
        # passwords in URL user-info, basic auth, header values, TLS key passwords
        out += self.target.secrets() + self.backends.secrets() + secret_values(self.probes)
        out += secret_values(self.reports)  # the Grafana annotations token, basic auth, headers
        if self.target.credentials.password is not None:
            out.append(self.target.credentials.password.get_secret_value())
        for backend in (self.backends.prometheus, self.backends.alertmanager, self.backends.sink,
                        *self.backends.by_signal().values()):
            if backend is not None and backend.token is not None:
                out.append(backend.token.get_secret_value())
        slack, webhook = self.notify.slack, self.notify.webhook
        for secret in (slack and slack.webhook_url, slack and slack.token,
                       webhook and webhook.url):
            if secret:
                out.append(secret.get_secret_value())
        out += self._catalog.secrets() + (self.stack.secrets() if self.stack else [])
        # a journey's `password: "{{password}}"` is a reference, not a secret: the rendered
        # value's source (target.credentials) is listed itself; dropping the template keeps
        # the count honest and a log line showing "{{password}}" from counting as a leak
        return list(dict.fromkeys(v for v in out if v and not _TEMPLATE.search(v)))


_TEMPLATE = re.compile(r"\{\{.*?\}\}")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of readygate.yaml."""
    return schema_of(Config, "readygate.yaml")


def parse_config(text: str, path: str = "<config>") -> Config:
    """Parse and validate config text; raise :class:`ConfigError` with file:line and key.

    Relative paths in the config (journeys files, a load's locustfile, the demo's rules)
    are relative to the config file's directory.
    """
    data, lines = load_yaml(text, path)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise format_validation(exc, data, lines, path, Config) from None
    # a secret too short to mask is refused by name, never claimed "redacted"
    check_secret_lengths(config, path, lines)
    base = _base_dir(path)
    # TLS files (CA bundle, client cert and key) relative to the config, checked to load
    config = resolve_tls_files(config, base, path=path, lines=lines)
    inline = JourneysFile(journeys=config.journeys, browser_journeys=config.browser_journeys,
                          **({"browser": config.browser} if config.browser else {}))
    check_variables(inline, lines, path)
    redact.register(*inline.secrets())
    files: list[Path] = []
    for i, name in enumerate(config.probes.files()):
        loc: Loc = ("probes", "journeys_file") if isinstance(config.probes.journeys_file, str) \
            else ("probes", "journeys_file", i)
        files.append(_existing(name, base, "journeys file", path, loc, lines))
    config._catalog = build_catalog(files, inline, path, base)
    config = _with_paths(config, base, lines, path)
    _check_references(config, lines, path)
    redact.register(*config.secrets())
    return config


def _base_dir(path: str) -> Path:
    p = Path(path)
    return p.resolve().parent if p.is_file() else Path.cwd()


def _existing(name: str, base: Path, what: str, path: str, loc: Loc,
              lines: Mapping[Loc, int]) -> Path:
    """``name`` relative to ``base`` (or as given), which must be a readable file."""
    p = Path(name)
    p = p if p.is_absolute() else base / p
    if not p.is_file():
        raise error_at(f"{what} {name!r} not found (looked at {p})", path, loc, lines)
    return p


def _with_paths(config: Config, base: Path, lines: Mapping[Loc, int], path: str) -> Config:
    """The config with its gates' locustfiles and the demo's rules file made absolute."""
    gates = {}
    for gname, gate in config.gates.items():
        load = gate.scenario.load
        if load is not None and load.locustfile is not None:
            loc: Loc = ("gates", gname, "scenario", "load", "locustfile")
            found = _existing(load.locustfile, base, "locustfile", path, loc, lines)
            scenario = gate.scenario.model_copy(
                update={"load": load.model_copy(update={"locustfile": str(found)})})
            gate = gate.model_copy(update={"scenario": scenario})
        gates[gname] = gate
    demo = config.demo
    if demo.rules_file is not None:
        found = _existing(demo.rules_file, base, "rules file", path, ("demo", "rules_file"),
                          lines)
        demo = demo.model_copy(update={"rules_file": str(found)})
    stack = config.stack
    if stack is not None:
        # like every path in readygate.yaml, the stack's are relative to the config file
        def here(name: str) -> str:
            return name if Path(name).is_absolute() else str(base / name)
        stack = stack.model_copy(update={
            "rules": [here(r) for r in stack.rules],
            "alertmanager_config": stack.alertmanager_config and
            here(stack.alertmanager_config)})
    return config.model_copy(update={"gates": gates, "demo": demo, "stack": stack})


def probe_journeys(config: RunConfig) -> list[str]:
    """The journeys a gate's probes run: ``probes.journeys``, else every defined one."""
    return list(config.probes.journeys) or config.catalog.names


def _check_references(config: Config, lines: Mapping[Loc, int], path: str) -> None:
    """Cross-field rules: known backend kinds, journeys by name, chaos on named targets only."""
    check_backends(config.backends, lines, path)
    check_stack(config.stack, lines, path)
    catalog = config.catalog
    for i, name in enumerate(config.probes.journeys):
        if name not in catalog.journeys:
            raise error_at(unknown_journey(name, catalog), path, ("probes", "journeys", i),
                           lines)
    services = config.target.services
    if config.probes.service is not None and services \
            and config.probes.service not in services:
        raise error_at(f"{config.probes.service!r} is not in target.services "
                       f"({', '.join(sorted(services))})", path, ("probes", "service"), lines)
    if len(services) > 1 and config.probes.service is None and any(
            d.spec.base_url is None for n, d in catalog.journeys.items()
            if n in probe_journeys(config)):
        raise error_at("target.services names several services: say which one journeys "
                       f"without a base_url call ({', '.join(sorted(services))})", path,
                       ("probes",), lines)
    if any(g.scenario.probes for g in config.gates.values()):
        creds = config.target.credentials
        password = creds.password.get_secret_value() if creds.password else None
        for name in probe_journeys(config):
            defined = catalog.journeys[name]
            problem = credentials_problem(
                name, with_credentials(defined.spec, creds.username, password))
            if problem is not None:
                where = ("journeys", name) if defined.source == path else ("probes",)
                raise error_at(problem, path, where, lines)
    for gname, gate in config.gates.items():
        _check_backends_for_checks(config, gate.checks, lines, path, ("gates", gname))
        check_gate_references(gate, config.target, lines, path, ("gates", gname))
        check_gate_journeys(gate, probe_journeys(config), lines, path, ("gates", gname),
                            defined=catalog.names)


# checks that read one backend only: signal -> (what it needs, the backends that provide it)
_NEEDS: dict[str, tuple[str, Callable[[Config], bool]]] = {
    "dashboard": ("backends.dashboards (kind: grafana)",
                  lambda c: c.backends.dashboards is not None),
    "alert_policy": ("backends.alerts or backends.metrics of kind gcloud",
                     lambda c: any(b is not None and b.kind == "gcloud"
                                   for b in (c.backends.alerts, c.backends.metrics))),
}


def _check_backends_for_checks(config: Config, checks: Sequence[Any],
                               lines: Mapping[Loc, int], path: str, prefix: Loc) -> None:
    """A check whose only source is a backend the config lacks could only end in an error:
    refused here, naming the check and what to set."""
    for i, check in enumerate(checks):
        need = _NEEDS.get(check.signal)
        if need is not None and not need[1](config):
            raise error_at(f"a {check.signal} check reads {need[0]}, which is not set", path,
                           (*prefix, "checks", i, "signal"), lines)


def load_config(path: str | Path) -> Config:
    """Read and validate a config file."""
    return parse_config(read_text(path), str(path))


def default_config_path() -> Path:
    """``./readygate.yaml`` if present, else the checkout's bundled default."""
    local = Path("readygate.yaml")
    if local.exists():
        return local
    return CHECKOUT / "readygate.yaml"
