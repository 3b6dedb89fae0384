"""Scheduler at scale: 1,000 journeys every 1 s in one ``probe serve`` process on one core.

    .venv/bin/python -m bench.scheduler_scale [--journeys 1000] [--interval 1] [--seconds 30]

``readygate probe serve`` runs pinned to core A (``taskset -c``) with a generated journeys
file (one GET step each) against bench.target on core B. After a warm-up, the benchmark
reads the exporter's own metrics at the start and end of the window (and every
``--scrape`` seconds in between, like a Prometheus would): start lateness of every run
from the ``readygate_scheduler_start_lateness_seconds`` histogram, runs started vs the
schedule (missed runs), failures, and RSS / CPU from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import cores, cpu_seconds, pin_self, pinned, python, rss_mb, start_ready
from bench.probe_scaling import prioritize

HIST = "readygate_scheduler_start_lateness_seconds"
SAMPLE_RE = re.compile(r'^(\w+)(?:\{([^}]*)\})? (\S+)$', re.M)


def run_delay_s(pid: int) -> float:
    """Time the process has spent runnable but waiting for a CPU (``/proc/PID/schedstat``)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


async def sample_run_delay(pid: int, into: list[tuple[float, float]],
                           every: float = 0.01) -> None:
    """(monotonic time, cumulative run-queue delay) every ``every`` seconds, until cancelled."""
    while True:
        into.append((time.monotonic(), run_delay_s(pid)))
        await asyncio.sleep(every)


