"""How far each evidence backend's clock is from readygate's, read off its HTTP ``Date``.

Checks anchored on an event compare times a backend stamped (an alert's ``activeAt``, a
notification's receipt, a sample's timestamp) with readygate's own clock. A backend whose
clock runs ahead makes a signal that was already there before the anchor look new: a false
pass. So before a run injects anything, every HTTP backend is asked once: a Prometheus API
states when it evaluated an instant query (its engine's clock), any other answers a
GET with a ``Date`` header (even a 404 or a 401). A clock further off than
``backends.max_clock_skew_s`` stops the run inconclusive. A reading is an interval (``Date``
has one-second resolution, and the round trip counts): skew is reported only when the whole
interval lies beyond the limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime

from core.errors import BackendError
from core.http import REQUEST_ERRORS
from gates.backends.base import HttpBackend
from gates.backends.prometheus import PrometheusClient

_READ_TIMEOUT_S = 3.0
ENGINE_SOURCE = "its query answer's evaluation time"


@dataclass(frozen=True)
class ClockReading:
    """One backend's clock against ours: ``offset_s`` > 0 means the backend is ahead."""

    name: str
    url: str
    offset_s: float
    uncertainty_s: float
    source: str = "its Date header"

    def beyond(self, limit_s: float) -> bool:
        """Whether the clock is off by more than ``limit_s`` whatever the reading's error."""
        return abs(self.offset_s) - self.uncertainty_s > limit_s

    def describe(self) -> str:
        way = "ahead of" if self.offset_s > 0 else "behind"
        return (f"{self.name} at {self.url}: its clock is {abs(self.offset_s):.1f}s {way} "
                f"readygate's (±{self.uncertainty_s:.1f}s, from {self.source})")


def offset_from(date_header: str, sent: float, received: float,
                age_header: str | None = None) -> tuple[float, float] | None:
    """(offset, uncertainty) from a ``Date`` header and the local send/receive times.

    The server wrote its time truncated to the second somewhere between ``sent`` and
    ``received``: its clock read ``date`` to ``date + 1`` then. An answer a cache kept
    carries its ``Age`` (seconds since the origin wrote ``Date``), which is added.
    """
    try:
        stamped = parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if age_header is not None and age_header.strip().isdigit():
        stamped += int(age_header.strip())
    middle = (sent + received) / 2
    return stamped + 0.5 - middle, 0.5 + (received - sent) / 2


async def query_engine_time(backend: PrometheusClient) -> ClockReading | None:
    """A Prometheus-API engine's own clock: the evaluation time its answer to an instant
    query states (milliseconds from Prometheus, whole seconds from VictoriaMetrics). Truer
    than ``Date`` behind a reverse proxy, whose clock writes ``Date``."""
    sent = time.time()
    try:
        stated = await backend.evaluation_time()
    except BackendError:
        return None  # a store that cannot evaluate time(): Date then
    received = time.time()
    if stated is None or stated < 1e9:
        return None  # none, or not a time (a stamp of 0): Date then
    # a whole-second stamp may be truncated or rounded: one more second either way
    resolution = 1.0 if stated == int(stated) else 0.001
    offset = stated - (sent + received) / 2
    return ClockReading("", backend.base_url, round(offset, 3),
                        round(resolution + (received - sent) / 2, 3), ENGINE_SOURCE)


async def read_clock(name: str, backend: HttpBackend) -> ClockReading | None:
    """The backend's clock: a Prometheus API's stated evaluation time, else one GET of its base
    URL read by ``Date``; ``None`` when neither gives a reading."""
    if isinstance(backend, PrometheusClient) and \
            (engine := await query_engine_time(backend)) is not None:
        return replace(engine, name=name)
    sent = time.time()
    try:
        # no-cache: a cache in between asks the origin again rather than answer its copy
        resp = await backend.client.get(backend.base_url + "/", timeout=_READ_TIMEOUT_S,
                                        headers={"Cache-Control": "no-cache"})
    except REQUEST_ERRORS:
        return None  # unreachable now: its checks say so when they look
    received = time.time()
    date = resp.headers.get("date")
    found = offset_from(date, sent, received, resp.headers.get("age")) if date else None
    if found is None:
        return None
    return ClockReading(name, backend.base_url, round(found[0], 3), round(found[1], 3))


async def read_clocks(backends: Iterable[tuple[str, object]]) -> list[ClockReading]:
    """The clock of every HTTP backend given (each base URL once), read concurrently."""
    chosen: dict[str, tuple[str, HttpBackend]] = {}
    engines: dict[str, list[PrometheusClient]] = {}
    for name, backend in backends:
        if isinstance(backend, HttpBackend) and backend.base_url not in chosen:
            chosen[backend.base_url] = (name, backend)
        if isinstance(backend, PrometheusClient):
            engines.setdefault(backend.base_url, []).append(backend)
    readings = await asyncio.gather(*(read_clock(n, b) for n, b in chosen.values()))
    for reading in readings:
        if reading is not None and reading.source == ENGINE_SOURCE:
            for engine in engines.get(reading.url, []):  # for telling stale answers apart
                engine.engine_offset_s = reading.offset_s
    return [r for r in readings if r is not None]
