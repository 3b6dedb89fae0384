"""Metric checks: a PromQL condition holds, a metrics contract, a counter increases."""

from __future__ import annotations

import difflib
import itertools
import time
from typing import Any
from urllib.parse import quote

from core.errors import BackendError
from core.waiting import Seen, eventually
from gates.backends.prometheus import PrometheusClient, Sample
from gates.backends.scrape import ScrapeClient
from gates.checks.common import GRACE_S, Judge, fmt_labels, labels_match
from gates.config import CounterIncreasesCheck, MetricCheck, MetricContractCheck
from gates.context import CheckContext
from reports.model import CheckResult, Status


def _graph_link(ctx: CheckContext, query: str) -> str | None:
    """The query in the UI of the backend that answered it (Prometheus' graph page,
    VictoriaMetrics' vmui); None when that backend has no known UI."""
    metrics = ctx.metrics
    if metrics is None:
        return None
    if metrics is ctx.prometheus:
        base = ctx.links.get("prometheus")
        return f"{base}/graph?g0.expr={quote(query)}" if base else None
    base = getattr(metrics, "base_url", None)
    if not base:
        return None
    kind = getattr(metrics, "kind", "")
    if kind in ("prometheus", "thanos"):
        return f"{base}/graph?g0.expr={quote(query)}"
    if kind == "victoriametrics":
        return f"{base}/vmui/#/?g0.expr={quote(query)}"
    return None


def _backend(ctx: CheckContext) -> str:
    return str(getattr(ctx.metrics, "kind", "prometheus"))


def _scraper(source: str, ctx: CheckContext) -> ScrapeClient | None:
    """A scraper for a service name in target.services or a URL (None without a client).

    With ``backends.scrape`` its client (TLS, auth, proxies) scrapes; credentials in the
    URL's user-info are basic auth.
    """
    client = ctx.scrape_http or ctx.http
    if client is None:
        return None
    url = source if source.startswith(("http://", "https://")) else \
        ctx.services.get(source, "").rstrip("/") + "/metrics"
    return ScrapeClient(url, client)


async def metric_check(check: MetricCheck, ctx: CheckContext, j: Judge) -> CheckResult:
    """A PromQL condition returns a non-empty result within the deadline (anchored on
    fault_start or fault_end: and it did not at the anchor's time)."""
    if ctx.metrics is None:
        return j.result("skipped", "no prometheus backend configured")
    prom = ctx.metrics
    anchor = j.anchor_time()
    if anchor is None:
        return j.result("skipped", f"anchor {check.anchor} did not happen")
    if check.anchor in ("fault_start", "fault_end"):
        # Transitions, not states: anchored on an event, the condition must come true after
        # it. Evaluated at the anchor's own time, a condition that already held proves nothing.
        try:
            before = await prom.query_at(check.query, anchor)
        except BackendError as exc:
            return j.result("error", f"could not evaluate the query at {check.anchor}: {exc}",
                            evidence={"query": check.query})
        if before:
            shown = [{"labels": s.labels, "value": s.value} for s in before[:5]]
            return j.result("fail", f"condition already held before {check.anchor} (at its "
                            f"time the query returned {len(before)} series): it proves nothing "
                            f"about the {'fault' if check.anchor == 'fault_start' else 'recovery'}",
                            evidence={"query": check.query, "at_anchor": shown,
                                      "evaluated_at": anchor})

    async def observe() -> Seen[list[Sample]]:
        samples = await prom.query(check.query)
        if samples:
            return Seen(samples)
        return Seen(miss="the query returned no series")

    out = await eventually(observe, timeout=j.remaining(anchor) + GRACE_S,
                           interval=ctx.poll_interval_s)
    evidence: dict[str, Any] = {"query": check.query, "backend": _backend(ctx)}
    link = _graph_link(ctx, check.query)
    if link:
        evidence["link"] = link
    if out.found is not None:
        latency = (out.observed_at or time.time()) - anchor
        evidence["result"] = [{"labels": s.labels, "value": s.value} for s in out.found[:5]]
        status: Status = "pass" if latency <= check.deadline_s else "fail"
        return j.result(status, f"condition held {latency:.1f}s after {check.anchor}",
                        latency=latency, evidence=evidence)
    if out.error is not None:
        return j.result("error", f"could not evaluate the query: {out.error}",
                        evidence=evidence)
    evidence["nearest_miss"] = out.last_miss
    return j.result("fail", f"condition did not hold within {check.deadline_s:.0f}s: "
                    f"{out.last_miss}", evidence=evidence)


async def _series_by_name(check: MetricContractCheck, ctx: CheckContext,
                          prom: PrometheusClient | None,
                          scraper: ScrapeClient | None) -> tuple[dict[str, list[dict[str, str]]],
                                                                  list[str]]:
    """Label sets per required name, and every name seen (for near misses)."""
    if scraper is not None:
        samples = await scraper.samples()
        names = sorted({name for name, _ in samples})
        return ({n: [s.labels for name, s in samples if name == n] for n in check.metrics},
                names)
    assert prom is not None
    # Current series only, as an instant query sees them: a metric that vanished is missing,
    # and the series of a replaced process (the previous version, ended by a staleness
    # marker) are not judged; /api/v1/series over a window would still return them.
    found = {n: [s.labels for s in await prom.query(f'{{__name__="{n}"}}')]
             for n in check.metrics}
    names = await prom.label_values() if any(not v for v in found.values()) else []
    return found, names


