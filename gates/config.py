"""The checks a gate may declare: one model per ``signal``, and the ``Check`` union."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from core.config import Model, Severity
from probes.config import JourneyName

PhaseName = Literal["baseline", "fault", "recovery"]
Anchor = Literal["phase_start", "fault_start", "fault_end", "probe_sent"]


class CheckBase(Model):
    """What every check has: a name, a severity, the phase it judges and a deadline."""

    name: str | None = None
    severity: Severity = "critical"
    phase: PhaseName = "fault"
    deadline_s: float = Field(30.0, gt=0, le=3600)
    anchor: Anchor = Field("phase_start", description="the event the deadline counts from")

    def display_name(self) -> str:
        return self.name or self.default_name()

    @property
    def jname(self) -> str:
        """The followed journey's name for messages ("journey" when any journey will do)."""
        return getattr(self, "journey", None) or "journey"

    @property
    def sname(self) -> str:
        """The checked service's name for messages ("service" when the probes' one)."""
        return getattr(self, "service", None) or "service"

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
    """No alert is pending or firing during a healthy window, and no rule's condition holds."""

    signal: Literal["no_alert"]
    phase: PhaseName = "baseline"
    window_s: float = Field(5.0, gt=0, le=3600, description="how long to watch")
    alertnames: list[str] = Field(default_factory=list, description="empty: any alert")
    evaluate_rules: bool = Field(
        True, description="also evaluate every alerting rule's expression over the window "
        "(query_range): catches a condition that holds while its for: outlasts the window")

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
    journey: JourneyName | None = Field(
        None, description="the journey whose probes this check follows (default: any)")
    services: list[str] = Field(
        default_factory=list, description="services the trace must span (default: any span)")
    spans: list[SpanSelector] = Field(
        default_factory=list, description="each selector must match at least one span")
    anchor: Anchor = "probe_sent"
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        spans = "+".join(self.services) or "the trace backend"
        return f"{self.journey or 'any journey'} trace spans {spans}"


class LogsCheck(CheckBase):
    """Log lines carrying the probe's trace id reach the log backend."""

    signal: Literal["logs"]
    journey: JourneyName | None = Field(
        None, description="the journey whose probes this check follows (default: any)")
    by: Literal["trace_id", "request_id"] = Field(
        "trace_id", description="which of the probe's ids the lines must carry")
    services: list[str] = Field(default_factory=list, description="services that must have logged")
    min_lines: int = Field(1, ge=1)
    anchor: Anchor = "probe_sent"
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"{self.journey or 'any journey'} logs carry the trace id"


class MetricCheck(CheckBase):
    """A PromQL condition holds (returns a non-empty result) within the deadline."""

    signal: Literal["metric"]
    query: str = Field(min_length=1)

    def default_name(self) -> str:
        return f"metric condition {self.query}"


class ProbeCheck(CheckBase):
    """A journey's probes succeed (again) within the deadline: N consecutive passes, and
    they keep succeeding through the rest of the phase's observation window."""

    signal: Literal["probe"]
    journey: JourneyName | None = Field(
        None, description="the journey whose probes this check follows (default: any)")
    consecutive: int = Field(2, ge=1, le=100)
    hold: bool = Field(
        True, description="after the streak, any failed run before the phase's min_duration_s "
        "ends fails the check (false: settle at the streak)")

    def default_name(self) -> str:
        return f"{self.journey or 'any journey'} probes succeed"


class HealthCheck(CheckBase):
    """The service's health endpoints answer as expected (5xx while a dependency is down)."""

    signal: Literal["health"]
    service: str | None = Field(
        None, description="the target service (default: the probes' service)")
    paths: list[str] = Field(min_length=1, description="health endpoints, e.g. [/healthz]")
    expect: Literal["down", "up"] = Field(
        "down", description="down: every path answers 5xx (the fault shows); up: every path 2xx")
    anchor: Anchor = "fault_start"
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        service = f"{self.service} " if self.service else ""
        verb = "reports" if len(self.paths) == 1 else "report"
        return f"{service}{', '.join(self.paths)} {verb} {self.expect}"


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
    labels: dict[str, str] = Field(
        default_factory=dict, description="labels the rule must carry with exactly these values, "
        "e.g. {severity: critical} (a downgraded severity fails)")
    required_labels: list[str] = Field(default_factory=lambda: ["severity"])
    required_annotations: list[str] = Field(default_factory=lambda: ["runbook_url"])
    runbook_must_answer: bool = Field(True, description="GET runbook_url must answer 2xx/3xx")
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"alert rule {self.alertname} is sound"


