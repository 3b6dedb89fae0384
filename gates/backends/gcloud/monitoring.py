"""Cloud Monitoring: PromQL through its Prometheus-compatible HTTP API, and (gRPC, through
google-cloud-monitoring) alert policies, notification channels and ``timeSeries.list``.

Metrics: ``https://monitoring.googleapis.com/v1/projects/P/location/global/prometheus``
answers the Prometheus HTTP API (``/api/v1/query``, ``query_range``, ``series``, label
values), so :class:`GcloudPrometheus` is a :class:`PrometheusClient` with a google-auth
bearer token, refreshed as it expires: every metric check works unchanged. Rules, alerts
and targets are Prometheus-server endpoints Cloud Monitoring does not serve.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import google.auth.credentials
import grpc
import httpx
from google.cloud import monitoring_v3
from google.cloud.monitoring_v3.services.alert_policy_service.transports import (
    AlertPolicyServiceGrpcTransport,
)
from google.cloud.monitoring_v3.services.metric_service.transports import (
    MetricServiceGrpcTransport,
)
from google.cloud.monitoring_v3.services.notification_channel_service.transports import (
    NotificationChannelServiceGrpcTransport,
)

from gates.backends.gcloud.auth import GcloudAuth, TimedRequest, call
from gates.backends.prometheus import PrometheusClient

MONITORING_URL = "https://monitoring.googleapis.com"


@dataclass(frozen=True)
class Condition:
    """One condition of an alert policy: its kind and what it watches."""

    name: str
    display_name: str
    kind: str                 # threshold | absent | log_match | mql | promql | sql | other
    filter: str | None = None  # the metric filter of threshold and absence conditions
    query: str | None = None   # MQL, PromQL or SQL


@dataclass(frozen=True)
class Policy:
    """An alert policy as the lint reads it."""

    name: str
    display_name: str
    enabled: bool | None       # None: the API did not say
    channels: list[str]
    documentation: str
    severity: str              # CRITICAL | ERROR | WARNING | SEVERITY_UNSPECIFIED
    conditions: list[Condition] = field(default_factory=list)
    invalid: str | None = None  # the policy's validity status message, when not OK
    user_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Channel:
    """A notification channel (type and state only: its labels may hold tokens)."""

    name: str
    type: str
    display_name: str
    enabled: bool | None


def _condition(c: Any) -> Condition:
    kinds = (("condition_threshold", "threshold"), ("condition_absent", "absent"),
             ("condition_matched_log", "log_match"),
             ("condition_monitoring_query_language", "mql"),
             ("condition_prometheus_query_language", "promql"), ("condition_sql", "sql"))
    which = type(c).pb(c).WhichOneof("condition")
    kind = dict(kinds).get(which or "", "other")
    body = getattr(c, which) if which else None
    return Condition(name=c.name, display_name=c.display_name, kind=kind,
                     filter=getattr(body, "filter", None) if kind in ("threshold", "absent")
                     else None,
                     query=getattr(body, "query", None) if kind in ("mql", "promql", "sql")
                     else None)


def _policy(p: Any) -> Policy:
    validity = p.validity
    invalid = validity.message or f"code {validity.code}" if validity and validity.code else None
    return Policy(name=p.name, display_name=p.display_name, enabled=p.enabled,
                  channels=list(p.notification_channels),
                  documentation=p.documentation.content if p.documentation else "",
                  severity=monitoring_v3.AlertPolicy.Severity(p.severity).name,
                  conditions=[_condition(c) for c in p.conditions], invalid=invalid,
                  user_labels=dict(p.user_labels))


class _Bearer(grpc.UnaryUnaryClientInterceptor):
    """Adds the credentials' Authorization header to calls on a plain (http://) channel,
    where gRPC refuses call credentials."""

    def __init__(self, credentials: google.auth.credentials.Credentials) -> None:
        self.credentials = credentials

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        headers: dict[str, str] = {}
        self.credentials.before_request(  # type: ignore[no-untyped-call]
            TimedRequest(5.0), "POST", details.method, headers)
        metadata = list(details.metadata or []) + [(k.lower(), v) for k, v in headers.items()]
        return continuation(details._replace(metadata=metadata), request)


def _plain_channel(host: str, *, credentials: google.auth.credentials.Credentials | None = None,
                   **_: Any) -> grpc.Channel:
    """What the transport calls to open its channel: plain gRPC to ``host``."""
    channel = grpc.insecure_channel(host)
    if credentials is None or \
            isinstance(credentials, google.auth.credentials.AnonymousCredentials):
        return channel
    return grpc.intercept_channel(channel, _Bearer(credentials))


def grpc_options(url: str | None, credentials: google.auth.credentials.Credentials,
                 transport: Callable[..., Any]) -> dict[str, Any]:
    """Client arguments for a gRPC API at ``url``: Google's (None), an https:// endpoint,
    or an http:// one spoken in plain gRPC (a local emulator or fake)."""
    if not url:
        return {"credentials": credentials}
    parts = urlsplit(url)
    if parts.scheme == "https":
        return {"credentials": credentials,
                "client_options": {"api_endpoint": f"{parts.hostname}:{parts.port or 443}"}}
    return {"credentials": credentials,
            "client_options": {"api_endpoint": f"{parts.hostname}:{parts.port or 80}"},
            "transport": functools.partial(transport, channel=_plain_channel)}


