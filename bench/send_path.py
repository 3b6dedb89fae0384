"""CPU per run of a one-GET journey: the direct send path vs httpx's client path.

    .venv/bin/python -m bench.send_path [--runs 2000] [--rounds 6] [--core 1]

In one process, against bench.target, rounds alternate the two paths (so a machine's
other load falls on both alike); each round runs ``--runs`` journey runs, 10 at a time,
and records the process CPU time per run. Prints the median per path and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import httpx

import probes.http as probe_http
from probes.spec import HttpJourney
from probes.transport import DirectSender, lean_client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


async def _round(spec: HttpJourney, client: httpx.AsyncClient, url: str, runs: int) -> float:
    async def worker(k: int) -> None:
        for _ in range(k):
            result = await probe_http.run_http("bench", spec, client, url)
            if not result.success:
                raise SystemExit(f"bench.send_path: a run failed: {result.error}")

    c0 = time.process_time()
    await asyncio.gather(*(worker(runs // 10) for _ in range(10)))
    return 1e6 * (time.process_time() - c0) / (runs // 10 * 10)


async def main(args: argparse.Namespace) -> None:
    target = subprocess.Popen([sys.executable, "-m", "bench.target"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert target.stdout is not None
        url = target.stdout.readline().split()[1]
        spec = HttpJourney.model_validate({"steps": [{"method": "GET", "url": "/health"}]})
        client = lean_client()
        direct = probe_http.direct_sender
        paths: dict[str, Callable[[httpx.AsyncClient], DirectSender | None]] = {
            "direct": direct, "client": lambda c: None}
        cpu: dict[str, list[float]] = {name: [] for name in paths}
        try:
            for _ in range(args.rounds):
                for name, chooser in paths.items():
                    probe_http.direct_sender = chooser  # type: ignore[assignment]
                    await _round(spec, client, url, 100)  # warm
                    cpu[name].append(await _round(spec, client, url, args.runs))
        finally:
            probe_http.direct_sender = direct
            await client.aclose()
        med = {name: statistics.median(v) for name, v in cpu.items()}
        for name, values in cpu.items():
            print(f"{name:7} CPU per run: median {med[name]:.0f} us "
                  f"(rounds: {', '.join(f'{v:.0f}' for v in values)})")
        print(f"direct / client: {med['direct'] / med['client']:.2f}x")
    finally:
        target.terminate()
        target.wait(10)


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.send_path", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--core", type=int, default=None, help="pin this process to a CPU")
    args = parser.parse_args(argv)
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency
        pass
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
