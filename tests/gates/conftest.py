"""Helpers for gates tests: run one check against a context built from given backends."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from gates.checks import judge
from gates.config import Check
from gates.context import Anchors, CheckContext
from probes.model import ProbeResult, StepResult
from reports.model import CheckResult

CHECK: TypeAdapter[Any] = TypeAdapter(Check)
Build = Callable[[httpx.AsyncClient], Any]


def make_probe(journey: str = "upload", *, ok: bool = True, trace_id: str = "ab" * 16,
               request_id: str = "rg-req-1", at: float | None = None) -> ProbeResult:
    """A probe result as readygate's scheduler records it."""
    step = StepResult("s", "POST", "http://web.test/x", 200 if ok else 502, 0.01, request_id, ok)
    return ProbeResult(journey, at or time.time(), 0.01, ok, trace_id, (step,),
                       None if ok else f"{journey} failed: 502")


def judge_with(check: dict[str, Any], *, phase: str = "fault",
               probes: list[ProbeResult] | None = None, anchors: Anchors | None = None,
               secrets: list[str] | None = None, services: dict[str, str] | None = None,
               **backends: Build) -> CheckResult:
    """Judge ``check`` with backends built (from a real httpx client) by the given callables."""
    async def go() -> CheckResult:
        async with httpx.AsyncClient(trust_env=False) as http:
            now = time.time()
            # the phase began before every given probe, however long the test took to get here
            begun = min([now - 1.0] + [p.started_at - 0.5 for p in probes or []])
            ctx = CheckContext(
                prometheus=None, sink=None,
                anchors=anchors or Anchors(phase_start={phase: begun}, fault_start=now),
                probe_results=probes or [], poll_interval_s=0.05, http=http,
                secrets=secrets or [], services=services or {},
                **{name: build(http) for name, build in backends.items()})
            return await judge(CHECK.validate_python(check), ctx, phase)
    return asyncio.run(go())


@pytest.fixture
def now() -> float:
    return time.time()


@pytest.fixture(scope="session")
def runbooks() -> Iterator[str]:
    """A web server where /runbooks/* answers 200 and everything else 404."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            self.send_response(200 if self.path.startswith("/runbooks/") else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)
