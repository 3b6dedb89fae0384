"""readygate.yaml as small typed values that check themselves.

Loading keeps every key's line number, so an error reads
``readygate.yaml:14 gates.release.timout: unknown key (did you mean 'timeout'?)``.
``${VAR}`` and ``${VAR:-default}`` are interpolated from the environment; values of
secret fields (passwords, tokens, webhook URLs) are registered with
:mod:`readygate.redact` and never shown.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationError,
    model_validator,
)

from readygate import redact
from readygate.errors import ConfigError

Severity = Literal["critical", "warning"]
PhaseName = Literal["baseline", "fault", "recovery"]
Anchor = Literal["phase_start", "fault_start", "fault_end", "probe_sent"]


class Model(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- target -----------------------------------------------------------------------------

class Credentials(Model):
    """The journey user; the password comes from the environment and is always redacted."""

    username: str = "demo"
    password: SecretStr | None = None


class ProcessTarget(Model):
    """A local process chaos may pause or kill: its pidfile and what its command line shows."""

    pidfile: str = Field(description="file holding the process id")
    command_contains: str = Field(
        min_length=1, description="the process's command line must contain this, so a stale "
        "pidfile whose PID was reused by another program is refused")


class ToxiproxyTarget(Model):
    """A Toxiproxy server; chaos touches only the proxies named here."""

    url: str = Field(description="Toxiproxy API, e.g. http://127.0.0.1:8474")
    proxies: dict[str, str] = Field(default_factory=dict,
                                    description="service -> Toxiproxy proxy name")

    @model_validator(mode="after")
    def _url(self) -> ToxiproxyTarget:
        if not re.match(r"^https?://", self.url):
            raise ValueError(f"url: {self.url!r} is not an http(s) URL")
        return self


class Target(Model):
    """The system under test."""

    name: str = "demo"
    environment: str = Field(
        "staging", description="'production' is refused unless --allow-production")
    services: dict[str, str] = Field(
        default_factory=dict, description="base URL per service, e.g. {web: https://staging.example.com}")
    fault_proxies: dict[str, str] = Field(
        default_factory=dict,
        description="readygate fault proxy control URL per service; chaos touches only these")
    credentials: Credentials = Field(default_factory=Credentials)
    processes: dict[str, ProcessTarget] = Field(
        default_factory=dict,
        description="local processes `process` faults may touch, by name (docs/chaos.md)")
    toxiproxy: ToxiproxyTarget | None = Field(
        None, description="a Toxiproxy server and the proxies `toxiproxy` faults may touch")

    @model_validator(mode="after")
    def _urls(self) -> Target:
        for kind, mapping in (("services", self.services), ("fault_proxies", self.fault_proxies)):
            for name, url in mapping.items():
                if not re.match(r"^https?://", url):
                    raise ValueError(f"{kind}.{name}: {url!r} is not an http(s) URL")
        return self


# --- backends ---------------------------------------------------------------------------

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


# --- probes -----------------------------------------------------------------------------

JourneyName = Literal["health", "login", "upload"]
_ALL_JOURNEYS: tuple[JourneyName, ...] = ("health", "login", "upload")


class Probes(Model):
    """The journeys that run throughout a scenario."""

    journeys: list[JourneyName] = Field(default_factory=lambda: list(_ALL_JOURNEYS))
    interval_s: float = Field(1.0, gt=0, le=3600)
    timeout_s: float = Field(5.0, gt=0, le=300)
    service: str = Field("web", description="the target service the journeys call")
    upload_size_bytes: int = Field(1024, ge=1, le=50_000_000)
    journeys_file: str | None = Field(
        None, description="journeys YAML for `readygate probe` (relative to this config); "
                          "see docs/journeys.md")
    location: str | None = Field(
        None, description="`location` label of probe metrics (default: the host name)")


# --- checks -----------------------------------------------------------------------------

class CheckBase(Model):
    """What every check has: a name, a severity, the phase it judges and a deadline."""

    name: str | None = None
    severity: Severity = "critical"
    phase: PhaseName = "fault"
    deadline_s: float = Field(30.0, gt=0, le=3600)
    anchor: Anchor = Field("phase_start", description="the event the deadline counts from")

    def display_name(self) -> str:
        return self.name or self.default_name()

    def default_name(self) -> str:
        raise NotImplementedError


class AlertCheck(CheckBase):
    """The alert fires (in Prometheus) within the deadline after the anchor."""

    signal: Literal["alert"]
    alertname: str
    labels: dict[str, str] = Field(default_factory=dict)
    anchor: Anchor = "fault_start"

    def default_name(self) -> str:
        return f"alert {self.alertname} fires"


class NotificationCheck(CheckBase):
    """The alert's notification reaches the receiver within the deadline."""

    signal: Literal["notification"]
    alertname: str
    labels: dict[str, str] = Field(default_factory=dict)
    status: Literal["firing", "resolved"] = "firing"
    anchor: Anchor = "fault_start"

    def default_name(self) -> str:
        return f"notification {self.alertname} {self.status} delivered"


