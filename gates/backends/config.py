"""Where checks look for evidence: ``backends:`` in readygate.yaml."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from core.config import Loc, Model, dotted, line_for
from core.errors import ConfigError
from core.http import HttpFields, HttpOptions, secret_values


class Backend(HttpFields):
    """Where readygate looks for evidence (TLS, auth and proxies: docs/backends.md)."""

    url: str
    token: SecretStr | None = Field(None, description="bearer token; always redacted")
    timeout_s: float = Field(5.0, gt=0, le=120)


class ScrapeOptions(HttpFields):
    """How raw ``/metrics`` pages are scraped (checks with ``scrape:``): TLS, auth, proxies."""

    token: SecretStr | None = Field(None, description="bearer token; always redacted")
    timeout_s: float = Field(5.0, gt=0, le=120)

    def http_options(self) -> HttpOptions:
        """The scrape's HTTP options (``token`` is the bearer token)."""
        return HttpOptions(tls=self.tls, proxy_from_env=self.proxy_from_env,
                           basic_auth=self.basic_auth, headers=self.headers,
                           bearer_token=self.token)


# Backend kinds per signal. gates.backends.registry adds every kind it registers, so a new
# backend module is usable from YAML; these are the built-in names (kept in step by a test).
BACKEND_KINDS: dict[str, set[str]] = {
    "metrics": {"prometheus", "victoriametrics", "thanos", "mimir", "gcloud"},
    "notifications": {"sink", "slack", "pagerduty", "sentry", "opsgenie"},
    "logs": {"sink", "loki", "elasticsearch", "opensearch", "jsonl", "victorialogs", "gcloud",
             "datadog"},
    "traces": {"sink", "jaeger", "tempo", "zipkin", "gcloud"},
    "errors": {"sink", "sentry", "posthog", "gcloud"},
    "alerts": {"prometheus", "gcloud", "datadog", "grafana"},
    "dashboards": {"grafana"},
}


class SignalBackend(HttpFields):
    """One signal's backend, chosen by ``kind`` (e.g. ``{kind: loki, url: ...}``)."""

    kind: str = Field(description="backend name, e.g. loki, tempo, slack (see docs/backends.md)")
    url: str | None = Field(None, description="base URL (not needed for kind: sink or jsonl)")
    token: SecretStr | None = Field(None, description="bearer/API token; always redacted")
    timeout_s: float = Field(5.0, gt=0, le=120)
    channel: str | None = Field(None, description="slack: the channel id to read")
    service_ids: list[str] = Field(default_factory=list, description="pagerduty: services")
    index: str = Field("*", description="elasticsearch/opensearch: index pattern")
    selector: str = Field('{job=~".+"}', description="loki: the LogQL stream selector")
    logsql: str = Field("*", description="victorialogs: a LogsQL filter every look ANDs "
                        "with its own (e.g. {service=\"web\"} or service.name:web)")
    path: str | None = Field(None, description="jsonl: a file or glob of JSON-lines files")
    organization: str | None = Field(None, description="sentry: organization slug")
    project: str | None = Field(None, description="sentry: project slug")
    project_id: str | None = Field(None, description="posthog: the project id (a number); "
                                   "gcloud: the Google Cloud project (default: the "
                                   "credentials' own project)")
    credentials_file: str | None = Field(
        None, description="gcloud: a service-account key (or other google-auth JSON) file, "
        "relative to the working directory; default: Application Default Credentials, or "
        "token (an OAuth access token). Its secrets are never printed")
    event: str = Field("$exception", description="posthog: the event name error checks "
                       "read ($exception: PostHog error tracking; any event a journey must "
                       "produce)")
    site: str = Field("datadoghq.com", pattern=r"^[a-z0-9.-]+\.[a-z]+$", description=(
        "datadog: the Datadog site (datadoghq.com, us3.datadoghq.com, us5.datadoghq.com, "
        "datadoghq.eu, ap1.datadoghq.com, ddog-gov.com); `url` overrides it"))
    app_key: SecretStr | None = Field(
        None, description="datadog: the application key (token is the API key); always redacted")
    query: str | None = Field(None, description="datadog logs: a log search query ANDed with "
                              "every look (e.g. service:web env:prod); opsgenie: an alert "
                              "search query ANDed likewise (e.g. teams:ops); gcloud logs: a "
                              "Cloud Logging filter ANDed likewise (e.g. "
                              "resource.type=\"cloud_run_revision\")")
    monitor_tags: list[str] = Field(default_factory=list, description=(
        "datadog alerts: only monitors carrying these tags (e.g. service:web)"))
    org_id: int | None = Field(None, ge=1, description=(
        "grafana: the organization to read (sent as X-Grafana-Org-Id); default: the token's"))

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
    alerts: SignalBackend | None = Field(
        None, description="where alert state is read (alert, no_alert, alert_resolves checks); "
        "default: backends.prometheus")
    dashboards: SignalBackend | None = Field(
        None, description="where dashboard checks read dashboards and run their panels' "
        "queries: grafana")
    scrape: ScrapeOptions | None = Field(
        None, description="TLS, auth and proxies for raw /metrics scrapes (checks' scrape:)")
    max_clock_skew_s: float | None = Field(
        5.0, ge=0, description="before a run, each HTTP backend's clock (a Prometheus API's "
        "stated query evaluation time, else its Date header) must be within this many seconds "
        "of readygate's, or the run stops inconclusive: a clock running ahead makes old "
        "signals look new. null: not checked")

    def by_signal(self) -> dict[str, SignalBackend]:
        """The per-signal backends that are configured."""
        return {name: b for name in BACKEND_KINDS if (b := getattr(self, name)) is not None}

    def secrets(self) -> list[str]:
        """Every secret of every backend: tokens, passwords, header values, key passwords."""
        return secret_values(self)


