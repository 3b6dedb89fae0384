"""Probe results as Prometheus metrics: blackbox_exporter's names plus readygate's own.

A journey answers blackbox_exporter's http series (``probe_success``,
``probe_duration_seconds``, ``probe_http_duration_seconds{phase}``,
``probe_http_status_code``, ``probe_http_version``, ``probe_http_content_length``,
``probe_http_uncompressed_body_length``, ``probe_http_redirects``,
``probe_http_last_modified_timestamp_seconds``, ``probe_failed_due_to_regex``,
``probe_ip_protocol``, ``probe_ip_addr_hash``, ``probe_dns_lookup_time_seconds``,
``probe_http_ssl`` and the ``probe_ssl_*`` / ``probe_tls_version_info`` series) with a
``journey`` label, so dashboards and alerts written for blackbox work with a ``journey``
filter. Phases are summed over the steps; the rest describe one step, the one blackbox's
single request stands for (:attr:`ProbeResult.status_step`: the first failing step, else
the last step that is not a clean-up). readygate's own series are per step
(``readygate_step_*``), per journey run (counters, a duration histogram, schedule
lateness), Web Vitals of browser journeys, and ``readygate_probe_info`` joining a journey
and step to its target and location.
"""

from __future__ import annotations

import functools
import ipaddress
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from core import redact
from core.http import display_url
from probes.blackbox.net import ip_hash
from probes.exposition import generate
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
    ("probe_http_status_code", "Status of the journey's meaningful request: its first "
     "failing step, else its last step that is not a clean-up (0: none).", ("journey",)),
    ("probe_http_version", "HTTP version of that request's response (0: none).",
     ("journey",)),
    ("probe_http_content_length", "Content-Length of that response (-1: not announced).",
     ("journey",)),
    ("probe_http_uncompressed_body_length", "Bytes of that response's body, decoded.",
     ("journey",)),
    ("probe_http_redirects", "Redirects that request followed.", ("journey",)),
    ("probe_http_last_modified_timestamp_seconds", "Last-Modified of that response "
     "(Unix time).", ("journey",)),
    ("probe_failed_due_to_regex", "Whether a body or header regular expression failed "
     "that step.", ("journey",)),
    ("probe_ip_protocol", "IP version of that request's address (0: unknown).",
     ("journey",)),
    ("probe_ip_addr_hash", "FNV-1a hash of that request's address (0: unknown).",
     ("journey",)),
    ("probe_dns_lookup_time_seconds", "Name lookup time of that request's connection.",
     ("journey",)),
    ("probe_http_ssl", "Whether that request used TLS.", ("journey",)),
    ("probe_ssl_earliest_cert_expiry", "Earliest server certificate expiry seen "
     "(Unix time).", ("journey",)),
    ("probe_ssl_last_chain_expiry_timestamp_seconds", "Expiry of the verified chain of "
     "that request (Unix time).", ("journey",)),
    ("probe_tls_version_info", "TLS version of that request.", ("journey", "version")),
    ("probe_ssl_last_chain_info", "The server's leaf certificate, as labels.",
     ("journey", "fingerprint_sha256", "subject", "issuer", "subjectalternative")),
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
    ("readygate_browser_web_vital", "Web Vitals per page of browser journeys (web-vitals): "
     "lcp, fcp, ttfb, inp in seconds; cls unitless.", ("journey", "page", "metric")),
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
        if r.kind == "http":
            _http_samples(g, r)
        else:
            g["probe_http_status_code"].append(((j,), float(r.last_status or 0)))
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


@functools.lru_cache(maxsize=4096)
def _address(ip: str) -> tuple[float, float]:
    """(IP version, FNV-1a hash) of an address; (0, 0) for what is not one."""
    try:
        parsed = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return 0.0, 0.0
    return float(parsed.version), ip_hash(parsed.packed)


def _http_samples(g: Samples, r: ProbeResult) -> None:
    """blackbox's http series of an HTTP journey, from its meaningful step."""
    j = (r.journey,)
    step = r.status_step
    facts = step.http if step is not None else None
    g["probe_http_status_code"].append((j, float(step.status or 0) if step else 0.0))
    g["probe_http_version"].append((j, facts.version if facts else 0.0))
    g["probe_http_content_length"].append((j, float(facts.content_length) if facts else 0.0))
    g["probe_http_uncompressed_body_length"].append((j, float(facts.body_length)
                                                     if facts else 0.0))
    g["probe_http_redirects"].append((j, float(facts.redirects) if facts else 0.0))
    if facts is not None and facts.last_modified is not None:
        g["probe_http_last_modified_timestamp_seconds"].append((j, facts.last_modified))
    g["probe_failed_due_to_regex"].append((j, 1.0 if facts and facts.failed_due_to_regex
                                           else 0.0))
    protocol, hashed = _address(facts.ip) if facts is not None and facts.ip else (0.0, 0.0)
    g["probe_ip_protocol"].append((j, protocol))
    g["probe_ip_addr_hash"].append((j, hashed))
    if facts is not None and facts.resolve_s is not None:
        g["probe_dns_lookup_time_seconds"].append((j, facts.resolve_s))
    tls = facts.tls if facts is not None else None
    ssl = tls is not None if facts is not None else r.target.startswith("https:")
    g["probe_http_ssl"].append((j, 1.0 if ssl else 0.0))
    if tls is not None:
        g["probe_ssl_last_chain_expiry_timestamp_seconds"].append((j, tls.chain_expiry))
        g["probe_tls_version_info"].append(((r.journey, tls.version), 1.0))
        g["probe_ssl_last_chain_info"].append(((r.journey, tls.fingerprint, tls.subject,
                                                tls.issuer, tls.sans), 1.0))


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
        self._series: dict[str, tuple[Any, Any, Any, Any]] = {}
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
        # The journey's series, looked up once: labels() costs ~7 us a call, three per run
        # at 1,000 runs/s (bench.scheduler_scale).
        series = self._series.get(result.journey)
        if series is None:
            series = self._series[result.journey] = (
                self.runs.labels(result.journey, "success"),
                self.runs.labels(result.journey, "failure"),
                self.retried_runs.labels(result.journey),
                self.durations.labels(result.journey))
        (series[0] if result.success else series[1]).inc()
        if result.retried:
            series[2].inc()
        series[3].observe(result.duration_s)

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
        # probes.exposition.generate: generate_latest's bytes at a fraction of its CPU
        # (a render shares the GIL with the event loop starting runs; BENCHMARKS.md 5).
        return redact.scrub(generate(self.registry)).encode()


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
