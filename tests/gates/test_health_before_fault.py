"""`health` with `expect: down` proves the fault took the endpoint down: one already down
just before the fault (an endpoint that always answers 5xx, a service already dead) fails.
A real HTTP server; the runner's look before the fault is `look_before_fault`."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gates.checks import judge
from gates.checks.probe import look_before_fault
from gates.config import HealthCheck
from gates.context import Anchors, CheckContext
from reports.model import CheckResult
from tests.fakes.server import serve

CHECK = {"signal": "health", "service": "web", "paths": ["/health/ready"], "deadline_s": 1}


def run(services: dict[str, str], flip: Any = None) -> CheckResult:
    """Look before the fault, `flip` (the fault), then judge the check."""
    async def go() -> CheckResult:
        async with httpx.AsyncClient(trust_env=False) as http:
            ctx = CheckContext(prometheus=None, sink=None, anchors=Anchors(), http=http,
                               probe_results=[], services=services, poll_interval_s=0.05)
            check = HealthCheck.model_validate(CHECK)
            await look_before_fault([check], ctx)
            if flip is not None:
                flip()
            now = time.time()
            ctx.anchors.fault_start = now
            ctx.anchors.phase_start["fault"] = now
            return await judge(check, ctx, "fault")
    return asyncio.run(go())


def app(state: dict[str, int]) -> Starlette:
    async def ready(request: Request) -> PlainTextResponse:
        return PlainTextResponse("state", status_code=state["status"])
    return Starlette(routes=[Route("/health/ready", ready)])


def test_an_endpoint_the_fault_takes_down_passes() -> None:
    state = {"status": 200}
    with serve(app(state)) as url:
        r = run({"web": url}, flip=lambda: state.update(status=503))
    assert r.status == "pass", r.message
    assert "web reports down" in r.message


def test_an_endpoint_that_always_answers_5xx_fails() -> None:
    state = {"status": 503}
    with serve(app(state)) as url:
        r = run({"web": url})
    assert r.status == "fail", r.message
    assert "web was already down before fault_start (/health/ready 503)" in r.message
    assert r.evidence["before_fault"] == {"/health/ready": 503}


def test_a_service_dead_before_the_fault_fails() -> None:
    with socket.socket() as s:  # a free port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    r = run({"web": url})
    assert r.status == "fail", r.message
    assert "already down before fault_start (/health/ready no answer)" in r.message
