"""A fleet on one machine: N ``probe serve --shard I/N`` processes split the journeys.

    .venv/bin/python -m bench.shards [--shards 3] [--journeys 600] [--seconds 30]

Starts bench.target and N shards with the same journeys file (intervals 2, 5 and 10 s
mixed, so the load per journey differs), each shard as its own ``readygate probe serve``
as a StatefulSet pod would run it. After a warm-up longer than the longest interval it
scrapes every shard at the start and end of the window and checks: every journey runs on
exactly one shard (its ``probe_success`` series appears on one shard, never on two, and
none is missing), and the load is even: runs per second per shard (the scheduled work;
max/min <= 1.1), with each shard's CPU beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import cpu_seconds, python, start_ready
from core.procs import ManagedProcess

INTERVALS = (2.0, 5.0, 10.0)
SAMPLE_RE = re.compile(r'^(\w+)\{([^}]*)\} (\S+)$', re.M)


def journeys_yaml(n: int, target: str) -> str:
    lines = ["version: 1", "journeys:"]
    for i in range(n):
        interval = INTERVALS[i % len(INTERVALS)]
        lines.append(f"  site-{i:04d}: {{base_url: '{target}', interval_s: {interval:g}, "
                     "steps: [{url: /}]}")
    return "\n".join(lines) + "\n"


def journeys_and_runs(text: str) -> tuple[set[str], float]:
    """(journeys with a probe_success series, total runs started) from one shard's /metrics."""
    names: set[str] = set()
    runs = 0.0
    for name, labels, value in SAMPLE_RE.findall(text):
        journey = re.search(r'journey="([^"]+)"', labels)
        if name == "probe_success" and journey:
            names.add(journey.group(1))
        elif name == "readygate_journey_runs_total":
            runs += float(value)
    return names, runs


async def main(args: argparse.Namespace) -> int:
    print(f"{args.shards} shards, {args.journeys} journeys (intervals "
          f"{', '.join(f'{i:g}' for i in INTERVALS)} s); load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="rg-bench-shards-") as tmp_name:
        tmp = Path(tmp_name)
        started: list[ManagedProcess] = []
        try:
            target = await start_ready("target", python("bench.target"), tmp)
            started.append(target)
            assert target.url is not None
            jfile = tmp / "journeys.yaml"
            jfile.write_text(journeys_yaml(args.journeys, target.url))
            shards = []
            for i in range(args.shards):
                shard = await start_ready(f"shard-{i}", python(
                    "readygate", "probe", "serve", "-j", str(jfile), "--listen",
                    "127.0.0.1:0", "--shard", f"readygate-probes-{i}/{args.shards}",
                    "--location", "bench"), tmp, timeout=120)
                started.append(shard)
                shards.append(shard)
            async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
                await asyncio.sleep(max(INTERVALS) + args.warmup)

                async def scrape() -> list[tuple[set[str], float]]:
                    texts = await asyncio.gather(*(client.get(f"{s.url}/metrics")
                                                   for s in shards))
                    return [journeys_and_runs(t.text) for t in texts]

                first = await scrape()
                cpu0 = [cpu_seconds(s.pid) for s in shards if s.pid is not None]
                t0 = time.monotonic()
                await asyncio.sleep(args.seconds)
                last = await scrape()
                window = time.monotonic() - t0
                cpu = [(cpu_seconds(s.pid) - c) / window
                       for s, c in zip(shards, cpu0, strict=True) if s.pid is not None]
        finally:
            for proc in reversed(started):
                proc.stop()
    everyone = {f"site-{i:04d}" for i in range(args.journeys)}
    owners: dict[str, list[int]] = {}
    for i, (names, _) in enumerate(last):
        for name in names:
            owners.setdefault(name, []).append(i)
    twice = sorted(n for n, o in owners.items() if len(o) > 1)
    missing = sorted(everyone - set(owners))
    rates = [(b[1] - a[1]) / window for a, b in zip(first, last, strict=True)]
    print(f"\n{'shard':>5} {'journeys':>9} {'runs/s':>8} {'CPU':>6}")
    for i, ((names, _), rate) in enumerate(zip(last, rates, strict=True)):
        print(f"{i:>5} {len(names):>9} {rate:8.1f} {cpu[i]:6.1%}")
    expected = sum(1 / INTERVALS[i % len(INTERVALS)] for i in range(args.journeys))
    print(f"\njourneys on exactly one shard: {len(everyone) - len(twice) - len(missing)}"
          f"/{len(everyone)}; on two or more: {len(twice)}; on none: {len(missing)}")
    print(f"runs/s: total {sum(rates):.1f} (schedule {expected:.1f}); max/min "
          f"{max(rates) / min(rates):.3f} (goal <= 1.1); CPU max/min "
          f"{max(cpu) / min(cpu):.2f}")
    met = not twice and not missing and max(rates) / min(rates) <= 1.1
    print(f"goal (every journey on exactly one shard, runs/s max/min <= 1.1): "
          f"{'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--journeys", type=int, default=600)
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds after the longest interval before the window")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
