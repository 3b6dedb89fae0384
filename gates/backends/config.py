"""Where checks look for evidence: ``backends:`` in readygate.yaml."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

from pydantic import Field, SecretStr, model_validator

from core.config import Loc, Model, dotted, line_for
from core.errors import ConfigError


class Backend(Model):
    """Where readygate looks for evidence."""

    url: str
    token: SecretStr | None = None
    timeout_s: float = Field(5.0, gt=0, le=120)


# Backend kinds per signal. gates.backends.registry adds every kind it registers, so a new
# backend module is usable from YAML; these are the built-in names (kept in step by a test).
BACKEND_KINDS: dict[str, set[str]] = {
    "metrics": {"prometheus", "victoriametrics", "thanos", "mimir"},
    "notifications": {"sink", "slack", "pagerduty"},
    "logs": {"sink", "loki", "elasticsearch", "opensearch", "jsonl"},
    "traces": {"sink", "jaeger", "tempo", "zipkin"},
    "errors": {"sink", "sentry"},
}


class SignalBackend(Model):
    """One signal's backend, chosen by ``kind`` (e.g. ``{kind: loki, url: ...}``)."""

    kind: str = Field(description="backend name, e.g. loki, tempo, slack (see docs/backends.md)")
    url: str | None = Field(None, description="base URL (not needed for kind: sink or jsonl)")
    token: SecretStr | None = Field(None, description="bearer/API token; always redacted")
    timeout_s: float = Field(5.0, gt=0, le=120)
    channel: str | None = Field(None, description="slack: the channel id to read")
    service_ids: list[str] = Field(default_factory=list, description="pagerduty: services")
    index: str = Field("*", description="elasticsearch/opensearch: index pattern")
    selector: str = Field('{job=~".+"}', description="loki: the LogQL stream selector")
    path: str | None = Field(None, description="jsonl: a file or glob of JSON-lines files")
    organization: str | None = Field(None, description="sentry: organization slug")
    project: str | None = Field(None, description="sentry: project slug")

    @model_validator(mode="after")
    def _url(self) -> SignalBackend:
        if self.url is not None and not re.match(r"^https?://", self.url):
            raise ValueError(f"url {self.url!r} is not an http(s) URL")
        return self


class Backends(Model):
    """Evidence backends by signal."""

    prometheus: Backend | None = None
    alertmanager: Backend | None = None
    sink: Backend | None = Field(
        None, description="readygate's embedded sink (traces, logs, errors, notifications)")
    metrics: SignalBackend | None = Field(None, description="default: backends.prometheus")
    notifications: SignalBackend | None = Field(None, description="default: the sink")
    logs: SignalBackend | None = Field(None, description="default: the sink")
    traces: SignalBackend | None = Field(None, description="default: the sink")
    errors: SignalBackend | None = Field(None, description="default: the sink")

    def by_signal(self) -> dict[str, SignalBackend]:
        """The per-signal backends that are configured."""
        return {name: b for name in BACKEND_KINDS if (b := getattr(self, name)) is not None}


def check_backends(backends: Backends, lines: Mapping[Loc, int], path: str) -> None:
    """Each per-signal backend names a known kind and has what that kind needs."""
    for signal, backend in backends.by_signal().items():
        known = BACKEND_KINDS[signal]
        loc: Loc = ("backends", signal)
        if backend.kind not in known:
            close = difflib.get_close_matches(backend.kind, sorted(known), n=1, cutoff=0.5)
            hint = f" (did you mean '{close[0]}'?)" if close else \
                f" (one of: {', '.join(sorted(known))})"
            raise ConfigError(f"unknown {signal} backend {backend.kind!r}{hint}", path=path,
                              line=line_for((*loc, "kind"), lines), key=dotted((*loc, "kind")))
        # SaaS kinds default to the vendor's URL; the sink's comes from backends.sink
        needs = {"jsonl": ["path"], "slack": ["channel"],
                 "sentry": ["organization", "project"]}.get(backend.kind, ["url"])
        if backend.kind in ("sink", "pagerduty"):
            needs = []
        for need in needs:
            if getattr(backend, need) is None:
                raise ConfigError(f"a {backend.kind} backend needs '{need}'", path=path,
                                  line=line_for(loc, lines), key=dotted(loc))
