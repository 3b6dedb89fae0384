"""The per-run shortcuts of the scheduler's hot path change no result."""

from __future__ import annotations

import asyncio
import os

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from probes import http as probe_http
from probes.journeys import Journey
from probes.metrics import ProbeMetrics
from probes.model import ProbeResult, StepResult
from probes.spec import HttpJourney, Step
from probes.transport import lean_client
from tests.fakes.server import serve


async def _cookie(request: Request) -> PlainTextResponse:
    response = PlainTextResponse("ok")
    response.set_cookie("session", "abc123")
    return response


async def _plain(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def test_the_lean_clients_jar_still_takes_cookies_it_is_set_and_skips_the_rest() -> None:
    app = Starlette(routes=[Route("/cookie", _cookie), Route("/plain", _plain)])

    async def main(url: str) -> tuple[list[str], list[str]]:
        async with lean_client(cookies=None) as client:
            await client.get(url + "/plain")
            before = list(client.cookies.keys())
            await client.get(url + "/cookie")
            return before, list(client.cookies.keys())

    with serve(app) as url:
        before, after = asyncio.run(main(url))
    assert before == []
    assert after == ["session"]


def test_parsed_urls_are_the_same_urls_and_the_cache_stays_bounded() -> None:
    url = "http://127.0.0.1:9/a/b?x=1"
    assert probe_http.parsed_url(url) == httpx.URL(url)
    assert probe_http.parsed_url(url) is probe_http.parsed_url(url)
    for i in range(probe_http._URLS_MAX + 10):
        probe_http.parsed_url(f"http://127.0.0.1:9/{i}")
    assert len(probe_http._URLS) <= probe_http._URLS_MAX


def test_observe_counts_every_run_in_the_journeys_own_series() -> None:
    spec = HttpJourney(steps=[Step(url="/")])
    metrics = ProbeMetrics([Journey("a", spec, "http://x", 1.0)], "here")
    step = StepResult("GET /", "GET", "http://x/", 200, 0.01, "r", True, attempts=2)
    for ok in (True, True, False):
        metrics.observe(ProbeResult("a", 0.0, 0.02, ok, "t" * 32, (step,)))
    text = metrics.render().decode()
    assert 'readygate_journey_runs_total{journey="a",result="success"} 2.0' in text
    assert 'readygate_journey_runs_total{journey="a",result="failure"} 1.0' in text
    assert 'readygate_journey_retried_runs_total{journey="a"} 3.0' in text
    assert 'readygate_journey_duration_seconds_count{journey="a"} 3.0' in text


def test_a_render_in_a_forked_child_answers_what_the_process_renders() -> None:
    from probes.pool import render_apart

    metrics = ProbeMetrics([Journey("a", HttpJourney(steps=[Step(url="/")]), "http://x", 1.0)],
                           "here")
    metrics.observe(ProbeResult("a", 0.0, 0.02, True, "t" * 32, ()))
    assert asyncio.run(render_apart(metrics.render)) == metrics.render()


def test_a_child_that_fails_leaves_the_render_to_a_thread() -> None:
    from probes.pool import render_apart

    parent = os.getpid()

    def render() -> bytes:
        if os.getpid() != parent:
            raise RuntimeError("the child fails")
        return b"ok\n"

    # the child raises (exit 1, no answer); the parent then renders itself
    assert asyncio.run(render_apart(render)) == b"ok\n"
