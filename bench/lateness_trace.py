"""``readygate probe serve`` with its late starts traced, to find where lateness comes from.

    python -m bench.lateness_trace OUT.json probe serve [arguments...]

Runs the real CLI in this process after installing four probes that cost nothing between
events: ``gc.callbacks`` (every collection's generation and pause), a wrapper around
``ProbeMetrics.started`` (every run's scheduled and actual start), wrappers around
``ProbeMetrics.render`` and ``probes.pool.render_apart`` (when a ``/metrics`` render ran,
in this process or in a forked child) and, on the event loop, a
``loop.time()`` sampler every 2 ms (when the loop could not run a due callback). On exit
(SIGTERM) it writes them to OUT.json; :mod:`bench.scheduler_scale` ``--trace`` reads it
together with the run-queue delay it samples from ``/proc/PID/schedstat`` (time the OS
kept the process waiting for its core while other processes ran) and attributes each
late start to what overlapped it.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from probes import metrics as probe_metrics
from probes import pool

LATE_S = 0.020  # starts later than this are traced one by one
TICK_S = 0.002


def main(out: str, argv: list[str]) -> int:
    """Trace ``readygate *argv`` (``probe serve ...``) in this process; write it to ``out``."""
    gcs: list[tuple[float, float, int]] = []
    late: list[tuple[float, float]] = []
    renders: list[tuple[float, float]] = []
    stalls: list[tuple[float, float]] = []
    counts = {"starts": 0}
    gc_t0: dict[str, float] = {}

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_t0["t"] = time.monotonic()
        elif "t" in gc_t0:
            t0 = gc_t0.pop("t")
            gcs.append((t0, time.monotonic() - t0, int(info["generation"])))

    gc.callbacks.append(on_gc)

    started = probe_metrics.ProbeMetrics.started
    render = probe_metrics.ProbeMetrics.render

    def traced_started(self: probe_metrics.ProbeMetrics, journey: str, scheduled: float,
                       actual: float) -> None:
        counts["starts"] += 1
        if actual - scheduled > LATE_S:
            late.append((scheduled, actual))
        started(self, journey, scheduled, actual)

    def traced_render(self: probe_metrics.ProbeMetrics) -> bytes:
        t0 = time.monotonic()
        try:
            return render(self)
        finally:
            renders.append((t0, time.monotonic()))

    probe_metrics.ProbeMetrics.started = traced_started  # type: ignore[method-assign]
    probe_metrics.ProbeMetrics.render = traced_render  # type: ignore[method-assign]

    # A render in a forked child (probes.pool.render_apart) records its span here, in the
    # parent: from the fork to the answer.
    apart = pool.render_apart

    async def traced_apart(render: Callable[[], bytes], **kwargs: Any) -> bytes:
        t0 = time.monotonic()
        try:
            return await apart(render, **kwargs)
        finally:
            renders.append((t0, time.monotonic()))

    pool.render_apart = traced_apart

    # The loop sampler: installed by wrapping the policy's new_event_loop, so it runs on
    # whichever loop (uvloop or asyncio's) probe serve creates.
    def sampler(loop: asyncio.AbstractEventLoop) -> None:
        expected = loop.time() + TICK_S

        def tick() -> None:
            nonlocal expected
            now = loop.time()
            if now - expected > 0.005:  # the loop ran this tick more than 5 ms late
                stalls.append((expected, now - expected))
            expected = now + TICK_S
            loop.call_later(TICK_S, tick)

        loop.call_later(TICK_S, tick)

    original_set_policy = asyncio.set_event_loop_policy

    def set_policy(policy: asyncio.AbstractEventLoopPolicy | None) -> None:
        if policy is not None:
            make: Callable[[], asyncio.AbstractEventLoop] = policy.new_event_loop

            def new_event_loop() -> asyncio.AbstractEventLoop:
                loop = make()
                loop.call_soon(sampler, loop)
                return loop

            policy.new_event_loop = new_event_loop  # type: ignore[method-assign]
        original_set_policy(policy)

    asyncio.set_event_loop_policy = set_policy

    def dump() -> None:
        with open(out, "w", encoding="utf-8") as f:
            json.dump({"gc": gcs, "late": late, "renders": renders, "stalls": stalls,
                       "starts": counts["starts"], "late_s": LATE_S,
                       "clock": "monotonic"}, f)

    atexit.register(dump)
    from readygate.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2:]))
