"""``stack:`` in readygate.yaml: the Prometheus, Alertmanager and sink `readygate stack` starts.

The user brings alert rules, scrape targets (their already-running service) and,
optionally, their own Alertmanager config; the stack adds the sink as one more receiver.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from core.config import Loc, Model, error_at, resolve_path
from core.errors import shown_path
from core.http import BasicAuth, TlsOptions

_JOB_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_HOST_PORT_RE = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class ScrapeTarget:
    """One scrape target: ``host:port``, and what a URL target says beyond it."""

    address: str
    scheme: str | None = None
    metrics_path: str | None = None
    params: dict[str, str] = field(default_factory=dict)


def parse_target(text: str) -> ScrapeTarget:
    """``host:port`` or an http(s) URL as a target; ValueError saying what is wrong."""
    if "://" not in text:
        match = _HOST_PORT_RE.match(text)
        if match is None or not 0 < int(match["port"]) < 65536:
            raise ValueError(f"{text!r} is not host:port (e.g. 127.0.0.1:8000) "
                             "nor an http(s) URL")
        return ScrapeTarget(address=text)
    parts = urlsplit(text)
    if parts.username or parts.password:
        # the value is not repeated: it holds a password
        raise ValueError("a URL with credentials: put them in basic_auth (a secret)")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not an http(s) URL with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"{text!r} has an invalid port") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return ScrapeTarget(address=f"{host}:{port}", scheme=parts.scheme,
                        metrics_path=parts.path or None, params=dict(parse_qsl(parts.query)))


class ScrapeJob(Model):
    """One Prometheus scrape job: the user's service(s) whose /metrics the stack scrapes."""

    job: str = Field(description="the `job` label (what the alert rules select on)")
    targets: list[str] = Field(min_length=1, description="host:port or http(s) URLs; a "
                                  "URL's scheme, path and query override the job's")
    metrics_path: str = Field("/metrics", pattern=r"^/")
    scheme: Literal["http", "https"] = "http"
    scrape_interval_s: float | None = Field(
        None, gt=0, le=3600, description="default: stack.scrape_interval_s")
    labels: dict[str, str] = Field(default_factory=dict,
                                   description="extra labels on every target, e.g. service")
    basic_auth: BasicAuth | None = Field(None, description="the password is a secret")
    bearer_token: SecretStr | None = Field(None, description="a secret")
    tls: TlsOptions | None = Field(None, description="CA bundle, client certificate and key, "
                                   "skip-verify, server name (files relative to readygate.yaml)")

    @field_validator("targets")
    @classmethod
    def _targets(cls, targets: list[str]) -> list[str]:
        # checked as a list: pydantic would echo a single bad string, credentials and all
        for i, text in enumerate(targets):
            try:
                parse_target(text)
            except ValueError as exc:
                raise ValueError(f"[{i}] {exc}") from None
        return targets

    @model_validator(mode="after")
    def _checked(self) -> ScrapeJob:
        if not _JOB_RE.match(self.job):
            raise ValueError(f"job {self.job!r}: letters, digits, _ . - only")
        if self.basic_auth is not None and self.bearer_token is not None:
            raise ValueError("basic_auth and bearer_token exclude each other")
        if self.tls is not None and self.tls.key_password is not None:
            raise ValueError("tls.key_password: Prometheus cannot read an encrypted key; "
                             "give it an unencrypted key_file")
        for name in self.labels:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name) or name.startswith("__"):
                raise ValueError(f"label name {name!r} is not a valid Prometheus label")
        return self


class StackSink(Model):
    """Where the stack's sink listens (OTLP/HTTP, Sentry, webhooks, the query API)."""

    listen: str = Field(
        "127.0.0.1:0", description="HOST:PORT; port 0 picks a free one. Fix it (e.g. "
        "127.0.0.1:4318) when your service starts before the stack and must be told where "
        "to send its telemetry (OTEL_EXPORTER_OTLP_ENDPOINT)")

    @field_validator("listen")
    @classmethod
    def _listen(cls, text: str) -> str:
        match = _HOST_PORT_RE.match(text)
        if match is None or not 0 <= int(match["port"]) < 65536:
            raise ValueError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:4318)")
        return text

    grpc_listen: str | None = Field(
        None, description="HOST:PORT where the sink also takes OTLP/gRPC (e.g. "
        "127.0.0.1:4317, for SDKs whose default protocol is gRPC: Go, Java, .NET); "
        "default: OTLP over HTTP only")

    @field_validator("grpc_listen")
    @classmethod
    def _grpc_listen(cls, text: str | None) -> str | None:
        return None if text is None else cls._listen(text)

    def host_port(self) -> tuple[str, int]:
        """The host (IPv6 without brackets) and port to bind."""
        return _split(self.listen)

    def grpc_host_port(self) -> tuple[str, int] | None:
        """Where gRPC binds, or None."""
        return None if self.grpc_listen is None else _split(self.grpc_listen)


