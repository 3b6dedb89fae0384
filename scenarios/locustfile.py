"""Locust user classes built from readygate's journeys (health, login, upload).

Run only by Locust, in its own process (``locust -f scenarios/locustfile.py ...``): Locust
monkey-patches the whole process with gevent, so readygate never imports this module.
The journeys' HTTP shape is the same as :mod:`probes.journeys` (same paths, same expected
statuses, W3C ``traceparent`` and ``X-Request-ID`` on every request), written here with
Locust's client so the stdlib-only import stays light.

Configuration comes from the environment, never argv (visible to every user):
``READYGATE_LOAD_SPEC`` (JSON: journeys and weights, wait times, username, upload size,
stats interval) and ``READYGATE_LOAD_PASSWORD``. On the master (or the single local
process) a greenlet prints one ``READYGATE_LOAD {json}`` line per interval: totals so far,
RPS, failures per second and the p95 of that interval; a ``final`` line at shutdown.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from typing import Any

import gevent  # type: ignore[import-untyped]
from locust import HttpUser, between, events, runners, task
from locust.env import Environment
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

STATS_PREFIX = "READYGATE_LOAD "

_SPEC: dict[str, Any] = json.loads(os.environ.get("READYGATE_LOAD_SPEC") or "{}")
_PASSWORD = os.environ.get("READYGATE_LOAD_PASSWORD", "")
_WEIGHTS: dict[str, int] = _SPEC.get("journeys") or {"health": 1, "login": 1, "upload": 1}
_USERNAME: str = _SPEC.get("username", "demo")
_UPLOAD_BYTES: int = int(_SPEC.get("upload_size_bytes", 1024))
_INTERVAL_S: float = float(_SPEC.get("stats_interval_s", 1.0))
# Workers report to the master every 3 s by default; the timeline wants every interval.
runners.WORKER_REPORT_INTERVAL = _INTERVAL_S


def _headers(journey: str, trace_id: str, n: int) -> dict[str, str]:
    return {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
            "X-Request-ID": f"rg-load-{trace_id[:16]}-{n}",
            "User-Agent": f"readygate-load (journey={journey})"}


class JourneyUser(HttpUser):
    """One virtual user running the configured journeys by weight."""

    wait_time = between(float(_SPEC.get("wait_min_s", 0.1)), float(_SPEC.get("wait_max_s", 0.5)))

    def _call(self, journey: str, trace_id: str, n: int, step: str, method: str, path: str,
              expect: tuple[int, ...], **kwargs: Any) -> Any:
        headers = _headers(journey, trace_id, n)
        headers.update(kwargs.pop("headers", {}))
        with self.client.request(method, path, headers=headers, catch_response=True,
                                 name=f"{journey}: {step}", **kwargs) as resp:
            if resp.status_code not in expect:
                resp.failure(f"{method} {path} returned {resp.status_code}")
                return None
            resp.success()
            return resp

    def _login(self, journey: str, trace_id: str) -> str | None:
        resp = self._call(journey, trace_id, 1, "login", "POST", "/api/login", (200,),
                          json={"username": _USERNAME, "password": _PASSWORD})
        if resp is None:
            return None
        try:
            token = resp.json()["token"]
        except (ValueError, KeyError, TypeError):
            return None
        return token if isinstance(token, str) else None

    @task(_WEIGHTS.get("health", 0))
    def health(self) -> None:
        """GET /health/live then /health/ready, both 200."""
        trace_id = secrets.token_hex(16)
        if self._call("health", trace_id, 1, "live", "GET", "/health/live", (200,)) is not None:
            self._call("health", trace_id, 2, "ready", "GET", "/health/ready", (200,))

    @task(_WEIGHTS.get("login", 0))
    def login(self) -> None:
        """POST /api/login answers 200 with a token."""
        self._login("login", secrets.token_hex(16))

    @task(_WEIGHTS.get("upload", 0))
    def upload(self) -> None:
        """Log in, upload a file, read it back, delete it."""
        trace_id = secrets.token_hex(16)
        token = self._login("upload", trace_id)
        if token is None:
            return
        auth = {"Authorization": f"Bearer {token}"}
        resp = self._call("upload", trace_id, 2, "upload", "POST", "/api/uploads", (201,),
                          headers=auth, files={"file": ("readygate-load.bin",
                                                        os.urandom(_UPLOAD_BYTES),
                                                        "application/octet-stream")})
        if resp is None:
            return
        try:
            upload_id = str(resp.json()["id"])
        except (ValueError, KeyError, TypeError):
            return
        self._call("upload", trace_id, 3, "read back", "GET", f"/api/uploads/{upload_id}",
                   (200,), headers=auth)
        self._call("upload", trace_id, 4, "clean up", "DELETE", f"/api/uploads/{upload_id}",
                   (200, 204), headers=auth)


def _percentile(times: dict[int, int], q: float) -> float | None:
    """The q-quantile of a {rounded_ms: count} histogram (Locust's own representation)."""
    total = sum(c for c in times.values() if c > 0)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for ms in sorted(times):
        seen += max(0, times[ms])
        if seen >= rank:
            return float(ms)
    return float(max(times))


class _Reporter:
    """Prints interval snapshots; p95 is over the interval (a delta of Locust's histogram)."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.prev_times: dict[int, int] = {}
        self.prev_requests = 0
        self.prev_failures = 0
        self.prev_at = time.time()
        self.done = False

    def snapshot(self, final: bool = False) -> dict[str, Any]:
        total = self.env.stats.total
        now = time.time()
        times = dict(total.response_times)
        window = {ms: n - self.prev_times.get(ms, 0) for ms, n in times.items()}
        span = max(1e-6, now - self.prev_at)
        requests, failures = total.num_requests, total.num_failures
        out: dict[str, Any] = {
            "at": now, "requests": requests, "failures": failures,
            "rps": round((requests - self.prev_requests) / span, 3),
            "failures_per_s": round((failures - self.prev_failures) / span, 3),
            "p95_ms": _percentile(window, 0.95),
            "active_users": self.env.runner.user_count if self.env.runner else 0,
        }
        if isinstance(self.env.runner, MasterRunner):
            out["connected_workers"] = len(self.env.runner.clients)
        if final:
            out.update(
                rps=round(total.total_rps, 3), p50_ms=_percentile(times, 0.5),
                p95_ms=_percentile(times, 0.95), failure_ratio=round(total.fail_ratio, 4),
                duration_s=round(now - total.start_time, 3),
                by_request={name: {"requests": e.num_requests, "failures": e.num_failures,
                                   "p95_ms": _percentile(dict(e.response_times), 0.95)}
                            for (name, _method), e in sorted(self.env.stats.entries.items())},
                errors=[{"name": e.name, "error": str(e.error)[:200], "count": e.occurrences}
                        for e in list(self.env.stats.errors.values())[:10]])
        self.prev_times, self.prev_requests, self.prev_failures = times, requests, failures
        self.prev_at = now
        return out

    def emit(self, final: bool = False) -> None:
        if self.done:
            return
        self.done = final
        data = self.snapshot(final)
        data["final"] = final
        sys.stdout.write(STATS_PREFIX + json.dumps(data) + "\n")
        sys.stdout.flush()

    def loop(self) -> None:
        while True:
            gevent.sleep(_INTERVAL_S)
            self.emit()


_reporter: _Reporter | None = None


def _on_init(environment: Environment, **_kwargs: Any) -> None:
    global _reporter
    if isinstance(environment.runner, LocalRunner | MasterRunner):
        _reporter = _Reporter(environment)
        gevent.spawn(_reporter.loop)


def _on_quitting(environment: Environment, **_kwargs: Any) -> None:
    if _reporter is not None and not isinstance(environment.runner, WorkerRunner):
        _reporter.emit(final=True)


events.init.add_listener(_on_init)  # type: ignore[no-untyped-call]
events.quitting.add_listener(_on_quitting)  # type: ignore[no-untyped-call]