def attribute(trace: dict[str, Any], runq: list[tuple[float, float]], t0: float,
              t1: float) -> str:
    """Each start later than the trace's threshold in [t0, t1], by what overlapped it."""
    late = [(s, a) for s, a in trace["late"] if t0 <= s <= t1]
    gcs = [(s, s + d, g) for s, d, g in trace["gc"]]
    renders = [(s, e) for s, e in trace["renders"]]
    stalls = [(s, s + d) for s, d in trace["stalls"]]
    times = [t for t, _ in runq]

    def runq_in(a: float, b: float) -> float:
        i, j = bisect.bisect_left(times, a) - 1, bisect.bisect_right(times, b)
        i, j = max(0, i), min(len(runq) - 1, j)
        return runq[j][1] - runq[i][1]

    def overlaps(spans: list[tuple[float, float]], a: float, b: float,
                 floor: float = 0.0) -> bool:
        return any(s < b and e > a and e - s >= floor for s, e in spans)

    buckets: dict[str, int] = {}
    gc_spans = [(s, e) for s, e, _ in gcs]
    for sched, actual in late:
        causes = []
        if overlaps(gc_spans, sched, actual, 0.005):
            causes.append("gc")
        if overlaps(renders, sched, actual):
            causes.append("/metrics render")
        if runq_in(sched, actual) >= 0.010:
            causes.append("run queue (other processes)")
        key = " + ".join(causes) or "event loop busy with runs"
        buckets[key] = buckets.get(key, 0) + 1
    window_gc = [(e - s, g) for s, e, g in gcs if t0 <= s <= t1]
    lines = [f"late starts (> {trace['late_s'] * 1000:.0f} ms) in the window: {len(late)}; "
             "overlapping:"]
    for key, n in sorted(buckets.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {n:6d}  {n / max(1, len(late)):6.1%}  {key}")
    for gen in (0, 1, 2):
        pauses = sorted(d for d, g in window_gc if g == gen)
        if pauses:
            lines.append(f"  gc gen{gen}: {len(pauses)} collections, total "
                         f"{sum(pauses) * 1000:.0f} ms, max {pauses[-1] * 1000:.1f} ms")
    in_window = [(s, e) for s, e in stalls if t0 <= s <= t1]
    lines.append(f"  event loop stalls > 5 ms: {len(in_window)}, longest "
                 f"{max((e - s for s, e in in_window), default=0.0) * 1000:.0f} ms")
    return "\n".join(lines)


def journeys_yaml(n: int, interval: float, target: str) -> str:
    lines = ["version: 1", "journeys:"]
    for i in range(n):
        lines.append(f"  j{i:04d}: {{base_url: '{target}', interval_s: {interval}, "
                     "steps: [{url: /}]}")
    return "\n".join(lines) + "\n"


def parse(text: str) -> tuple[dict[float, float], float, float]:
    """(cumulative lateness buckets by upper bound, runs started, failed runs) from /metrics."""
    buckets: dict[float, float] = {}
    failures = 0.0
    count = 0.0
    for name, labels, value in SAMPLE_RE.findall(text):
        if name == f"{HIST}_bucket":
            le = re.search(r'le="([^"]+)"', labels)
            assert le is not None
            buckets[float(le.group(1))] = float(value)
        elif name == f"{HIST}_count":
            count = float(value)
        elif name == "readygate_journey_runs_total" and 'result="failure"' in labels:
            failures += float(value)
    return buckets, count, failures


def bucket_quantile(delta: dict[float, float], q: float) -> str:
    """The smallest bucket bound holding the q-quantile (histograms only know bounds)."""
    total = delta[float("inf")]
    for bound in sorted(delta):
        if delta[bound] >= q * total:
            return "> 5 s" if bound == float("inf") else f"<= {bound * 1000:g} ms"
    return "?"


def bound_ms(delta: dict[float, float], q: float) -> float:
    total = delta[float("inf")]
    return next(b for b in sorted(delta) if delta[b] >= q * total) * 1000


async def main(args: argparse.Namespace) -> int:
    sut_core, load_core = cores()
    pin_self(load_core)
    with tempfile.TemporaryDirectory(prefix="rg-bench-sched-") as tmp_name:
        tmp = Path(tmp_name)
        nice = ["nice", "-n", str(args.nice)] if args.nice else []
        target = await start_ready("target", nice + pinned(load_core, python("bench.target")),
                                   tmp)
        prioritize(target.pid, args.nice)
        started = [target]
        try:
            assert target.url is not None
            jfile = tmp / "journeys.yaml"
            jfile.write_text(journeys_yaml(args.journeys, args.interval, target.url))
            t_start = time.monotonic()
            trace_file = tmp / "trace.json"
            entry = (("bench.lateness_trace", str(trace_file)) if args.trace
                     else ("readygate",))
            nice = ["nice", "-n", str(args.nice)] if args.nice else []
            serve = await start_ready("probe-serve", nice + pinned(sut_core, python(
                *entry, "probe", "serve", "-j", str(jfile), "--listen", "127.0.0.1:0",
                "--max-concurrency", str(args.max_concurrency), *args.serve_arg)), tmp,
                timeout=120)
            started.append(serve)
            assert serve.url is not None and serve.pid is not None
            prioritize(serve.pid, args.nice)
            print(f"{args.journeys} journeys every {args.interval:g}s; probe serve pinned to "
                  f"CPU {sut_core} (ready after {time.monotonic() - t_start:.1f}s), target on "
                  f"CPU {load_core}; nice {args.nice}; warm-up {args.warmup:g}s, window "
                  f"{args.seconds:g}s, "
                  f"/metrics scraped every {args.scrape:g}s")
            async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
                await asyncio.sleep(args.warmup)
                first = parse((await client.get(serve.url + "/metrics")).text)
                cpu0, t0 = cpu_seconds(serve.pid), time.monotonic()
                runq: list[tuple[float, float]] = []
                sampler = asyncio.create_task(sample_run_delay(serve.pid, runq))
                rss_max = rss_mb(serve.pid)
                scrape_s: list[float] = []
                while time.monotonic() - t0 < args.seconds:
                    await asyncio.sleep(min(args.scrape, max(0.0, args.seconds
                                                              - (time.monotonic() - t0))))
                    s0 = time.monotonic()
                    last_text = (await client.get(serve.url + "/metrics")).text
                    scrape_s.append(time.monotonic() - s0)
                    rss_max = max(rss_max, rss_mb(serve.pid))
                window = time.monotonic() - t0
                cpu = (cpu_seconds(serve.pid) - cpu0) / window
                sampler.cancel()
            last = parse(last_text)
        finally:
            for proc in reversed(started):
                proc.stop()
        trace = json.loads(trace_file.read_text()) if args.trace and trace_file.exists() \
            else None
    waited = (runq[-1][1] - runq[0][1]) / (runq[-1][0] - runq[0][0]) if len(runq) > 1 else 0.0
    delta = {b: last[0][b] - first[0].get(b, 0.0) for b in last[0]}
    runs = last[1] - first[1]
    failed = last[2] - first[2]
    expected = args.journeys * window / args.interval
    missed = max(0.0, expected - runs)
    p99 = bound_ms(delta, 0.99)
    print(f"\nruns started {runs:.0f} in {window:.1f}s (schedule: {expected:.0f}); "
          f"missed {missed:.0f} ({missed / expected:.1%}); failed runs {failed:.0f}")
    print(f"start lateness: p50 {bucket_quantile(delta, 0.5)}, p99 {bucket_quantile(delta, 0.99)}"
          f"  (histogram bounds; share late by more than 20 ms: "
          f"{1 - delta.get(0.02, 0.0) / max(1.0, delta[float('inf')]):.1%})")
    print(f"RSS max {rss_max:.0f} MiB; probe serve CPU {cpu:.0%} of its core; "
          f"/metrics scrape took {max(scrape_s):.2f}s max")
    print(f"run-queue delay: probe serve waited for its CPU {waited:.1%} of the window "
          f"(other processes on CPU {sut_core}); load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if trace is not None:
        print(attribute(trace, runq, t0, t0 + window))
    # Missed runs within 0.5% are the window's edges (runs are spread over each interval).
    met = p99 <= 20 and missed <= 0.005 * expected and rss_max <= 150
    print(f"goal (p99 <= 20 ms, no missed runs, RSS <= 150 MB): {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journeys", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--scrape", type=float, default=15.0,
                        help="scrape /metrics this often during the window (Prometheus' "
                             "default interval)")
    parser.add_argument("--max-concurrency", type=int, default=32)
    parser.add_argument("--nice", type=int, default=0,
                        help="run probe serve and the target at this niceness (root may go "
                             "below 0: a reserved core, near enough, on a shared machine)")
    parser.add_argument("--trace", action="store_true",
                        help="run probe serve under bench.lateness_trace and attribute each "
                             "start later than 20 ms to what overlapped it")
    parser.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                        help="one more argument for probe serve (repeatable)")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
