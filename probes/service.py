"""``readygate probe serve``: every journey on its own schedule, forever, as Prometheus metrics.

Endpoints: ``/metrics`` (all journeys' latest results), ``/probe?target=URL&module=NAME``
(one run now, blackbox_exporter's multi-target pattern), ``/-/healthy`` and ``/`` (an
index). SIGTERM stops the schedules, cancels running journeys and exits.
"""

from __future__ import annotations

import asyncio
import gc
import html
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import httpx
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from core import redact
from core.http import ConnectOptions
from probes.blackbox.config import Module
from probes.endpoint import ExporterApp, ProbeEndpoint
from probes.journeys import Journey
from probes.metrics import ProbeMetrics
from probes.pool import Exposition, WorkerUnavailable
from probes.scheduler import ProbeScheduler
from probes.transport import lean_client


def _freeze_gc() -> None:
    gc.collect()
    gc.freeze()


def create_app(journeys: Sequence[Journey], *, location: str, max_concurrency: int = 32,
               client: httpx.AsyncClient | None = None, freeze_gc: bool = False,
               http: ConnectOptions | None = None, blackbox: dict[str, Module] | None = None,
               probe_keepalive: bool = False, scheduled: Sequence[Journey] | None = None,
               exposition: Exposition | None = None) -> Starlette:
    """The exporter app; its lifespan runs the schedules.

    ``http`` (``probes.http``): TLS and proxies for journeys without a ``tls:`` of their own.

    ``freeze_gc`` (for a process that serves nothing else): once every journey has run,
    move what exists then out of the cyclic GC's reach (``gc.freeze``).

    ``blackbox``: the modules of a blackbox.yml for ``/probe`` (default: blackbox's
    ``http_2xx``); ``probe_keepalive``: ``/probe`` journeys reuse connections
    (``probes.endpoint``).

    ``scheduled``: the journeys this process runs and exports (a worker's or a shard's
    share, ``probes.sharding``; default all); every journey stays a ``/probe`` module.
    ``exposition``: how ``/metrics`` joins sibling workers and adds fleet labels
    (``probes.pool``; default this process's registry as it is).
    """
    journeys_all, journeys = journeys, list(journeys if scheduled is None else scheduled)
    metrics = ProbeMetrics(journeys, location)
    probe = ProbeEndpoint(journeys_all, blackbox, http=http, keepalive=probe_keepalive,
                          max_connections=max(64, max_concurrency * 4))
    state: dict[str, ProbeScheduler] = {}
    options = http  # inside the lifespan, `http` is the client

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Own client: no environment proxies, no shared cookies, generous pool for parallel runs;
        # plain-http targets on the lean transport (httpcore's CPU per request was more than
        # blackbox_exporter's whole probe, BENCHMARKS.md section 4), the rest on httpcore.
        async with client or lean_client(
                limits=httpx.Limits(max_connections=max(64, max_concurrency * 4)),
                cookies=None) as http:
            scheduler = ProbeScheduler(list(journeys), http, metrics.observe,
                                       max_concurrency=max_concurrency,
                                       on_start=metrics.started, http=options)
            state["scheduler"] = scheduler
            if exposition is not None:
                await exposition.start(metrics.render)
            scheduler.start()
            freeze: asyncio.TimerHandle | None = None
            if freeze_gc:
                # What the first round creates lives as long as the process (per-journey
                # tasks, metric children: 15 objects per histogram series). Left in the
                # GC's oldest generation, each full collection walked it on the event loop
                # (20-40 ms with 1,000 journeys, every second or two) and every run due
                # meanwhile started late (bench.scheduler_scale).
                first_round = max((j.interval_s for j in journeys), default=0.0) + 1.0
                freeze = asyncio.get_running_loop().call_later(first_round, _freeze_gc)
            try:
                yield
            finally:
                if freeze is not None:
                    freeze.cancel()
                await scheduler.stop()
                await probe.aclose()
                if exposition is not None:
                    await exposition.close()
                # uvicorn re-raises SIGTERM after its graceful shutdown (exit status -15);
                # this line is how a supervisor or a test tells a clean stop from a crash.
                sys.stderr.write(f"readygate probe serve: stopped cleanly "
                                 f"({len(journeys)} journeys)\n")
                sys.stderr.flush()

    async def metrics_page(request: Request) -> Response:
        # Rendered in a thread: with 1,000 journeys a render takes tens of milliseconds,
        # which on the event loop would start every run due in that time late
        # (bench.scheduler_scale); in a thread the loop gets the GIL every 5 ms.
        if exposition is None:
            body = await asyncio.to_thread(metrics.render)
        else:
            try:
                body = await exposition.page(metrics.render)
            except WorkerUnavailable as exc:
                # Better no scrape (up == 0) than a scrape missing a worker's journeys.
                return PlainTextResponse(f"{exc}\n", status_code=503)
            if exposition.sockets:  # which worker merged this answer (operators, tests)
                return Response(body, media_type=CONTENT_TYPE_LATEST,
                                headers={"x-readygate-worker": str(exposition.worker)})
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def healthy(request: Request) -> Response:
        return PlainTextResponse("Healthy")

    async def index(request: Request) -> Response:
        rows = "".join(
            f"<tr><td>{html.escape(r.journey)}</td><td>{'ok' if r.success else 'FAIL'}</td>"
            f"<td>{r.duration_s * 1000:.0f} ms</td>"
            f"<td>{html.escape(redact.scrub(r.error or ''))}</td></tr>"
            for r in metrics.latest())
        return HTMLResponse(
            "<!doctype html><html><head><meta charset='utf-8'><title>readygate probes</title>"
            "</head><body><h1>readygate probes</h1><p><a href='/metrics'>metrics</a></p>"
            f"<table><tr><th>journey</th><th>result</th><th>duration</th><th>error</th></tr>"
            f"{rows}</table></body></html>")

    # /probe goes straight to its endpoint (ExporterApp); its Route stays for the router.
    return ExporterApp(probe, routes=[
        Route("/", index), Route("/metrics", metrics_page), Route("/probe", probe),
        Route("/-/healthy", healthy),
    ], lifespan=lifespan)
