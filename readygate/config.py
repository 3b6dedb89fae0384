"""readygate.yaml: the root ``Config`` composing every layer's own models.

Each layer owns its configuration beside its code (``probes.config``, ``chaos.config``,
``gates.config``, ``gates.backends.config``, ``scenarios.config``, ``reports.config``,
``core.target``); the loader with line numbers and ``${VAR}`` is ``core.config``. Values
of secret fields (passwords, tokens, webhook URLs) are registered with
:mod:`core.redact` and never shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from core import redact
from core.config import (
    CHECKOUT,
    Loc,
    Model,
    format_validation,
    load_yaml,
    read_text,
)
from core.config import json_schema as schema_of
from core.target import Target
from gates.backends.config import Backends, check_backends
from probes.config import Probes
from reports.config import Links, Notify
from scenarios.config import Gate, check_gate_references


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
    gates: dict[str, Gate] = Field(default_factory=dict)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    links: Links = Field(default_factory=Links)
    notify: Notify = Field(default_factory=Notify)

    def secrets(self) -> list[str]:
        """Every secret value in this config (for redaction and leak scans)."""
        out: list[str] = []
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
        return out


def json_schema() -> dict[str, Any]:
    """The JSON Schema of readygate.yaml."""
    return schema_of(Config, "readygate.yaml")


def parse_config(text: str, path: str = "<config>") -> Config:
    """Parse and validate config text; raise :class:`ConfigError` with file:line and key."""
    data, lines = load_yaml(text, path)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise format_validation(exc, data, lines, path, Config) from None
    _check_references(config, lines, path)
    redact.register(*config.secrets())
    return config


def _check_references(config: Config, lines: Mapping[Loc, int], path: str) -> None:
    """Cross-field rules: known backend kinds; chaos touches only target.fault_proxies."""
    check_backends(config.backends, lines, path)
    for gname, gate in config.gates.items():
        check_gate_references(gate, config.target, lines, path, ("gates", gname))


def load_config(path: str | Path) -> Config:
    """Read and validate a config file."""
    return parse_config(read_text(path), str(path))


def default_config_path() -> Path:
    """``./readygate.yaml`` if present, else the checkout's bundled default."""
    local = Path("readygate.yaml")
    if local.exists():
        return local
    return CHECKOUT / "readygate.yaml"
