"""Waiting is an object, not a sleep: one helper every check uses.

``eventually`` polls an async observation until it reports success or the deadline
passes, and returns how long that took. It never sleeps longer than one poll interval,
so a check settles within ``interval`` of the moment the evidence becomes visible.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from core.errors import BackendError

T = TypeVar("T")


@dataclass(frozen=True)
class Seen(Generic[T]):
    """One observation: ``found`` when the evidence is there, else what was seen instead."""

    found: T | None = None
    miss: str | None = None


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """How a wait ended."""

    found: T | None
    elapsed_s: float          # from the start of the wait to the observation (or the deadline)
    attempts: int
    last_miss: str | None     # the nearest miss: what was seen instead
    error: str | None         # set when the last attempts could not look (backend error)
    observed_at: float | None  # wall-clock time of the successful observation

    @property
    def ok(self) -> bool:
        return self.found is not None


async def eventually(observe: Callable[[], Awaitable[Seen[T]]], *, timeout: float,
                     interval: float = 0.1) -> Outcome[T]:
    """Poll ``observe`` every ``interval`` s until it finds something or ``timeout`` passes.

    A :class:`BackendError` counts as "could not look": if the deadline passes and the
    most recent attempt failed that way, the outcome carries ``error``; a later good
    answer clears it. The first poll happens at once.
    """
    start = time.monotonic()
    deadline = start + max(0.0, timeout)
    attempts = 0
    last_miss: str | None = None
    error: str | None = None
    while True:
        attempts += 1
        try:
            seen = await observe()
        except BackendError as exc:
            error = str(exc)
        else:
            error = None
            if seen.found is not None:
                return Outcome(seen.found, time.monotonic() - start, attempts, seen.miss, None,
                               time.time())
            if seen.miss is not None:
                last_miss = seen.miss
        now = time.monotonic()
        if now >= deadline:
            return Outcome(None, now - start, attempts, last_miss, error, None)
        await asyncio.sleep(min(interval, deadline - now))