class AlertPolicyCheck(CheckBase):
    """Cloud Monitoring alert policies, named by display name, are sound: enabled, notify
    an enabled channel, carry documentation, and watch metrics that have data
    (gates/checks/gcloud_policies.py; reads backends.alerts or backends.metrics of kind
    gcloud)."""

    signal: Literal["alert_policy"]
    phase: PhaseName = "baseline"
    policies: list[str] = Field(min_length=1, description="display names, e.g. "
                                "\"API error rate > 5 %\"")
    require_documentation: bool = Field(True, description="documentation.content non-empty")
    channel_types: list[str] = Field(
        default_factory=list, description="channel types each policy must notify, e.g. "
        "[webhook_tokenauth] (the webhook to readygate sink that proves it fired)")
    policy_severity: Literal["critical", "error", "warning"] | None = Field(
        None, description="the severity each policy must carry (None: not judged)")
    data_lookback_s: float | None = Field(
        3600.0, gt=0, le=86400 * 42, description="each metric threshold or absence condition's "
        "filter must match a time series written in this window (timeSeries.list); None: "
        "not judged")
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"alert policies {', '.join(self.policies)} are sound"


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
    journey: JourneyName | None = Field(
        None, description="the journey whose probes this check follows (default: any)")
    fields: list[str] = Field(default_factory=lambda: ["level", "service", "trace_id"],
                              min_length=1, description="dotted paths allowed")
    anchor: Anchor = "probe_sent"
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"{self.journey or 'any journey'} logs carry {', '.join(self.fields)}"


class LogLevelsCheck(CheckBase):
    """A failed request is logged at ERROR (or above), not at INFO."""

    signal: Literal["log_levels"]
    journey: JourneyName | None = Field(
        None, description="the journey whose probes this check follows (default: any)")
    min_level: Literal["WARNING", "ERROR", "CRITICAL"] = "ERROR"
    anchor: Anchor = "probe_sent"
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"failed {self.journey or 'any journey'} logged at {self.min_level}"


class LogBudgetCheck(CheckBase):
    """No request writes more than ``max_lines_per_request`` log lines (no log explosion)."""

    signal: Literal["log_budget"]
    phase: PhaseName = "baseline"
    journey: JourneyName | None = Field(
        None, description="the journey whose probes this check follows (default: any)")
    max_lines_per_request: int = Field(20, ge=1)
    sample: int = Field(5, ge=1, le=100, description="how many of the phase's probes to count")
    anchor: Anchor = "probe_sent"
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"{self.jname} log lines per request <= {self.max_lines_per_request}"


class SecretLeakCheck(CheckBase):
    """The config's secrets (password, tokens) appear in no log line of the retained window,
    in any encoding (URL, base64, JSON/HTML escapes, hex, split over two fields)."""

    signal: Literal["secret_leak"]
    phase: PhaseName = "recovery"
    journey: JourneyName | None = Field(
        None, description="whose log lines prove logs are flowing (default: any journey)")
    deadline_s: float = Field(10.0, gt=0, le=3600)
    lookback_s: float = Field(
        3600.0, ge=0, le=30 * 86400,
        description="scan from this long before the run began: start-up config dumps and "
                    "earlier runs' leaks are leaks too")
    max_lines: int = Field(
        1_000_000, ge=1, le=50_000_000,
        description="scan at most this many lines; a longer window ends the check as an "
                    "error (could not look at all of it), unless a leak was found")

    def default_name(self) -> str:
        return "no secret in the logs"


class TraceErrorSpanCheck(CheckBase):
    """Under a fault, the failed probe's trace holds an error span matching the selector."""

    signal: Literal["trace_error_span"]
    journey: JourneyName | None = Field(
        None, description="the journey whose probes this check follows (default: any)")
    span: SpanSelector = Field(default_factory=SpanSelector)
    anchor: Anchor = "probe_sent"
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"failed {self.journey or 'any journey'} trace has an error {self.span.describe()}"


_SENSITIVE = ["password", "passwd", "secret", "token", "authorization", "cookie", "api_key",
              "apikey"]