class NoAlertCheck(CheckBase):
    """No alert fires during a healthy window (the false-positive check)."""

    signal: Literal["no_alert"]
    phase: PhaseName = "baseline"
    window_s: float = Field(5.0, gt=0, le=3600, description="how long to watch")
    alertnames: list[str] = Field(default_factory=list, description="empty: any alert")

    def default_name(self) -> str:
        return "no alert during healthy baseline"


class SpanSelector(Model):
    """Matches spans: every given part must match (name and attribute values are globs)."""

    service: str | None = None
    name: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"service={self.service}" if self.service else "",
                 f"name={self.name}" if self.name else "",
                 *(f"{k}={v}" for k, v in sorted(self.attributes.items()))]
        return "span{" + ",".join(p for p in parts if p) + "}"


class TraceCheck(CheckBase):
    """The probe's trace reaches the trace backend and spans the expected services."""

    signal: Literal["trace"]
    journey: JourneyName = "upload"
    services: list[str] = Field(default_factory=lambda: ["web"])
    spans: list[SpanSelector] = Field(
        default_factory=list, description="each selector must match at least one span")
    anchor: Anchor = "probe_sent"
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"{self.journey} trace spans {'+'.join(self.services)}"


class LogsCheck(CheckBase):
    """Log lines carrying the probe's trace id reach the log backend."""

    signal: Literal["logs"]
    journey: JourneyName = "login"
    by: Literal["trace_id", "request_id"] = Field(
        "trace_id", description="which of the probe's ids the lines must carry")
    services: list[str] = Field(default_factory=list, description="services that must have logged")
    min_lines: int = Field(1, ge=1)
    anchor: Anchor = "probe_sent"
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"{self.journey} logs carry the trace id"


class MetricCheck(CheckBase):
    """A PromQL condition holds (returns a non-empty result) within the deadline."""

    signal: Literal["metric"]
    query: str = Field(min_length=1)

    def default_name(self) -> str:
        return f"metric condition {self.query}"


class ProbeCheck(CheckBase):
    """A journey's probes succeed (again) within the deadline: N consecutive passes."""

    signal: Literal["probe"]
    journey: JourneyName = "health"
    consecutive: int = Field(2, ge=1, le=100)

    def default_name(self) -> str:
        return f"{self.journey} probes succeed"


class HealthCheck(CheckBase):
    """The service's health endpoints answer as expected (5xx while a dependency is down)."""

    signal: Literal["health"]
    service: str = "web"
    paths: list[str] = Field(default_factory=lambda: ["/health", "/health/ready"], min_length=1)
    expect: Literal["down", "up"] = Field(
        "down", description="down: every path answers 5xx (the fault shows); up: every path 2xx")
    anchor: Anchor = "fault_start"
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"{self.service} {', '.join(self.paths)} report {self.expect}"


