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
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import replace

import httpx
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from core import redact
from core.http import ConnectOptions
from probes.journeys import Journey, timed_out
from probes.metrics import ProbeMetrics, render_single
from probes.scheduler import ProbeScheduler
from probes.spec import HttpJourney, Step
from probes.transport import lean_client

# Prometheus sends its scrape timeout; answer a little before it, as blackbox does.
TIMEOUT_OFFSET_S = 0.5


def _origin(url: str) -> tuple[str, str, int | None]:
    u = httpx.URL(url)
    return u.scheme, u.host, u.port


def _freeze_gc() -> None:
    gc.collect()
    gc.freeze()


def http_2xx_module() -> Journey:
    """blackbox's ``http_2xx``: GET the target URL itself, expect any 2xx."""
    spec = HttpJourney(steps=[Step(name="get", url="{{base_url}}")])
    return Journey("http_2xx", spec, "", 30.0)


def create_app(journeys: Sequence[Journey], *, location: str, max_concurrency: int = 32,
               client: httpx.AsyncClient | None = None, freeze_gc: bool = False,
               http: ConnectOptions | None = None) -> Starlette:
    """The exporter app; its lifespan runs the schedules.

    ``http`` (``probes.http``): TLS and proxies for journeys without a ``tls:`` of their own.

    ``freeze_gc`` (for a process that serves nothing else): once every journey has run,
    move what exists then out of the cyclic GC's reach (``gc.freeze``).
    """
    metrics = ProbeMetrics(journeys, location)
    modules = {j.name: j for j in journeys}
    modules.setdefault("http_2xx", http_2xx_module())
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
                # uvicorn re-raises SIGTERM after its graceful shutdown (exit status -15);
                # this line is how a supervisor or a test tells a clean stop from a crash.
                sys.stderr.write(f"readygate probe serve: stopped cleanly "
                                 f"({len(journeys)} journeys)\n")
                sys.stderr.flush()

    def metrics_page(request: Request) -> Response:
        # A plain function, so Starlette renders in its thread pool: with 1,000 journeys a
        # render takes ~100 ms, which on the event loop would start every run due in that
        # time late (bench.scheduler_scale); in a thread the loop gets the GIL every 5 ms.
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def probe(request: Request) -> Response:
        target = request.query_params.get("target")
        module = request.query_params.get("module", "http_2xx")
        if not target:
            return PlainTextResponse("Target parameter is missing", status_code=400)
        if module not in modules:
            return PlainTextResponse(f"Unknown module {module!r}", status_code=400)
        journey = modules[module]
        spec = journey.spec
        has_secrets = (bool(spec.secrets)
                       or any(isinstance(s, Step) and s.basic_auth is not None
                              for s in spec.steps))
        if has_secrets and _origin(target) != _origin(journey.base_url):
            # Never send a journey's credentials to a host the scrape request names.
            return PlainTextResponse(f"module {module!r} carries credentials and may only "
                                     "probe its configured target", status_code=403)
        one = replace(journey, base_url=target)
        bound = one.run_timeout_s
        header = request.headers.get("x-prometheus-scrape-timeout-seconds")
        if header:
            with suppress(ValueError):
                bound = min(bound, max(0.1, float(header) - TIMEOUT_OFFSET_S))
        scheduler = state["scheduler"]
        try:
            async with asyncio.timeout(bound):  # not wait_for: no extra Task per probe
                result = await scheduler.run_once(one)
        except TimeoutError:
            result = timed_out(one, time.time() - bound, bound)
        return Response(render_single(result), media_type=CONTENT_TYPE_LATEST)

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

    return Starlette(routes=[
        Route("/", index), Route("/metrics", metrics_page), Route("/probe", probe),
        Route("/-/healthy", healthy),
    ], lifespan=lifespan)
