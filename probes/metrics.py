"""Probe results as Prometheus metrics: blackbox_exporter's names plus readygate's own.

blackbox_exporter names (``probe_success``, ``probe_duration_seconds``,
``probe_http_duration_seconds{phase}``, ``probe_http_status_code``, ``probe_http_ssl``,
``probe_ssl_earliest_cert_expiry``) carry a ``journey`` label, so dashboards and alerts
written for blackbox work with a ``journey`` filter. readygate's own series are per step
(``readygate_step_*``), per journey run (counters, a duration histogram, schedule
lateness), Web Vitals of browser journeys, and ``readygate_probe_info`` joining a journey
and step to its target and location.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from core import redact
from core.http import display_url
from probes.journeys import Journey
from probes.model import ProbeResult

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Start lateness of every run (the per-journey gauge keeps only the last one): fine buckets
# below 50 ms because a healthy scheduler starts runs within a few milliseconds.
LATENESS_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


# The gauges describing a journey's latest result: (name, help, label names), in output order.
RESULT_FAMILIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("probe_success", "Whether the journey's last run succeeded.", ("journey",)),
    ("probe_duration_seconds", "How long the journey's last run took.", ("journey",)),
    ("probe_http_duration_seconds", "Client-side HTTP phase time of the last run, "
     "summed over its requests.", ("journey", "phase")),
    ("probe_http_status_code", "Status of the last answered request (0: none).",
     ("journey",)),
    ("probe_http_ssl", "Whether the last run's requests used TLS.", ("journey",)),
    ("probe_ssl_earliest_cert_expiry", "Earliest server certificate expiry seen "
     "(Unix time).", ("journey",)),
    ("readygate_journey_retried", "Whether the last run needed a retry.", ("journey",)),
    ("readygate_journey_last_run_timestamp_seconds", "When the last run started.",
     ("journey",)),
    ("readygate_step_success", "Whether the step succeeded in the last run.",
     ("journey", "step")),
    ("readygate_step_duration_seconds", "Step duration in the last run (all attempts).",
     ("journey", "step")),
    ("readygate_step_http_duration_seconds", "Client-side HTTP phase time of the step.",
     ("journey", "step", "phase")),
    ("readygate_step_http_status_code", "HTTP status of the step (0: none).",
     ("journey", "step")),
    ("readygate_step_ttfb_seconds", "Time to first byte of the step.", ("journey", "step")),
    ("readygate_step_attempts", "Attempts the step took (more than 1: retried).",
     ("journey", "step")),
    ("readygate_browser_web_vital", "Web Vitals per page of browser journeys (seconds; "
     "cls is unitless).", ("journey", "page", "metric")),
)

Samples = dict[str, list[tuple[tuple[str, ...], float]]]


def result_samples(results: Iterable[ProbeResult]) -> Samples:
    """Per family of :data:`RESULT_FAMILIES`: (label values, value) of each sample."""
    g: Samples = {name: [] for name, _, _ in RESULT_FAMILIES}
    for r in results:
        j = r.journey
        g["probe_success"].append(((j,), 1.0 if r.success else 0.0))
        g["probe_duration_seconds"].append(((j,), r.duration_s))
        for phase, seconds in sorted(r.phases.items()):
            g["probe_http_duration_seconds"].append(((j, phase), seconds))
        g["probe_http_status_code"].append(((j,), float(r.last_status or 0)))
        if r.kind == "http":
            g["probe_http_ssl"].append(((j,), 1.0 if r.target.startswith("https:") else 0.0))
        if r.tls_cert_expiry is not None:
            g["probe_ssl_earliest_cert_expiry"].append(((j,), r.tls_cert_expiry))
        g["readygate_journey_retried"].append(((j,), 1.0 if r.retried else 0.0))
        g["readygate_journey_last_run_timestamp_seconds"].append(((j,), r.started_at))
        for s in r.steps:
            if s.skipped:
                continue
            g["readygate_step_success"].append(((j, s.name), 1.0 if s.ok else 0.0))
            g["readygate_step_duration_seconds"].append(((j, s.name), s.duration_s))
            for phase, seconds in sorted(s.phases.items()):
                g["readygate_step_http_duration_seconds"].append(((j, s.name, phase),
                                                                  seconds))
            if r.kind == "http":
                g["readygate_step_http_status_code"].append(((j, s.name),
                                                             float(s.status or 0)))
            if s.ttfb_s is not None:
                g["readygate_step_ttfb_seconds"].append(((j, s.name), s.ttfb_s))
            g["readygate_step_attempts"].append(((j, s.name), float(s.attempts)))
        for page, vitals in sorted(r.web_vitals.items()):
            for metric, value in sorted(vitals.items()):
                g["readygate_browser_web_vital"].append(((j, page, metric), value))
    return g


def result_families(results: Iterable[ProbeResult]) -> list[Metric]:
    """Gauges describing the latest result of each journey."""
    samples = result_samples(results)
    out: list[Metric] = []
    for name, doc, labels in RESULT_FAMILIES:
        if samples[name]:
            family = GaugeMetricFamily(name, doc, labels=list(labels))
            for values, value in samples[name]:
                family.add_metric(list(values), value)
            out.append(family)
    return out


class ProbeMetrics(Collector):
    """The exporter's registry: latest results, run counters, duration histogram, info."""

    def __init__(self, journeys: Sequence[Journey], location: str) -> None:
        self.journeys = list(journeys)
        self.location = location
        self._lock = threading.Lock()
        self._latest: dict[str, ProbeResult] = {}
        self._lateness: dict[str, float] = {}
        self.registry = CollectorRegistry()
        self.registry.register(self)
        self.runs = Counter("readygate_journey_runs", "Journey runs by result.",
                            ["journey", "result"], registry=self.registry)
        self.retried_runs = Counter("readygate_journey_retried_runs",
                                    "Journey runs that needed a retry.", ["journey"],
                                    registry=self.registry)
        self.durations = Histogram("readygate_journey_duration_seconds",
                                   "Journey run durations.", ["journey"],
                                   buckets=DURATION_BUCKETS, registry=self.registry)
        # No journey label: one histogram however many journeys run (1,000 in
        # bench.scheduler_scale), and its _count is the number of runs started.
        self.lateness = Histogram("readygate_scheduler_start_lateness_seconds",
                                  "How late each journey run started against its schedule.",
                                  buckets=LATENESS_BUCKETS, registry=self.registry)
        for j in self.journeys:
            # Pre-create the series so rate() works before the first failure.
            for result in ("success", "failure"):
                self.runs.labels(j.name, result)
            self.retried_runs.labels(j.name)

    def observe(self, result: ProbeResult) -> None:
        """Record one finished run."""
        with self._lock:
            self._latest[result.journey] = result
        self.runs.labels(result.journey, "success" if result.success else "failure").inc()
        if result.retried:
            self.retried_runs.labels(result.journey).inc()
        self.durations.labels(result.journey).observe(result.duration_s)

    def started(self, journey: str, scheduled: float, actual: float) -> None:
        """Record how late a run started against its schedule."""
        late = max(0.0, actual - scheduled)
        with self._lock:
            self._lateness[journey] = late
        self.lateness.observe(late)

    def latest(self) -> list[ProbeResult]:
        """The last result of each journey."""
        with self._lock:
            return list(self._latest.values())

    def collect(self) -> Iterable[Metric]:
        """Called by prometheus_client on every scrape."""
        yield from result_families(self.latest())
        info = GaugeMetricFamily("readygate_probe_info", "A journey step, its target and the "
                                 "location probing it.",
                                 labels=["journey", "step", "kind", "target", "location"])
        for j in self.journeys:
            for step in j.steps:
                info.add_metric([j.name, step, j.kind, redact.scrub(display_url(j.base_url)),
                                 self.location], 1.0)
        yield info
        lateness = GaugeMetricFamily("readygate_probe_schedule_lateness_seconds",
                                     "How late the journey's last run started.",
                                     labels=["journey"])
        with self._lock:
            for name, late in sorted(self._lateness.items()):
                lateness.add_metric([name], late)
        yield lateness

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return redact.scrub(generate_latest(self.registry).decode()).encode()


