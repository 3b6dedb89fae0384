"""Runs journeys on their intervals, while a scenario runs or forever in ``probe serve``.

Each journey has its own loop, so a slow or hung target delays only that journey; starts
are spread over the interval so targets are not hit in lockstep; every run is bounded by
its journey's timeout, and a semaphore bounds how many run at once. A run's start is taken
when it holds its slot, so an exporter short of CPU or slots shows it as start lateness.

Why one sleeping task per journey and not a timer heap: with 1,000 journeys the
scheduler's own work is ~0.1 ms per run (measured with journeys that return at once) and
uvloop keeps its timers in libuv's heap already; what made runs start late was the core
being busy with the runs themselves, the collector, ``/metrics`` renders and other
processes (BENCHMARKS.md section 5, ``bench.scheduler_scale --trace``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

import httpx

from core.http import ConnectOptions
from probes.clients import ProbeClients
from probes.journeys import Journey, timed_out
from probes.model import ProbeResult
from probes.spec import BrowserJourney

# (journey name, scheduled monotonic start, actual monotonic start): lets tests and the
# exporter measure how late a run started.
StartHook = Callable[[str, float, float], None]


class ProbeScheduler:
    """Starts one loop per journey; ``stop()`` ends them (a running journey is cancelled).

    Each :class:`Journey` runs on its own interval (``probes.journeys.resolve`` builds them).
    Journeys with TLS or proxy options (``http``: ``probes.http``; a journey's ``tls:``) run
    on clients of their own, closed by ``stop()``; the others on ``client``.
    """

    def __init__(self, journeys: Sequence[Journey], client: httpx.AsyncClient,
                 on_result: Callable[[ProbeResult], None], *, max_concurrency: int = 32,
                 on_start: StartHook | None = None, http: ConnectOptions | None = None
                 ) -> None:
        self.journeys: list[Journey] = list(journeys)
        self.client = client
        self.clients = ProbeClients(client, http)
        self.on_result = on_result
        self.on_start = on_start
        self._limit = asyncio.Semaphore(max_concurrency)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start every journey's loop, the first runs spread over each one's interval."""
        n = max(1, len(self.journeys))
        # Browser journeys first: a run launches Chromium and takes seconds, and a check
        # following one waits for its first run; the quick HTTP journeys fill the interval.
        ordered = sorted(self.journeys, key=lambda j: not isinstance(j.spec, BrowserJourney))
        for i, journey in enumerate(ordered):
            offset = journey.interval_s * i / n
            self._tasks.append(asyncio.create_task(self._loop(journey, offset),
                                                   name=f"probe:{journey.name}"))

    async def run_once(self, journey: Journey) -> ProbeResult:
        """One bounded run: a run that outlives its bound is cancelled and reported as such."""
        async with self._limit:
            return await self._bounded(journey)

    async def _bounded(self, journey: Journey, bound: float | None = None) -> ProbeResult:
        started, t0 = time.time(), time.monotonic()
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for runs the journey in a
        # new Task, a measurable share of a run's CPU at 1,000 runs/s.
        try:
            async with asyncio.timeout(journey.run_timeout_s if bound is None else bound):
                return await journey.run(self.clients.for_journey(journey))
        except TimeoutError:
            return timed_out(journey, started, time.monotonic() - t0)

    async def _loop(self, journey: Journey, offset: float) -> None:
        next_start = time.monotonic() + offset
        bound = journey.run_timeout_s  # a sum over the steps: once, not on every run
        while True:
            now = time.monotonic()
            if next_start > now:
                await asyncio.sleep(next_start - now)
            async with self._limit:
                # The start is taken once the run holds its slot: a run waiting for one is
                # late, and an exporter short of slots shows it as lateness.
                if self.on_start is not None:
                    self.on_start(journey.name, next_start, time.monotonic())
                result = await self._bounded(journey, bound)
            self.on_result(result)
            next_start += journey.interval_s
            now = time.monotonic()
            if next_start < now:  # a slow run: skip the missed slots, do not burst
                missed = int((now - next_start) // journey.interval_s) + 1
                next_start += missed * journey.interval_s

    async def stop(self) -> None:
        """Cancel every loop and wait for them; close the clients built for options."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.clients.aclose()
