"""What checks may look at: backend clients, the run's anchors and the probe results."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from gates.backends.alertmanager import AlertmanagerClient
from gates.backends.prometheus import PrometheusClient
from gates.backends.sink import SinkClient, SinkErrors, SinkLogs, SinkNotifications, SinkTraces
from gates.backends.types import (
    AlertsBackend,
    DashboardsBackend,
    ErrorsBackend,
    LogsBackend,
    NotificationsBackend,
    TracesBackend,
    close_backends,
)
from probes.model import ProbeResult


@dataclass
class Anchors:
    """Wall-clock times checks count their deadlines from."""

    phase_start: dict[str, float] = field(default_factory=dict)
    phase_end: dict[str, float] = field(default_factory=dict)
    # when each phase's observation window (start + min_duration_s) ends: the phase lasts
    # at least this long, so a check may watch until then without holding the phase up
    phase_window_end: dict[str, float] = field(default_factory=dict)
    fault_start: float | None = None
    fault_end: float | None = None


@dataclass
class CheckContext:
    """Handed to every check; checks read, they never start or stop anything.

    Per-signal backends left ``None`` default to the embedded sink when one is configured,
    and ``metrics`` to ``prometheus``.
    """

    prometheus: PrometheusClient | None
    sink: SinkClient | None
    anchors: Anchors
    probe_results: list[ProbeResult]
    poll_interval_s: float = 0.1
    # how much longer than its deadline a probe-following check waits for its journey's
    # first run in the phase (live probes: a browser journey's first run launches Chromium)
    first_probe_wait_s: float = 0.0
    links: dict[str, str] = field(default_factory=dict)
    alertmanager: AlertmanagerClient | None = None
    metrics: PrometheusClient | None = None
    logs: LogsBackend | None = None
    traces: TracesBackend | None = None
    errors: ErrorsBackend | None = None
    notifications: NotificationsBackend | None = None
    # where alert state is read (default: prometheus); see prometheus_alerts()
    alerts: AlertsBackend | None = None
    dashboards: DashboardsBackend | None = None  # where dashboard checks read (Grafana)
    http: httpx.AsyncClient | None = None        # for runbook links and raw /metrics scrapes
    services: dict[str, str] = field(default_factory=dict)  # target.services
    probe_base_url: str | None = None  # where journeys without a base_url go (health checks)
    secrets: list[str] = field(default_factory=list, repr=False)  # the journey's secrets
    # raw /metrics scrapes with backends.scrape's TLS/auth (default: http)
    scrape_http: httpx.AsyncClient | None = None
    # health endpoint URL -> its status just before the fault (None: no answer), looked at
    # by the runner before it injects (gates.checks.probe.look_before_fault)
    health_before_fault: dict[str, int | None] = field(default_factory=dict)
    # clients built for backends with HTTP options of their own; closed by aclose()
    backend_clients: list[httpx.AsyncClient] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.metrics is None:
            self.metrics = self.prometheus
        if self.alerts is None:
            self.alerts = self.prometheus
        if self.sink is not None:
            self.logs = self.logs or SinkLogs(self.sink)
            self.traces = self.traces or SinkTraces(self.sink)
            self.errors = self.errors or SinkErrors(self.sink)
            self.notifications = self.notifications or SinkNotifications(self.sink)

    def prometheus_alerts(self) -> PrometheusClient | None:
        """The Prometheus evaluating the alerts, when it is Prometheus (its rules and
        ``ALERTS`` history then explain a miss); None for another alerting engine."""
        return self.alerts if isinstance(self.alerts, PrometheusClient) else None

    async def aclose(self) -> None:
        """Close the backend clients built for this run (the shared ``http`` is the caller's)
        and the backends on client libraries of their own (Google, Datadog, Grafana)."""
        for client in self.backend_clients:
            await client.aclose()
        self.backend_clients.clear()
        close_backends(self.metrics, self.logs, self.traces, self.errors, self.notifications,
                       self.alerts, getattr(self, "dashboards", None))

    def probes_since(self, journey: str | None, since: float) -> list[ProbeResult]:
        """The probe runs of ``journey`` (of any journey if None) started at or after ``since``."""
        return [p for p in self.probe_results
                if (journey is None or p.journey == journey) and p.started_at >= since]
