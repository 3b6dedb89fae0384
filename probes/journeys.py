"""The built-in journeys over HTTP: health, login, upload.

Each journey takes the httpx client it should use (tests hand in a transport, real runs a
pooled client), returns a :class:`ProbeResult`, and never raises for a failing target:
a failure is a result. Every request carries readygate's traceparent and a request id.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from probes.correlation import Correlation
from probes.model import ProbeResult, StepResult


@dataclass(frozen=True)
class JourneyContext:
    """What a journey needs to know about the target."""

    base_url: str
    username: str
    password: str
    timeout_s: float = 5.0
    upload_size_bytes: int = 1024


class StepFailed(Exception):
    """A step's assertion failed; the message says what was expected and what came back."""


class _Run:
    """Runs the steps of one journey and records them."""

    def __init__(self, client: httpx.AsyncClient, ctx: JourneyContext, journey: str) -> None:
        self.client = client
        self.ctx = ctx
        self.corr = Correlation(journey)
        self.steps: list[StepResult] = []

    async def request(self, name: str, method: str, path: str, *, expect: int | tuple[int, ...],
                      **kwargs: Any) -> httpx.Response:
        headers, request_id = self.corr.headers()
        headers.update(kwargs.pop("headers", {}) or {})
        url = self.ctx.base_url.rstrip("/") + path
        start = time.perf_counter()
        try:
            resp = await self.client.request(method, url, headers=headers,
                                             timeout=self.ctx.timeout_s, **kwargs)
        except httpx.HTTPError as exc:
            duration = time.perf_counter() - start
            message = f"{name}: {method} {path}: {type(exc).__name__}: {exc}".rstrip(": ")
            self.steps.append(StepResult(name, method, url, None, duration, request_id, False,
                                         message))
            raise StepFailed(message) from None
        duration = time.perf_counter() - start
        wanted = (expect,) if isinstance(expect, int) else expect
        ok = resp.status_code in wanted
        error = None if ok else (f"{name}: {method} {path} returned {resp.status_code}, "
                                 f"expected {' or '.join(map(str, wanted))}")
        self.steps.append(StepResult(name, method, url, resp.status_code, duration, request_id,
                                     ok, error))
        if not ok:
            raise StepFailed(error)
        return resp

    async def login_token(self) -> str:
        resp = await self.request("login", "POST", "/api/login", expect=200,
                                  json={"username": self.ctx.username,
                                        "password": self.ctx.password})
        try:
            token = resp.json()["token"]
        except (ValueError, KeyError, TypeError):
            raise StepFailed("login: POST /api/login answered 200 without a token") from None
        if not isinstance(token, str) or not token:
            raise StepFailed("login: POST /api/login answered an empty token")
        return token


async def _health(run: _Run) -> None:
    await run.request("live", "GET", "/health/live", expect=200)
    await run.request("ready", "GET", "/health/ready", expect=200)


async def _login(run: _Run) -> None:
    await run.login_token()


async def _upload(run: _Run) -> None:
    token = await run.login_token()
    auth = {"Authorization": f"Bearer {token}"}
    payload = os.urandom(run.ctx.upload_size_bytes)
    digest = hashlib.sha256(payload).hexdigest()
    resp = await run.request("upload", "POST", "/api/uploads", expect=201, headers=auth,
                             files={"file": ("readygate-probe.bin", payload,
                                             "application/octet-stream")})
    try:
        upload_id = str(resp.json()["id"])
    except (ValueError, KeyError, TypeError):
        raise StepFailed("upload: POST /api/uploads answered 201 without an id") from None
    back = await run.request("read back", "GET", f"/api/uploads/{upload_id}", expect=200,
                             headers=auth)
    try:
        got = hashlib.sha256(back.content).hexdigest()
        if got != digest:
            raise StepFailed(f"read back: upload {upload_id} came back corrupted "
                             f"(sha256 {got[:12]}…, sent {digest[:12]}…)")
    finally:
        await run.request("clean up", "DELETE", f"/api/uploads/{upload_id}",
                          expect=(200, 204), headers=auth)


JOURNEYS: dict[str, Callable[[_Run], Awaitable[None]]] = {
    "health": _health,
    "login": _login,
    "upload": _upload,
}


async def run_journey(name: str, client: httpx.AsyncClient, ctx: JourneyContext) -> ProbeResult:
    """Run one built-in journey once; failures are results, never exceptions."""
    steps = JOURNEYS[name]
    run = _Run(client, ctx, name)
    started = time.time()
    t0 = time.perf_counter()
    error: str | None = None
    try:
        await steps(run)
    except StepFailed as exc:
        error = str(exc)
    return ProbeResult(journey=name, started_at=started, duration_s=time.perf_counter() - t0,
                       success=error is None, trace_id=run.corr.trace_id,
                       steps=tuple(run.steps), error=error)