def _split(text: str) -> tuple[str, int]:
    match = _HOST_PORT_RE.match(text)
    assert match is not None  # validated
    return match["host"].strip("[]"), int(match["port"])


class StackSettings(Model):
    """What `readygate stack` starts around the user's running service."""

    rules: list[str] = Field(
        default_factory=list, description="alert rule files or globs (relative to "
        "readygate.yaml); needed by every alert, notification and no_alert check")
    scrape: list[ScrapeJob] = Field(default_factory=list,
                                    description="what Prometheus scrapes: your service")
    alertmanager_config: str | None = Field(
        None, description="your alertmanager.yml: its receivers keep receiving; the stack "
                          "adds the sink as one more (default: only the sink)")
    scrape_interval_s: float = Field(1.0, gt=0, le=3600)
    evaluation_interval_s: float = Field(1.0, gt=0, le=3600)
    group_interval_s: float = Field(
        1.0, gt=0, le=3600, description="Alertmanager group_interval of the sink's route")
    ready_timeout_s: float = Field(
        30.0, gt=0, le=600, description="how long to wait for every scrape target to be up "
                                        "before the gate starts anyway (with a warning)")
    retention: str = Field("2h", pattern=r"^[0-9]+[smhdwy]$",
                           description="Prometheus and Alertmanager data retention")
    sink: StackSink = Field(default_factory=StackSink,
                            description="where the sink listens (docs/own-service.md)")

    @model_validator(mode="after")
    def _unique_jobs(self) -> StackSettings:
        seen: set[str] = set()
        for job in self.scrape:
            if job.job in seen:
                raise ValueError(f"scrape job {job.job!r} is defined twice")
            seen.add(job.job)
        return self

    def secrets(self) -> list[str]:
        """Every secret value in ``stack:`` (scrape passwords and tokens)."""
        out = []
        for job in self.scrape:
            if job.basic_auth is not None:
                out.append(job.basic_auth.password.get_secret_value())
            if job.bearer_token is not None:
                out.append(job.bearer_token.get_secret_value())
        return [s for s in out if s]


def rule_files(patterns: list[str]) -> list[Path]:
    """The rule files of ``stack.rules``, globs expanded, in order, each once."""
    files: list[Path] = []
    for spec in patterns:
        path = resolve_path(spec)
        matches = sorted(glob.glob(str(path))) if any(c in spec for c in "*?[") else [str(path)]
        files.extend(Path(m) for m in matches if Path(m) not in files)
    return files


def check_stack(stack: StackSettings | None, lines: Mapping[Loc, int], path: str) -> None:
    """The files ``stack:`` names exist: rules (each glob matches), Alertmanager config, CAs."""
    if stack is None:
        return
    for i, spec in enumerate(stack.rules):
        found = rule_files([spec])
        loc: Loc = ("stack", "rules", i)
        if not found:
            raise error_at(f"no file matches {shown_path(spec)!r}", path, loc, lines)
        missing = [str(f) for f in found if not f.is_file()]
        if missing:
            raise error_at(f"rules file {shown_path(missing[0])} not found", path, loc, lines)
    if stack.alertmanager_config is not None and \
            not resolve_path(stack.alertmanager_config).is_file():
        raise error_at(f"Alertmanager config {shown_path(stack.alertmanager_config)} not found",
                       path,
                       ("stack", "alertmanager_config"), lines)
    for i, job in enumerate(stack.scrape):
        for key in ("ca_file", "cert_file", "key_file"):
            name = getattr(job.tls, key, None) if job.tls is not None else None
            if name is not None and not resolve_path(name).is_file():
                raise error_at(f"{name} not found", path, ("stack", "scrape", i, "tls", key),
                               lines)
