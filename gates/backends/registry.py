"""Backends by name: ``backends: {logs: {kind: loki, url: ...}}`` picks ``loki`` from here.

A new backend is one module implementing the signal's Protocol (:mod:`gates.backends.types`)
plus one :func:`register` call; the name is then valid in YAML (the config validates kinds
against :data:`readygate.config.BACKEND_KINDS`, which :func:`register` extends).

A backend with HTTP options of its own (``tls``, ``basic_auth``, ``headers``,
``proxy_from_env``) gets its own ``httpx.AsyncClient``; :func:`build_all` builds those and
:meth:`ContextBackends.aclose` closes them. The others share the client passed in.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from core.errors import ConfigError
from core.http import client_kwargs, needs_own_client, ssl_context, warn_insecure
from gates.backends.alertmanager import AlertmanagerClient
from gates.backends.config import BACKEND_KINDS, Backend, Backends, SignalBackend
from gates.backends.elasticsearch import ElasticsearchLogs
from gates.backends.jsonl import JsonLinesLogs
from gates.backends.loki import LokiLogs
from gates.backends.notifications import PagerDutyNotifications, SlackNotifications
from gates.backends.opsgenie import OpsgenieNotifications
from gates.backends.posthog import PostHogErrors
from gates.backends.prometheus import PrometheusClient
from gates.backends.sentry import SentryErrors, SentryIncidents
from gates.backends.sink import SinkClient, SinkErrors, SinkLogs, SinkNotifications, SinkTraces
from gates.backends.traces import JaegerTraces, TempoTraces, ZipkinTraces
from gates.backends.types import (
    AlertsBackend,
    DashboardsBackend,
    ErrorsBackend,
    LogsBackend,
    NotificationsBackend,
    TracesBackend,
    close_backends,
)
from gates.backends.victorialogs import VictoriaLogs

Factory = Callable[[SignalBackend, httpx.AsyncClient, SinkClient | None], Any]
_FACTORIES: dict[str, dict[str, Factory]] = {}


def register(signal: str, kind: str, factory: Factory) -> None:
    """Make ``kind`` a valid backend name for ``signal`` in YAML."""
    _FACTORIES.setdefault(signal, {})[kind] = factory
    BACKEND_KINDS.setdefault(signal, set()).add(kind)


def kinds(signal: str) -> set[str]:
    """Registered backend names for a signal."""
    return set(_FACTORIES.get(signal, {}))


def build(signal: str, spec: SignalBackend, client: httpx.AsyncClient,
          sink: SinkClient | None) -> Any:
    """The backend client ``spec`` names; an unknown name is a :class:`ConfigError`."""
    factories = _FACTORIES.get(signal, {})
    factory = factories.get(spec.kind)
    if factory is None:
        close = difflib.get_close_matches(spec.kind, sorted(factories), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else \
            f" (one of: {', '.join(sorted(factories))})"
        raise ConfigError(f"unknown {signal} backend {spec.kind!r}{hint}",
                          key=f"backends.{signal}.kind")
    return factory(spec, client, sink)


def _token(spec: SignalBackend | Backend) -> str | None:
    return spec.token.get_secret_value() if spec.token is not None else None


def _need_sink(signal: str, sink: SinkClient | None) -> SinkClient:
    if sink is None:
        raise ConfigError("kind 'sink' needs backends.sink.url", key=f"backends.{signal}")
    return sink


def _url(spec: SignalBackend) -> str:
    assert spec.url is not None  # the config refuses a missing url for these kinds
    return spec.url


def _prometheus(spec: SignalBackend, client: httpx.AsyncClient, _: SinkClient | None) -> Any:
    prom = PrometheusClient(_url(spec), client, token=_token(spec), timeout_s=spec.timeout_s)
    prom.kind = spec.kind  # messages name what the user configured (e.g. "mimir")
    return prom


def _es(spec: SignalBackend, client: httpx.AsyncClient, _: SinkClient | None) -> Any:
    return ElasticsearchLogs(_url(spec), client, index=spec.index, token=_token(spec),
                             timeout_s=spec.timeout_s, kind=spec.kind)


for _kind in ("prometheus", "victoriametrics", "thanos", "mimir"):
    register("metrics", _kind, _prometheus)
register("alerts", "prometheus", _prometheus)
register("logs", "sink", lambda s, c, sink: SinkLogs(_need_sink("logs", sink)))
register("logs", "loki", lambda s, c, _: LokiLogs(_url(s), c, selector=s.selector,
                                                  token=_token(s), timeout_s=s.timeout_s))
register("logs", "elasticsearch", _es)
register("logs", "opensearch", _es)
register("logs", "jsonl", lambda s, c, _: JsonLinesLogs(s.path or ""))
register("logs", "victorialogs", lambda s, c, _: VictoriaLogs(
    _url(s), c, logsql=s.logsql, token=_token(s), timeout_s=s.timeout_s))
register("traces", "sink", lambda s, c, sink: SinkTraces(_need_sink("traces", sink)))
register("traces", "jaeger", lambda s, c, _: JaegerTraces(_url(s), c, token=_token(s),
                                                          timeout_s=s.timeout_s))
register("traces", "tempo", lambda s, c, _: TempoTraces(_url(s), c, token=_token(s),
                                                        timeout_s=s.timeout_s))
register("traces", "zipkin", lambda s, c, _: ZipkinTraces(_url(s), c, token=_token(s),
                                                          timeout_s=s.timeout_s))
register("errors", "sink", lambda s, c, sink: SinkErrors(_need_sink("errors", sink)))
register("errors", "sentry", lambda s, c, _: SentryErrors(
    s.url, c, organization=s.organization or "", project=s.project or "", token=_token(s),
    timeout_s=s.timeout_s))
register("errors", "posthog", lambda s, c, _: PostHogErrors(
    s.url, c, project_id=s.project_id or "", token=_token(s), event=s.event,
    timeout_s=s.timeout_s))
def _gcloud(signal: str) -> Factory:
    # Google's client libraries (grpc, google-cloud-*) cost ~0.7 s and ~45 MiB to import:
    # only a run that uses kind gcloud pays for them.
    def build(spec: SignalBackend, client: httpx.AsyncClient, sink: SinkClient | None) -> Any:
        from gates.backends.gcloud import FACTORIES
        return FACTORIES[signal](spec, client, sink)
    return build


for _signal in ("logs", "traces", "metrics", "errors", "alerts"):  # Google Cloud: kind gcloud
    register(_signal, "gcloud", _gcloud(_signal))
register("notifications", "sink",
         lambda s, c, sink: SinkNotifications(_need_sink("notifications", sink)))
register("notifications", "sentry", lambda s, c, _: SentryIncidents(
    s.url, c, organization=s.organization or "", project=s.project, token=_token(s),
    timeout_s=s.timeout_s))
def _slack(spec: SignalBackend, client: httpx.AsyncClient, _: SinkClient | None) -> Any:
    # slack-sdk has its own HTTP client: it takes the SSL context and headers directly.
    if spec.tls is not None:
        warn_insecure(spec.tls, "backends.notifications")
    return SlackNotifications(
        spec.channel or "", token=_token(spec), base_url=spec.url, timeout_s=spec.timeout_s,
        ssl=ssl_context(spec.tls, key="backends.notifications.tls") if spec.tls else None,
        headers={k: v.get_secret_value() for k, v in spec.headers.items()})


register("notifications", "slack", _slack)
register("notifications", "pagerduty", lambda s, c, _: PagerDutyNotifications(
    s.url, c, token=_token(s), service_ids=s.service_ids, timeout_s=s.timeout_s))
register("notifications", "opsgenie", lambda s, c, _: OpsgenieNotifications(
    s.url, c, token=_token(s), query=s.query, timeout_s=s.timeout_s))
# datadog-api-client and grafana-client have HTTP clients of their own (urllib3, requests):
# the httpx client is not used, and the libraries load only when such a backend is built.
def _datadog(spec: SignalBackend, _: httpx.AsyncClient, __: SinkClient | None) -> Any:
    from gates.backends.datadog import DatadogLogs, client_for
    return DatadogLogs(client_for(spec, "logs"), query=spec.query)


def _datadog_monitors(spec: SignalBackend, _: httpx.AsyncClient, __: SinkClient | None) -> Any:
    from gates.backends.datadog import DatadogMonitors, client_for
    return DatadogMonitors(client_for(spec, "alerts"), monitor_tags=spec.monitor_tags)


register("logs", "datadog", _datadog)
register("alerts", "datadog", _datadog_monitors)


def _grafana(signal: str) -> Factory:
    def make(spec: SignalBackend, _: httpx.AsyncClient, __: SinkClient | None) -> Any:
        from gates.backends.grafana import GrafanaAlerts, GrafanaDashboards, grafana_api
        cls = GrafanaAlerts if signal == "alerts" else GrafanaDashboards
        return cls(grafana_api(_url(spec), token=_token(spec), org_id=spec.org_id,
                               timeout_s=spec.timeout_s, http=spec, name=f"backends.{signal}"),
                   _url(spec))
    return make


register("alerts", "grafana", _grafana("alerts"))
register("dashboards", "grafana", _grafana("dashboards"))


@dataclass
class ContextBackends:
    """Every backend client a run's checks may read, built from ``backends:``."""

    prometheus: PrometheusClient | None = None
    alertmanager: AlertmanagerClient | None = None
    sink: SinkClient | None = None
    metrics: PrometheusClient | None = None
    logs: LogsBackend | None = None
    traces: TracesBackend | None = None
    errors: ErrorsBackend | None = None
    notifications: NotificationsBackend | None = None
    alerts: AlertsBackend | None = None
    dashboards: DashboardsBackend | None = None
    scrape: httpx.AsyncClient | None = None  # raw /metrics scrapes, with backends.scrape's options
    clients: list[httpx.AsyncClient] = field(default_factory=list, repr=False)  # built here

    def own_client(self, spec: Backend | SignalBackend, shared: httpx.AsyncClient,
                   name: str) -> httpx.AsyncClient:
        """The shared client, or one of this backend's own when it has HTTP options."""
        if not needs_own_client(spec):
            return shared
        client = httpx.AsyncClient(**client_kwargs(spec, name=name))
        self.clients.append(client)
        return client

    async def aclose(self) -> None:
        """Close the clients built for backends with options of their own, and the
        backends on client libraries of their own (Google, Datadog, Grafana)."""
        for client in self.clients:
            await client.aclose()
        self.clients.clear()
        close_backends(self.metrics, self.logs, self.traces, self.errors, self.notifications,
                       self.alerts, getattr(self, "dashboards", None))


