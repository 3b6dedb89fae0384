"""readygate's Locust plugin: prints the stats lines readygate reads, for any locustfile.

Run only by Locust (``locust -f YOURS.py,scenarios/readygate_stats.py``; Locust imports
every ``-f`` file into one process): readygate never imports this module (gevent). It
defines no users, so it rides along with readygate's journeys locustfile or the user's own
one alike. On the master (or the single local process) a greenlet prints one
``READYGATE_LOAD {json}`` line per interval: totals so far, RPS, failures per second and the
p95 of that interval; a ``final`` line with per-request stats and the top errors when Locust
quits. It imports nothing of readygate, so a user's locustfile runs beside it unchanged.

The interval comes from ``stats_interval_s`` in ``READYGATE_LOAD_SPEC`` (the environment,
never argv); workers then report to the master that often instead of every 3 s.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import gevent  # type: ignore[import-untyped]
from locust import events, runners
from locust.env import Environment
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

# Same as scenarios.load.STATS_PREFIX (not imported: this module stays free of readygate).
STATS_PREFIX = "READYGATE_LOAD "

_SPEC: dict[str, Any] = json.loads(os.environ.get("READYGATE_LOAD_SPEC") or "{}")
_INTERVAL_S: float = float(_SPEC.get("stats_interval_s", 1.0))
# Workers report to the master every 3 s by default; the timeline wants every interval.
runners.WORKER_REPORT_INTERVAL = _INTERVAL_S


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
                        for e in sorted(self.env.stats.errors.values(),
                                        key=lambda e: -e.occurrences)[:10]])
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