# Names users reach for, answered with the kind that serves them ("did you mean").
KIND_ALIASES = {name: "gcloud" for name in (
    "gcp", "google", "google_cloud", "googlecloud", "stackdriver", "cloud_logging",
    "cloud_trace", "cloud_monitoring", "error_reporting", "cloud_error_reporting")}

_NO_HTTP = ("jsonl", "sink")
_HTTP_KEYS = {"tls", "proxy_from_env", "basic_auth", "headers"}


def check_backends(backends: Backends, lines: Mapping[Loc, int], path: str) -> None:
    """Each per-signal backend names a known kind and has what that kind needs."""
    named: dict[str, Backend | SignalBackend | ScrapeOptions | None] = {
        "prometheus": backends.prometheus, "alertmanager": backends.alertmanager,
        "sink": backends.sink, "scrape": backends.scrape, **backends.by_signal()}
    for name, b in named.items():
        authorization = any(k.lower() == "authorization" for k in (b.headers if b else {}))
        if b is not None and b.token is not None and (b.basic_auth is not None
                                                      or authorization):
            other = "basic_auth (or credentials in the url)" if b.basic_auth is not None \
                else "an Authorization header"
            raise ConfigError(f"token and {other} both authenticate: keep one", path=path,
                              line=line_for(("backends", name), lines),
                              key=dotted(("backends", name)))
    for signal, backend in backends.by_signal().items():
        known = BACKEND_KINDS[signal]
        loc: Loc = ("backends", signal)
        if backend.kind not in known:
            alias = KIND_ALIASES.get(backend.kind.lower().replace("-", "_"))
            close = [alias] if alias in known else \
                difflib.get_close_matches(backend.kind, sorted(known), n=1, cutoff=0.5)
            hint = f" (did you mean '{close[0]}'?)" if close else \
                f" (one of: {', '.join(sorted(known))})"
            raise ConfigError(f"unknown {signal} backend {backend.kind!r}{hint}", path=path,
                              line=line_for((*loc, "kind"), lines), key=dotted((*loc, "kind")))
        if backend.kind == "gcloud":  # Google's client libraries: their own auth and transport
            _check_gcloud(signal, backend, loc, lines, path)
            continue
        # SaaS kinds default to the vendor's URL; the sink's comes from backends.sink
        needs = {"jsonl": ["path"], "slack": ["channel"],
                 # sentry notifications read the organization's incidents: any project
                 "sentry": ["organization", "project"] if signal == "errors"
                 else ["organization"],
                 "posthog": ["project_id", "token"]}.get(backend.kind, ["url"])
        if backend.kind in ("sink", "pagerduty"):
            needs = []
        if backend.kind in ("datadog", "opsgenie"):  # the vendor's API by default
            needs = ["token", "app_key"] if backend.kind == "datadog" else ["token"]
        if backend.kind in ("slack", "datadog") and backend.basic_auth is not None:
            what = "token and app_key" if backend.kind == "datadog" else "token"
            raise ConfigError(f"{backend.kind} authenticates with {what}, not basic_auth",
                              path=path,
                              line=line_for((*loc, "basic_auth"), lines),
                              key=dotted((*loc, "basic_auth")))
        if backend.kind in _NO_HTTP and (backend.model_fields_set & _HTTP_KEYS):
            key = sorted(backend.model_fields_set & _HTTP_KEYS)[0]
            why = "reads files" if backend.kind == "jsonl" else \
                "uses backends.sink's connection (set these there)"
            raise ConfigError(f"kind {backend.kind!r} {why}: '{key}' does not apply",
                              path=path, line=line_for((*loc, key), lines),
                              key=dotted((*loc, key)))
        for need in needs:
            if getattr(backend, need) is None:
                raise ConfigError(f"a {backend.kind} backend needs '{need}'", path=path,
                                  line=line_for(loc, lines), key=dotted(loc))


def _check_gcloud(signal: str, backend: SignalBackend, loc: Loc, lines: Mapping[Loc, int],
                  path: str) -> None:
    """A gcloud backend: one way to authenticate, a readable key file, a project to read."""
    def error(message: str, key: str | None = None) -> ConfigError:
        where = (*loc, key) if key else loc
        return ConfigError(message, path=path, line=line_for(where, lines), key=dotted(where))

    if backend.token is not None and backend.credentials_file is not None:
        raise error("token and credentials_file both authenticate: keep one", "token")
    if backend.basic_auth is not None:
        raise error("gcloud authenticates with Google credentials (credentials_file, token "
                    "or Application Default Credentials), not basic_auth", "basic_auth")
    # only the PromQL API is called through readygate's own HTTP client
    if signal != "metrics" and (backend.model_fields_set & _HTTP_KEYS):
        key = sorted(backend.model_fields_set & _HTTP_KEYS)[0]
        raise error(f"gcloud {signal} goes through Google's client library, which does its own "
                    f"TLS and reads HTTPS_PROXY itself: '{key}' does not apply", key)
    if backend.credentials_file is not None:
        file = Path(backend.credentials_file).expanduser()
        if not file.is_file():
            raise error(f"credentials_file {backend.credentials_file} does not exist",
                        "credentials_file")
    if backend.token is not None and not backend.project_id:
        raise error("a gcloud backend with a token needs 'project_id' (a token names no "
                    "project)")
    if backend.query is not None and signal != "logs":
        raise error(f"'query' (a Cloud Logging filter) applies to gcloud logs, not {signal}",
                    "query")