def build_all(backends: Backends, client: httpx.AsyncClient) -> ContextBackends:
    """Clients for every configured backend; signals without one default to the sink.

    The caller closes what this built with :meth:`ContextBackends.aclose`.
    """
    out = ContextBackends()
    if backends.prometheus is not None:
        b = backends.prometheus
        out.prometheus = PrometheusClient(b.url, out.own_client(b, client, "backends.prometheus"),
                                          token=_token(b), timeout_s=b.timeout_s)
    if backends.alertmanager is not None:
        b = backends.alertmanager
        out.alertmanager = AlertmanagerClient(
            b.url, out.own_client(b, client, "backends.alertmanager"), token=_token(b),
            timeout_s=b.timeout_s)
    if backends.sink is not None:
        b = backends.sink
        out.sink = SinkClient(b.url, out.own_client(b, client, "backends.sink"),
                              token=_token(b), timeout_s=b.timeout_s)
    for signal, spec in backends.by_signal().items():
        own = client if spec.kind == "slack" else \
            out.own_client(spec, client, f"backends.{signal}")
        setattr(out, signal, build(signal, spec, own, out.sink))
    if backends.scrape is not None:
        out.scrape = httpx.AsyncClient(
            timeout=backends.scrape.timeout_s,
            **client_kwargs(backends.scrape.http_options(), name="backends.scrape"))
        out.clients.append(out.scrape)
    return out