async def metric_contract_check(check: MetricContractCheck, ctx: CheckContext,
                                j: Judge) -> CheckResult:
    """Every required metric exists, and every one of its series carries the labels."""
    scraper = _scraper(check.scrape, ctx) if check.scrape else None
    if check.scrape and scraper is None:
        return j.result("skipped", "no HTTP client to scrape with")
    if check.scrape and scraper is not None and scraper.url == "/metrics":
        return j.result("error", f"scrape source {check.scrape!r} is not in target.services")
    if scraper is None and ctx.metrics is None:
        return j.result("skipped", "no prometheus backend configured")
    anchor = j.anchor_time() or time.time()

    async def observe() -> Seen[dict[str, int]]:
        found, names = await _series_by_name(check, ctx, ctx.metrics, scraper)
        problems: list[str] = []
        for name, required in check.metrics.items():
            series = found[name]
            if not series:
                close = difflib.get_close_matches(name, names, n=2, cutoff=0.6)
                problems.append(f"{name} missing" + (f" (similar: {', '.join(close)})"
                                                     if close else ""))
                continue
            for label in required:
                lacking = [s for s in series if not s.get(label)]
                if lacking:
                    problems.append(f"{name}: {len(lacking)} of {len(series)} series lack "
                                    f"label '{label}'")
        if problems:
            return Seen(miss="; ".join(problems))
        return Seen({n: len(v) for n, v in found.items()})

    out = await eventually(observe, timeout=j.remaining(anchor) + GRACE_S,
                           interval=max(ctx.poll_interval_s, 0.25))
    evidence: dict[str, Any] = {"source": f"scrape {scraper.url}" if scraper
                                else "GET /api/v1/query (current series)",
                                "contract": check.metrics}

    def passed(counts: dict[str, int], latency: float) -> str:
        evidence["series"] = counts
        return (f"all {len(counts)} metrics present with their labels "
                f"({sum(counts.values())} series)")

    result = j.settle(out, anchor=anchor, evidence=evidence, what="metric contract",
                      passed=passed, latency_of=lambda _: 0.0)
    if result.status == "fail" and out.last_miss:
        return j.result("fail", f"metric contract broken: {out.last_miss}", evidence=evidence)
    return result


def _increase(values: list[float]) -> float:
    """Counter increase over samples, reset-aware (a drop starts counting from zero)."""
    total = 0.0
    for before, after in itertools.pairwise(values):
        total += after - before if after >= before else after
    return total


async def counter_increases_check(check: CounterIncreasesCheck, ctx: CheckContext,
                                  j: Judge) -> CheckResult:
    """The counter grows by ``min_increase`` after the anchor, within the deadline."""
    scraper = _scraper(check.scrape, ctx) if check.scrape else None
    if check.scrape and scraper is None:
        return j.result("skipped", "no HTTP client to scrape with")
    if check.scrape and scraper is not None and scraper.url == "/metrics":
        return j.result("error", f"scrape source {check.scrape!r} is not in target.services")
    if scraper is None and ctx.metrics is None:
        return j.result("skipped", "no prometheus backend configured")
    anchor = j.anchor_time()
    if anchor is None:
        return j.result("skipped", f"anchor {check.anchor} did not happen")
    selector = f"{check.metric}{fmt_labels(check.labels) if check.labels else ''}"
    query = f"sum({selector})"
    scraped: list[float] = []

    async def observe() -> Seen[float]:
        if scraper is not None:
            samples = [s for name, s in await scraper.samples()
                       if name == check.metric and labels_match(s.labels, check.labels)]
            if not samples:
                return Seen(miss=f"no sample of {selector} on {scraper.url}")
            scraped.append(sum(s.value for s in samples))
            values = scraped
        else:
            assert ctx.metrics is not None
            now = time.time()
            step = max(1.0, (now - anchor) / 500)
            series = await ctx.metrics.query_range(query, anchor, now, step)
            values = [v for _, points in series for _, v in points]
            if not values:
                return Seen(miss=f"no series for {selector} since {check.anchor}")
        grown = _increase(values)
        if grown >= check.min_increase:
            return Seen(grown)
        return Seen(miss=f"{selector} increased by {grown:g} (from {values[0]:g} to "
                    f"{values[-1]:g}); wanted {check.min_increase:g}")

    out = await eventually(observe, timeout=j.remaining(anchor) + GRACE_S,
                           interval=max(ctx.poll_interval_s, 0.25))
    evidence: dict[str, Any] = {"query": f"scrape {scraper.url}" if scraper else query}
    link = None if scraper else _graph_link(ctx, query)
    if link:
        evidence["link"] = link

    def passed(grown: float, latency: float) -> str:
        evidence["increase"] = grown
        return f"{selector} increased by {grown:g} within {latency:.1f}s of {check.anchor}"

    return j.settle(out, anchor=anchor, evidence=evidence, what=f"increase of {selector}",
                    passed=passed)
