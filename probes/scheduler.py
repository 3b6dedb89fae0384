"""Runs the configured journeys on their interval while a scenario runs.

Each journey has its own loop, so a slow or hung target delays only that journey; starts
are spread over the interval so the target is not hit in lockstep.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

import httpx

from probes.journeys import JourneyContext, run_journey
from probes.model import ProbeResult


class ProbeScheduler:
    """Starts one loop per journey; ``stop()`` ends them (a running journey is cancelled)."""

    def __init__(self, journeys: Sequence[str], client: httpx.AsyncClient, ctx: JourneyContext,
                 interval_s: float, on_result: Callable[[ProbeResult], None]) -> None:
        self.journeys = list(journeys)
        self.client = client
        self.ctx = ctx
        self.interval_s = interval_s
        self.on_result = on_result
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        n = max(1, len(self.journeys))
        for i, name in enumerate(self.journeys):
            offset = self.interval_s * i / n
            self._tasks.append(asyncio.create_task(self._loop(name, offset),
                                                   name=f"probe:{name}"))

    async def _loop(self, name: str, offset: float) -> None:
        await asyncio.sleep(offset)
        next_start = time.monotonic()
        while True:
            result = await run_journey(name, self.client, self.ctx)
            self.on_result(result)
            next_start += self.interval_s
            now = time.monotonic()
            if next_start < now:  # a slow run: skip the missed slots, do not burst
                next_start = now
            await asyncio.sleep(next_start - now)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