class MetricContractCheck(CheckBase):
    """Required metric names exist, each with its required labels (a metrics contract)."""

    signal: Literal["metric_contract"]
    phase: PhaseName = "baseline"
    metrics: dict[str, list[str]] = Field(
        min_length=1, description="metric name -> labels every series must carry")
    scrape: str | None = Field(
        None, description="read a raw /metrics page instead of Prometheus: a service name "
        "from target.services or a URL")
    deadline_s: float = Field(15.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"metric contract ({len(self.metrics)} metrics)"


class CounterIncreasesCheck(CheckBase):
    """A counter increases by at least ``min_increase`` after the anchor (while load runs)."""

    signal: Literal["counter_increases"]
    phase: PhaseName = "baseline"
    metric: str = Field(min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    min_increase: float = Field(1.0, gt=0)
    scrape: str | None = Field(None, description="as in metric_contract")
    deadline_s: float = Field(15.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"counter {self.metric} increases"


class AlertRuleCheck(CheckBase):
    """The alerting rule is loaded, healthy, labelled and has a runbook that answers."""

    signal: Literal["alert_rule"]
    phase: PhaseName = "baseline"
    alertname: str
    required_labels: list[str] = Field(default_factory=lambda: ["severity"])
    required_annotations: list[str] = Field(default_factory=lambda: ["runbook_url"])
    runbook_must_answer: bool = Field(True, description="GET runbook_url must answer 2xx/3xx")
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"alert rule {self.alertname} is sound"


class AlertResolvesCheck(CheckBase):
    """The alert, having fired, stops firing within the deadline after recovery."""

    signal: Literal["alert_resolves"]
    phase: PhaseName = "recovery"
    alertname: str
    labels: dict[str, str] = Field(default_factory=dict)
    anchor: Anchor = "fault_end"
    deadline_s: float = Field(60.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"alert {self.alertname} resolves"


class AlertNotSilencedCheck(CheckBase):
    """The alert reaches Alertmanager active: not silenced, not inhibited."""

    signal: Literal["alert_not_silenced"]
    alertname: str
    labels: dict[str, str] = Field(default_factory=dict)
    anchor: Anchor = "fault_start"

    def default_name(self) -> str:
        return f"alert {self.alertname} not silenced or inhibited"


class LogFieldsCheck(CheckBase):
    """The probe's log lines carry every required structured field."""

    signal: Literal["log_fields"]
    phase: PhaseName = "baseline"
    journey: JourneyName = "login"
    fields: list[str] = Field(default_factory=lambda: ["level", "service", "trace_id"],
                              min_length=1, description="dotted paths allowed")
    anchor: Anchor = "probe_sent"
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"{self.journey} logs carry {', '.join(self.fields)}"


class LogLevelsCheck(CheckBase):
    """A failed request is logged at ERROR (or above), not at INFO."""

    signal: Literal["log_levels"]
    journey: JourneyName = "upload"
    min_level: Literal["WARNING", "ERROR", "CRITICAL"] = "ERROR"
    anchor: Anchor = "probe_sent"
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"failed {self.journey} logged at {self.min_level}"


class LogBudgetCheck(CheckBase):
    """No request writes more than ``max_lines_per_request`` log lines (no log explosion)."""

    signal: Literal["log_budget"]
    phase: PhaseName = "baseline"
    journey: JourneyName = "upload"
    max_lines_per_request: int = Field(20, ge=1)
    sample: int = Field(5, ge=1, le=100, description="how many of the phase's probes to count")
    anchor: Anchor = "probe_sent"
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"{self.journey} log lines per request <= {self.max_lines_per_request}"


class SecretLeakCheck(CheckBase):
    """The journey's secrets (password, tokens) appear in no log line since the run began."""

    signal: Literal["secret_leak"]
    phase: PhaseName = "recovery"
    journey: JourneyName = Field("login", description="whose log lines prove logs are flowing")
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        return "no secret in the logs"


class TraceErrorSpanCheck(CheckBase):
    """Under a fault, the failed probe's trace holds an error span matching the selector."""

    signal: Literal["trace_error_span"]
    journey: JourneyName = "upload"
    span: SpanSelector = Field(default_factory=SpanSelector)
    anchor: Anchor = "probe_sent"
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"failed {self.journey} trace has an error {self.span.describe()}"


_SENSITIVE = ["password", "passwd", "secret", "token", "authorization", "cookie", "api_key",
              "apikey"]


class TraceAttributesCheck(CheckBase):
    """No span of the probe's trace carries a sensitive attribute or a secret value."""

    signal: Literal["trace_attributes"]
    phase: PhaseName = "baseline"
    journey: JourneyName = "login"
    forbidden: list[str] = Field(default_factory=lambda: list(_SENSITIVE),
                                 description="attribute keys containing these are refused")
    anchor: Anchor = "probe_sent"
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"{self.journey} spans carry no sensitive attributes"


class ErrorEventCheck(CheckBase):
    """An error event tied to the failed probe's trace (or request) id appears in time."""

    signal: Literal["error_event"]
    journey: JourneyName = "upload"
    by: Literal["trace_id", "request_id"] = "trace_id"
    anchor: Anchor = "probe_sent"
    deadline_s: float = Field(15.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"failed {self.journey} reported as an error event"


_PII = ["user.email", "user.ip_address", "request.cookies", "request.headers.Authorization",
        "request.headers.Cookie", "request.data.password"]


class PiiScrubbedCheck(CheckBase):
    """The failed probe's error events carry no user PII and none of the journey's secrets."""

    signal: Literal["pii_scrubbed"]
    journey: JourneyName = "upload"
    fields: list[str] = Field(default_factory=lambda: list(_PII),
                              description="dotted paths into the event that must be absent")
    anchor: Anchor = "probe_sent"
    deadline_s: float = Field(15.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"{self.journey} error events carry no PII"


class HygieneCheck(CheckBase):
    """Alert hygiene: promtool accepts the rules, every alert is complete and routed.

    One config check, up to four results (gates/hygiene.py). Without ``rules`` it judges
    the demo stack's own rules and Alertmanager config (``readygate demo`` fills them in).
    """

    signal: Literal["hygiene"]
    phase: PhaseName = "baseline"
    rules: list[str] = Field(default_factory=list,
                             description="rule files or globs (default: the demo stack's)")
    alertmanager_config: str | None = Field(
        None, description="alertmanager.yml whose routes every alert must reach")
    rule_tests: list[str] | None = Field(
        None, description="promtool unit test files (default: *_test.yml beside the rules)")
    deadline_s: float = Field(60.0, gt=0, le=3600)

    def default_name(self) -> str:
        return "alert hygiene"


class SloCheck(CheckBase):
    """Probe success ratio and p95 latency of a journey meet targets over a window."""

    signal: Literal["slo"]
    phase: PhaseName = "baseline"
    journey: JourneyName = "health"
    min_success_ratio: float = Field(0.99, ge=0, le=1)
    max_p95_ms: float | None = Field(None, gt=0, description="None: latency is not judged")
    window_s: float = Field(10.0, gt=0, le=86400, description="observed from the anchor on")
    min_runs: int = Field(3, ge=1, description="fewer probe runs in the window is a fail")

    @model_validator(mode="after")
    def _anchor(self) -> SloCheck:
        if self.anchor == "probe_sent":
            raise ValueError("anchor: an slo window starts at phase_start, fault_start or "
                             "fault_end")
        return self

    def default_name(self) -> str:
        p95 = f", p95 <= {self.max_p95_ms:g}ms" if self.max_p95_ms is not None else ""
        return f"{self.journey} SLO: success >= {self.min_success_ratio:.2%}{p95}"


Check = Annotated[
    Union[AlertCheck, NotificationCheck, NoAlertCheck, TraceCheck, LogsCheck, MetricCheck,  # noqa: UP007
          ProbeCheck, HealthCheck, MetricContractCheck, CounterIncreasesCheck, AlertRuleCheck,
          AlertResolvesCheck, AlertNotSilencedCheck, LogFieldsCheck, LogLevelsCheck,
          LogBudgetCheck, SecretLeakCheck, TraceErrorSpanCheck, TraceAttributesCheck,
          ErrorEventCheck, PiiScrubbedCheck, HygieneCheck, SloCheck],
    Field(discriminator="signal"),
]

# --- scenario and gates -----------------------------------------------------------------


class Phase(Model):
    """A phase lasts at least min_duration_s and until its checks settle, at most max_duration_s."""

    min_duration_s: float = Field(0.0, ge=0, le=86400)
    max_duration_s: float = Field(60.0, gt=0, le=86400)

    @model_validator(mode="after")
    def _order(self) -> Phase:
        if self.max_duration_s < self.min_duration_s:
            raise ValueError("max_duration_s must be >= min_duration_s")
        return self


class _FaultBase(Model):
    """What every fault has: the named target it touches and the TTL that ends it."""

    service: str = Field(description="the named target (see docs/chaos.md per kind)")
    ttl_s: float = Field(120.0, gt=0, le=3600, description="the fault removes itself after this")


class HttpFault(_FaultBase):
    """A fault injected through the HTTP fault proxy in front of ``service``."""

    kind: Literal["http_error", "latency", "abort"] = "http_error"
    status: int = Field(500, ge=400, le=599)
    rate: float = Field(1.0, ge=0, le=1)
    latency_ms: int = Field(0, ge=0, le=600_000)
    jitter_ms: int = Field(0, ge=0, le=600_000)
    path_prefix: str | None = None
    methods: list[str] | None = None


class TcpFault(_FaultBase):
    """A fault injected through the TCP fault proxy (``python -m chaos.tcpproxy``)."""

    kind: Literal["tcp_latency", "tcp_reset", "tcp_blackhole", "tcp_bandwidth"]
    latency_ms: int = Field(0, ge=0, le=600_000, description="tcp_latency: per chunk")
    jitter_ms: int = Field(0, ge=0, le=600_000)
    bytes_per_s: int | None = Field(None, gt=0, description="tcp_bandwidth: the limit")
    direction: Literal["both", "upstream", "downstream"] = "both"

    @model_validator(mode="after")
    def _needs(self) -> TcpFault:
        if self.kind == "tcp_bandwidth" and self.bytes_per_s is None:
            raise ValueError("tcp_bandwidth needs bytes_per_s")
        return self


class ProcessFault(_FaultBase):
    """Pause (SIGSTOP, resumed on rollback or TTL), kill or terminate a named local process."""

    kind: Literal["process"]
    action: Literal["stop", "kill", "term"] = "stop"


class CommandFault(_FaultBase):
    """The user's own shell commands: ``inject`` starts the fault, ``rollback`` ends it."""

    kind: Literal["command"]
    inject: str = Field(min_length=1)
    rollback: str = Field(min_length=1, description="also run by a watchdog at the TTL")
    timeout_s: float = Field(30.0, gt=0, le=3600, description="per command")


class ToxiproxyFault(_FaultBase):
    """A toxic added to a Toxiproxy proxy (``type: down`` disables the proxy instead)."""

    kind: Literal["toxiproxy"]
    type: Literal["latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer",
                  "limit_data", "down"]
    stream: Literal["upstream", "downstream"] = "downstream"
    toxicity: float = Field(1.0, ge=0, le=1)
    attributes: dict[str, int | float] = Field(default_factory=dict)


FAULT_KINDS: dict[str, type[_FaultBase]] = {
    "http_error": HttpFault, "latency": HttpFault, "abort": HttpFault,
    "tcp_latency": TcpFault, "tcp_reset": TcpFault, "tcp_blackhole": TcpFault,
    "tcp_bandwidth": TcpFault, "process": ProcessFault, "command": CommandFault,
    "toxiproxy": ToxiproxyFault}
"""Every fault ``kind`` and its model."""


def _fault_tag(value: Any) -> str:
    """The union tag of a fault: its kind (``http_error`` when omitted, as before the union)."""
    kind = value.get("kind", "http_error") if isinstance(value, dict) else \
        getattr(value, "kind", "http_error")
    return str(kind)


Fault = Annotated[
    Union[  # noqa: UP007
        Annotated[HttpFault, Tag("http_error")], Annotated[HttpFault, Tag("latency")],
        Annotated[HttpFault, Tag("abort")], Annotated[TcpFault, Tag("tcp_latency")],
        Annotated[TcpFault, Tag("tcp_reset")], Annotated[TcpFault, Tag("tcp_blackhole")],
        Annotated[TcpFault, Tag("tcp_bandwidth")], Annotated[ProcessFault, Tag("process")],
        Annotated[CommandFault, Tag("command")], Annotated[ToxiproxyFault, Tag("toxiproxy")]],
    Discriminator(_fault_tag),
]
"""Any fault; ``kind`` selects the model (docs/chaos.md lists them)."""


class Experiment(Model):
    """A Chaos Toolkit experiment run during the fault phase; its journal becomes a check."""

    path: str = Field(description="experiment file (JSON or YAML), relative to the checkout")
    configuration: dict[str, Any] = Field(
        default_factory=dict, description="overrides of the experiment's configuration")
    timeout_s: float = Field(300.0, gt=0, le=86400)
    severity: Severity = "critical"


class Load(Model):
    """Locust load running throughout the scenario, in its own process(es)."""

    users: int = Field(5, ge=1, le=100_000)
    spawn_rate: float = Field(5.0, gt=0, le=10_000, description="users started per second")
    journeys: dict[JourneyName, int] = Field(
        default_factory=lambda: dict.fromkeys(_ALL_JOURNEYS, 1),
        description="journey -> weight; each becomes a Locust task with the journey's requests")
    service: str = Field("web", description="the target service the load calls")
    wait_min_s: float = Field(0.1, ge=0, le=3600, description="pause between a user's tasks")
    wait_max_s: float = Field(0.5, ge=0, le=3600)
    max_duration_s: float = Field(900.0, gt=0, le=86400,
                                  description="upper bound: Locust stops by itself after this")
    workers: int = Field(0, ge=0, le=64, description="0: one local Locust process; N: a master "
                         "and N local worker processes (Locust's distributed mode)")
    external_workers: int = Field(0, ge=0, le=10_000, description="workers started elsewhere "
                                  "that the master also waits for (load beyond one machine)")
    master_bind_host: str = Field("127.0.0.1", description="where the master listens for workers")
    stats_interval_s: float = Field(1.0, ge=0.2, le=60, description="how often RPS, failures "
                                    "and p95 go into the timeline")

    @model_validator(mode="after")
    def _checked(self) -> Load:
        if self.wait_max_s < self.wait_min_s:
            raise ValueError("wait_max_s must be >= wait_min_s")
        if not any(w > 0 for w in self.journeys.values()):
            raise ValueError("journeys: at least one journey needs a weight > 0")
        return self


class Scenario(Model):
    """Baseline (healthy) → fault → recovery, probes (and optional load) running throughout."""

    baseline: Phase = Field(default_factory=lambda: Phase(min_duration_s=5, max_duration_s=30))
    fault: Fault | None = None
    experiment: Experiment | None = Field(
        None, description="a Chaos Toolkit experiment run in the fault phase")
    fault_phase: Phase = Field(default_factory=lambda: Phase(max_duration_s=60))
    recovery: Phase = Field(default_factory=lambda: Phase(max_duration_s=60))
    load: Load | None = None
    probes: bool = Field(True, description="run the probes throughout; false for a static "
                         "gate (e.g. alert hygiene) that needs no target.services")


class Drill(Model):
    """What a drill measures: the alert whose pending/firing/notified times make its timeline."""

    alertname: str | None = Field(
        None, description="default: the first alert check of the fault phase")
    labels: dict[str, str] = Field(default_factory=dict)
    poll_interval_s: float = Field(0.25, gt=0, le=60)


class Gate(Model):
    """A named set of a scenario and checks with severities."""

    description: str = ""
    scenario: Scenario = Field(default_factory=Scenario)
    checks: list[Check] = Field(default_factory=list)
    drill: Drill = Field(default_factory=Drill)
    suites: list[str] = Field(
        default_factory=list, description="pytest files or directories run after the scenario; "
        "each test becomes a check (docs/gates.md)")
    suite_timeout_s: float = Field(300.0, gt=0, le=86400, description="for all suites together")


class DemoSettings(Model):
    """How `readygate demo` runs the bundled demo system."""

    gate: str = "release"
    sabotage: list[str] = Field(default_factory=list)
    rules_file: str | None = Field(
        None, description="alert rules to load instead of the demo's own")


# --- links and notifications (reports) --------------------------------------------------

class Links(Model):
    """Base URLs for links from the report's evidence into your tools (all optional)."""

    prometheus: str | None = Field(
        None, description="Prometheus UI: metric checks link to {prometheus}/graph?g0.expr=...")
    grafana: str | None = Field(None, description="Grafana: metric checks link to Explore")
    grafana_datasource: str = Field("prometheus", description="Grafana datasource uid for Explore")
    jaeger: str | None = Field(None, description="Jaeger UI: trace ids link to {jaeger}/trace/ID")
    report_url: str | None = Field(
        None, description="where the published report.html lives (linked from Slack/webhook)")

    @model_validator(mode="after")
    def _urls(self) -> Links:
        for name in ("prometheus", "grafana", "jaeger", "report_url"):
            url = getattr(self, name)
            if url is not None and not re.match(r"^https?://", url):
                raise ValueError(f"{name}: {url!r} is not an http(s) URL")
        return self


class SlackNotify(Model):
    """A Slack summary: an incoming webhook URL, or a bot token plus a channel."""

    webhook_url: SecretStr | None = None
    token: SecretStr | None = None
    channel: str | None = None
    base_url: str | None = Field(
        None, description="Slack API base URL for a bot token (default: Slack's own)")
    timeout_s: float = Field(10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _one_way(self) -> SlackNotify:
        if (self.webhook_url is None) == (self.token is None):
            raise ValueError("set exactly one of webhook_url or token")
        if self.token is not None and not self.channel:
            raise ValueError("a bot token needs a channel")
        return self


class WebhookNotify(Model):
    """A generic JSON webhook: POSTs the run's summary."""

    url: SecretStr
    timeout_s: float = Field(10.0, gt=0, le=120)


VerdictName = Literal["ready", "not_ready", "inconclusive"]
_ALL_VERDICTS: tuple[VerdictName, ...] = ("ready", "not_ready", "inconclusive")


class Notify(Model):
    """Where to send the run's summary, and when."""

    when: list[VerdictName] = Field(
        default_factory=lambda: list(_ALL_VERDICTS),
        description="verdicts that send a notification")
    slack: SlackNotify | None = None
    webhook: WebhookNotify | None = None


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
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "readygate.yaml"
    return schema


# --- loading ----------------------------------------------------------------------------

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
Loc = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys."""


def _compose(text: str, path: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise ConfigError(f"invalid YAML: {problem}", path=path, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path=path) from None


_MAX_NODES = 100_000
"""A config is hand-written: no real one comes near this many values."""


def _to_python(node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: str) -> Any:
    """Build plain Python values from the node tree, remembering each location's line."""
    if len(lines) > _MAX_NODES:
        # aliases expand: a few lines of &a / *a can stand for billions of values
        raise ConfigError(f"more than {_MAX_NODES} values once YAML aliases are expanded "
                          "(an alias bomb?)", path=path, line=node.start_mark.line + 1)
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            # A mapping or list used as a key is never a config key: refuse it without
            # building it (building `{{}}`'s key crashed inside PyYAML).
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                raise ConfigError("keys must be strings", path=path,
                                  line=key_node.start_mark.line + 1, key=_dotted(loc) or None)
            if key in out:
                raise ConfigError(f"duplicate key {key!r}", path=path,
                                  line=key_node.start_mark.line + 1, key=_dotted((*loc, key)))
            out[key] = _to_python(value_node, (*loc, key), lines, path)
            lines[(*loc, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*loc, i), lines, path) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    try:
        value = _Loader("").construct_object(node)
    except yaml.YAMLError as exc:  # e.g. a bare "=" (the YAML 'value' tag) or a bad !!tag
        problem = str(getattr(exc, "problem", None) or exc).splitlines()[0]
        raise ConfigError(f"invalid YAML value: {problem}", path=path,
                          line=node.start_mark.line + 1, key=_dotted(loc) or None) from None
    if isinstance(value, str) and "$" in value:
        value = _interpolate(value, loc, lines[loc], path)
    return value


def _interpolate(value: str, loc: Loc, line: int, path: str) -> str:
    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        env = os.environ.get(name)
        if env is not None and env != "":
            return env
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set (and no default given)",
                          path=path, line=line, key=_dotted(loc))

    return _ENV_RE.sub(sub, value)


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _line_for(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


def _unwrap(tp: Any) -> Any:
    """Strip Optional/Annotated so the model class is visible."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _resolve_union(tp: Any, data: Any) -> Any:
    """Pick the check model whose ``signal`` literal matches the data (for suggestions)."""
    tp = _unwrap(tp)
    if typing.get_origin(tp) in (Union, types.UnionType) and isinstance(data, dict):
        for member in typing.get_args(tp):
            member = _unwrap(member)  # fault members are Annotated[Model, Tag(kind)]
            if isinstance(member, type) and issubclass(member, BaseModel):
                field = member.model_fields.get("signal")
                if field is not None and data.get("signal") in typing.get_args(field.annotation):
                    return member
                if member is FAULT_KINDS.get(_fault_tag(data)) and "signal" not in data:
                    return member
    return tp


def _signal_names() -> set[str]:
    """Every check's ``signal`` literal (pydantic puts it in error locations as a tag)."""
    names: set[str] = set()
    for member in typing.get_args(typing.get_args(Check)[0]):
        names.update(typing.get_args(member.model_fields["signal"].annotation))
    return names


def _known_keys(loc: Loc, data: Any, root: Any = None) -> list[str]:
    """Keys allowed at ``loc`` (the parent mapping of an unknown key)."""
    current: Any = Config if root is None else root
    node = data
    for part in loc:
        current = _resolve_union(_unwrap(current), node)
        if isinstance(current, type) and issubclass(current, BaseModel):
            by_key = {f.alias or n: f for n, f in current.model_fields.items()}
            if isinstance(part, int) or part not in by_key:
                return []
            current = by_key[part].annotation
        elif typing.get_origin(current) in (list, dict):
            current = typing.get_args(current)[-1]
        else:
            return []
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    current = _resolve_union(_unwrap(current), node)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _clean_loc(loc: tuple[Any, ...], data: Any) -> Loc:
    """Drop pydantic's union-tag elements (e.g. 'alert') that are not keys in the data."""
    out: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            out.append(part)
            node = node[part]
        elif isinstance(node, dict | list):
            # a union tag or model name pydantic inserts: not part of the user's path
            if isinstance(part, str) and (part in _signal_names() or part in FAULT_KINDS
                                          or "[" in part):
                continue
            out.append(part)
            node = None
        else:
            out.append(part)
            node = None
    return tuple(out)


def _node_at(data: Any, loc: Loc) -> Any:
    """The value at ``loc`` in the parsed YAML, or None."""
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _format_validation(exc: ValidationError, data: Any, lines: Mapping[Loc, int],
                       path: str, root: Any = None) -> ConfigError:
    errors = exc.errors(include_url=False)
    # a misspelt key also makes the real key "missing": the typo is the better explanation
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = _clean_loc(tuple(err["loc"]), data)
    kind = err["type"]
    key = _dotted(loc) or None
    line = _line_for(loc, lines)
    if kind == "extra_forbidden":
        bad = str(loc[-1])
        known = _known_keys(loc[:-1], data, root)
        close = difflib.get_close_matches(bad, known, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else (
            f" (allowed: {', '.join(known)})" if known else "")
        return ConfigError(f"unknown key '{bad}'{hint}", path=path, line=line, key=key)
    if kind == "missing":
        return ConfigError("required key is missing", path=path, line=line, key=key)
    if kind == "union_tag_invalid":
        ctx = err.get("ctx") or {}
        tag = ctx.get("tag", "?")
        expected = str(ctx.get("expected_tags", "")).replace("'", "")
        options = [t.strip() for t in expected.split(",") if t.strip()]
        close = difflib.get_close_matches(str(tag), options, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (one of: {expected})"
        node = _node_at(data, loc)
        # checks are tagged by `signal`, faults by `kind`
        disc = "kind" if isinstance(node, dict) and "signal" not in node else "signal"
        what = "fault kind" if disc == "kind" else "signal"
        sig_loc = (*loc, disc)
        return ConfigError(f"unknown {what} {tag!r}{hint}", path=path,
                           line=_line_for(sig_loc, lines), key=_dotted(sig_loc))
    if kind == "union_tag_not_found":
        return ConfigError("a check needs a 'signal' key (one of: "
                           f"{', '.join(sorted(_signal_names()))})", path=path, line=line,
                           key=key)
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    given = err.get("input")
    if kind not in {"model_type", "dict_type"} and isinstance(given, str | int | float | bool):
        secretish = key is not None and any(
            s in key for s in ("password", "token", "secret", "webhook"))
        if not secretish:
            message += f" (got {given!r})"
    return ConfigError(message, path=path, line=line, key=key)


def parse_config(text: str, path: str = "<config>") -> Config:
    """Parse and validate config text; raise :class:`ConfigError` with file:line and key."""
    root = _compose(text, path)
    lines: dict[Loc, int] = {}
    data = {} if root is None else _to_python(root, (), lines, path)
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of keys", path=path, line=1)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise _format_validation(exc, data, lines, path) from None
    _check_references(config, lines, path)
    redact.register(*config.secrets())
    return config


_M = typing.TypeVar("_M", bound=BaseModel)


def parse_model(text: str, path: str, model: type[_M]) -> tuple[_M, dict[Loc, int]]:
    """Parse YAML text into any model (e.g. a journeys file) with the same file:line:key errors.

    Returns the model and the line of every key path, for cross-field errors by the caller.
    """
    root = _compose(text, path)
    lines: dict[Loc, int] = {}
    data = {} if root is None else _to_python(root, (), lines, path)
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of keys", path=path, line=1)
    try:
        return model.model_validate(data), lines
    except ValidationError as exc:
        raise _format_validation(exc, data, lines, path, model) from None


def _check_references(config: Config, lines: Mapping[Loc, int], path: str) -> None:
    """Cross-field rules: known backend kinds; chaos touches only target.fault_proxies."""
    _check_backends(config.backends, lines, path)
    for gname, gate in config.gates.items():
        check_gate_references(gate, config.target, lines, path, ("gates", gname))


def resolve_path(path: str) -> Path:
    """A config path: absolute, else relative to the current directory, else the checkout."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    checkout = Path(__file__).resolve().parent.parent / p
    return checkout if checkout.exists() else p


def check_gate_references(gate: Gate, target: Target, lines: Mapping[Loc, int], path: str,
                          prefix: Loc) -> None:
    """One gate's cross-field rules: its fault touches a named target; its suites exist."""
    fault = gate.scenario.fault
    if fault is not None:
        problem = fault_target_problem(fault, target)
        if problem is not None:
            loc: Loc = (*prefix, "scenario", "fault", "service")
            raise ConfigError(problem, path=path, line=_line_for(loc, lines), key=_dotted(loc))
    for i, suite in enumerate(gate.suites):
        if not resolve_path(suite).exists():
            loc = (*prefix, "suites", i)
            raise ConfigError(f"pytest suite {suite!r} does not exist", path=path,
                              line=_line_for(loc, lines), key=_dotted(loc))


def fault_target_problem(fault: Fault, target: Target) -> str | None:
    """Why ``fault`` may not run on ``target`` (chaos touches only named targets), or None."""
    def missing(where: str, names: Mapping[str, Any]) -> str:
        return f"{fault.service!r} is not in target.{where} ({', '.join(sorted(names))})"

    if isinstance(fault, HttpFault | TcpFault):
        # Empty fault_proxies: `--demo` fills them in at run time; the injector checks again.
        if target.fault_proxies and fault.service not in target.fault_proxies:
            return missing("fault_proxies", target.fault_proxies)
    elif isinstance(fault, ProcessFault):
        if fault.service not in target.processes:
            return missing("processes", target.processes)
    elif isinstance(fault, ToxiproxyFault):
        if target.toxiproxy is None:
            return "a toxiproxy fault needs target.toxiproxy (url and proxies)"
        if fault.service not in target.toxiproxy.proxies:
            return missing("toxiproxy.proxies", target.toxiproxy.proxies)
    else:
        named = {**target.services, **target.fault_proxies, **target.processes,
                 **(target.toxiproxy.proxies if target.toxiproxy else {})}
        if named and fault.service not in named:
            return f"{fault.service!r} is not a target named in the config " \
                   f"({', '.join(sorted(named))})"
    return None


def _check_backends(backends: Backends, lines: Mapping[Loc, int], path: str) -> None:
    """Each per-signal backend names a known kind and has what that kind needs."""
    for signal, backend in backends.by_signal().items():
        known = BACKEND_KINDS[signal]
        loc: Loc = ("backends", signal)
        if backend.kind not in known:
            close = difflib.get_close_matches(backend.kind, sorted(known), n=1, cutoff=0.5)
            hint = f" (did you mean '{close[0]}'?)" if close else \
                f" (one of: {', '.join(sorted(known))})"
            raise ConfigError(f"unknown {signal} backend {backend.kind!r}{hint}", path=path,
                              line=_line_for((*loc, "kind"), lines), key=_dotted((*loc, "kind")))
        # SaaS kinds default to the vendor's URL; the sink's comes from backends.sink
        needs = {"jsonl": ["path"], "slack": ["channel"],
                 "sentry": ["organization", "project"]}.get(backend.kind, ["url"])
        if backend.kind in ("sink", "pagerduty"):
            needs = []
        for need in needs:
            if getattr(backend, need) is None:
                raise ConfigError(f"a {backend.kind} backend needs '{need}'", path=path,
                                  line=_line_for(loc, lines), key=_dotted(loc))


def load_config(path: str | Path) -> Config:
    """Read and validate a config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", path=str(path)) from None
    return parse_config(text, str(path))


def default_config_path() -> Path:
    """``./readygate.yaml`` if present, else the checkout's bundled default."""
    local = Path("readygate.yaml")
    if local.exists():
        return local
    return Path(__file__).resolve().parent.parent / "readygate.yaml"
