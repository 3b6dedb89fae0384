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
import re
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import cores, cpu_seconds, pin_self, pinned, python, rss_mb, start_ready

HIST = "readygate_scheduler_start_lateness_seconds"
SAMPLE_RE = re.compile(r'^(\w+)(?:\{([^}]*)\})? (\S+)$', re.M)


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
        target = await start_ready("target", pinned(load_core, python("bench.target")), tmp)
        started = [target]
        try:
            assert target.url is not None
            jfile = tmp / "journeys.yaml"
            jfile.write_text(journeys_yaml(args.journeys, args.interval, target.url))
            t_start = time.monotonic()
            serve = await start_ready("probe-serve", pinned(sut_core, python(
                "readygate", "probe", "serve", "-j", str(jfile), "--listen", "127.0.0.1:0",
                "--max-concurrency", str(args.max_concurrency))), tmp, timeout=120)
            started.append(serve)
            assert serve.url is not None and serve.pid is not None
            print(f"{args.journeys} journeys every {args.interval:g}s; probe serve pinned to "
                  f"CPU {sut_core} (ready after {time.monotonic() - t_start:.1f}s), target on "
                  f"CPU {load_core}; warm-up {args.warmup:g}s, window {args.seconds:g}s, "
                  f"/metrics scraped every {args.scrape:g}s")
            async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
                await asyncio.sleep(args.warmup)
                first = parse((await client.get(serve.url + "/metrics")).text)
                cpu0, t0 = cpu_seconds(serve.pid), time.monotonic()
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
            last = parse(last_text)
        finally:
            for proc in reversed(started):
                proc.stop()
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
    raise SystemExit(asyncio.run(main(parser.parse_args())))