def _stamp(ts: float) -> dict[str, Any]:
    return {"seconds": int(ts), "nanos": int((ts % 1) * 1e9)}


class GcloudMonitoring:
    """Cloud Monitoring's v3 API: alert policies, notification channels, time series."""

    def __init__(self, auth: GcloudAuth, *, url: str | None = None,
                 timeout_s: float = 5.0) -> None:
        self.auth = auth
        self.url = url
        self.timeout_s = timeout_s
        self._clients: dict[str, Any] = {}
        self.project: str | None = None

    def _client(self, name: str) -> Any:
        if name not in self._clients:
            creds, self.project = self.auth.load()
            cls: Any
            transport: Callable[..., Any]
            cls, transport = {
                "policies": (monitoring_v3.AlertPolicyServiceClient,
                             AlertPolicyServiceGrpcTransport),
                "channels": (monitoring_v3.NotificationChannelServiceClient,
                             NotificationChannelServiceGrpcTransport),
                "metrics": (monitoring_v3.MetricServiceClient, MetricServiceGrpcTransport),
            }[name]
            self._clients[name] = cls(**grpc_options(self.url, creds, transport))
        return self._clients[name]

    def close(self) -> None:
        """Close every gRPC channel opened so far."""
        for client in self._clients.values():
            client.transport.close()
        self._clients.clear()

    async def policies(self) -> list[Policy]:
        """Every alert policy of the project."""
        def read() -> list[Policy]:
            client = self._client("policies")
            return [_policy(p) for p in client.list_alert_policies(
                request={"name": f"projects/{self.project}"}, retry=None,
                timeout=self.timeout_s)]
        return await call("Cloud Monitoring alert policies", read)

    async def channels(self) -> dict[str, Channel]:
        """Every notification channel of the project, by resource name."""
        def read() -> dict[str, Channel]:
            client = self._client("channels")
            return {c.name: Channel(c.name, c.type_, c.display_name, c.enabled)
                    for c in client.list_notification_channels(
                        request={"name": f"projects/{self.project}"}, retry=None,
                        timeout=self.timeout_s)}
        return await call("Cloud Monitoring notification channels", read)

    async def has_series(self, metric_filter: str, start: float, end: float) -> bool:
        """Whether ``timeSeries.list`` finds any series for the filter in [start, end]."""
        def read() -> bool:
            client = self._client("metrics")
            pager = client.list_time_series(
                request={"name": f"projects/{self.project}", "filter": metric_filter,
                         "interval": {"start_time": _stamp(start), "end_time": _stamp(end)},
                         "view": monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.HEADERS,
                         "page_size": 1},
                retry=None, timeout=self.timeout_s)
            return any(True for _ in itertools.islice(pager, 1))
        return await call("Cloud Monitoring timeSeries.list", read)


class GcloudPrometheus(PrometheusClient):
    """Cloud Monitoring's PromQL API, with a refreshed google-auth bearer token."""

    kind = "gcloud"

    def __init__(self, auth: GcloudAuth, client: httpx.AsyncClient, *, url: str | None = None,
                 monitoring: GcloudMonitoring | None = None, timeout_s: float = 5.0) -> None:
        self.endpoint = (url or MONITORING_URL).rstrip("/")
        super().__init__(self.endpoint, client, timeout_s=timeout_s)
        self.auth = auth
        self.monitoring = monitoring or GcloudMonitoring(auth, url=url, timeout_s=timeout_s)

    async def request_json(self, method: str, path: str, params: Any = None, *,
                           json: Any = None, missing_ok: bool = False) -> Any:
        token = await self.auth.bearer()
        _, project = await self.auth.credentials()
        # set right before the request is sent: nothing awaits in between
        self.base_url = f"{self.endpoint}/v1/projects/{project}/location/global/prometheus"
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await super().request_json(method, path, params, json=json,
                                          missing_ok=missing_ok)