def _label_value(value: str) -> str:
    # prometheus_client's escaping of label values (the text format's three escapes).
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _header(name: str, doc: str) -> str:
    doc = doc.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {doc}\n# TYPE {name} gauge\n"


# Per family: its HELP/TYPE header, the order in which the text format writes its labels
# (prometheus_client sorts them by name), and the label names.
_HEADERS = {name: (_header(name, doc), sorted(range(len(labels)), key=labels.__getitem__),
                   labels)
            for name, doc, labels in RESULT_FAMILIES}


def render_single(result: ProbeResult) -> bytes:
    """The exposition for one ``/probe`` run (blackbox's multi-target pattern).

    Written directly, byte for byte what ``generate_latest`` makes of
    :func:`result_families`: a registry and a collector per answer cost more CPU than the
    rest of the answer (BENCHMARKS.md section 4).
    """
    out: list[str] = []
    for name, rows in result_samples([result]).items():
        if not rows:
            continue
        header, order, labels = _HEADERS[name]
        out.append(header)
        for values, value in rows:
            pairs = ",".join(f'{labels[i]}="{_label_value(values[i])}"' for i in order)
            # prometheus_client's own number format (untyped), so values read the same.
            number = floatToGoString(value)  # type: ignore[no-untyped-call]
            out.append(f"{name}{{{pairs}}} {number}\n")
    return redact.scrub("".join(out)).encode()