class TraceAttributesCheck(CheckBase):
    """No span of the probe's trace carries a sensitive attribute or a secret value."""

    signal: Literal["trace_attributes"]
    phase: PhaseName = "baseline"
    journey: JourneyName | None = Field(
        None, description="the journey whose probes this check follows (default: any)")
    forbidden: list[str] = Field(default_factory=lambda: list(_SENSITIVE),
                                 description="attribute keys containing these are refused")
    anchor: Anchor = "probe_sent"
    deadline_s: float = Field(10.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"{self.journey or 'any journey'} spans carry no sensitive attributes"


class ErrorEventCheck(CheckBase):
    """An error event tied to the failed probe's trace (or request) id appears in time."""

    signal: Literal["error_event"]
    journey: JourneyName | None = Field(
        None, description="the journey whose probes this check follows (default: any)")
    by: Literal["trace_id", "request_id"] = "trace_id"
    probe: Literal["failed", "succeeded"] = Field(
        "failed", description="the probe run the error belongs to: a failed one (an error the "
        "fault caused), or a succeeded one (a journey that makes the page throw on purpose: "
        "a frontend error trigger)")
    release: bool = Field(False, description="the event must carry a release tag")
    environment: str | None = Field(
        None, description="the event must carry this environment tag (e.g. production)")
    anchor: Anchor = "probe_sent"
    deadline_s: float = Field(15.0, gt=0, le=3600)

    def default_name(self) -> str:
        if self.probe == "succeeded":
            return f"{self.journey or 'any journey'}'s error reported as an error event"
        return f"failed {self.journey or 'any journey'} reported as an error event"


_PII = ["user.email", "user.ip_address", "request.cookies", "request.headers.Authorization",
        "request.headers.Cookie", "request.data.password"]


class PiiScrubbedCheck(CheckBase):
    """The failed probe's error events carry no user PII and none of the journey's secrets."""

    signal: Literal["pii_scrubbed"]
    journey: JourneyName | None = Field(
        None, description="the journey whose probes this check follows (default: any)")
    fields: list[str] = Field(default_factory=lambda: list(_PII),
                              description="dotted paths into the event that must be absent")
    anchor: Anchor = "probe_sent"
    deadline_s: float = Field(15.0, gt=0, le=3600)

    def default_name(self) -> str:
        return f"{self.journey or 'any journey'} error events carry no PII"


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
    alert_labels: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="alert name -> labels its rule must carry with "
        "exactly these values, e.g. {HighErrorRate: {severity: critical}}")
    deadline_s: float = Field(60.0, gt=0, le=3600)

    def default_name(self) -> str:
        return "alert hygiene"


class SloCheck(CheckBase):
    """Probe success ratio and p95 latency of a journey meet targets over a window."""

    signal: Literal["slo"]
    phase: PhaseName = "baseline"
    journey: JourneyName | None = Field(
        None, description="the journey whose probes this check follows (default: any)")
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
        return f"{self.journey or 'any journey'} SLO: success >= {self.min_success_ratio:.2%}{p95}"


class DashboardCheck(CheckBase):
    """Every panel of the named Grafana dashboards returns data (backends.dashboards)."""

    signal: Literal["dashboard"]
    phase: PhaseName = "baseline"
    dashboards: list[str] = Field(min_length=1, description="dashboard uids (from the "
                                  "dashboard's URL: /d/<uid>/...)")
    vars: dict[str, str] = Field(
        default_factory=dict, description="template variables for the target, e.g. "
        "{service: web}; a variable not given keeps the dashboard's saved value")
    window_s: float = Field(
        300.0, gt=0, le=7 * 86400, description="the time range every panel is queried over, "
        "ending at each look (as if the dashboard were opened on 'Last 5 minutes')")
    skip_panels: list[str] = Field(
        default_factory=list, description="panel titles (globs) not judged, e.g. an errors "
        "panel that is empty on a healthy system")

    def default_name(self) -> str:
        return f"dashboard {', '.join(self.dashboards)}: every panel returns data"


Check = Annotated[
    Union[AlertCheck, NotificationCheck, NoAlertCheck, TraceCheck, LogsCheck, MetricCheck,  # noqa: UP007
          ProbeCheck, HealthCheck, MetricContractCheck, CounterIncreasesCheck, AlertRuleCheck,
          AlertResolvesCheck, AlertNotSilencedCheck, LogFieldsCheck, LogLevelsCheck,
          LogBudgetCheck, SecretLeakCheck, TraceErrorSpanCheck, TraceAttributesCheck,
          ErrorEventCheck, PiiScrubbedCheck, HygieneCheck, SloCheck, AlertPolicyCheck,
          DashboardCheck],
    Field(discriminator="signal"),
]
