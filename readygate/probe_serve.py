"""How ``probe serve`` runs: one process, or pre-forked workers, as one shard of a fleet.

``--shard I/N`` keeps the journeys :mod:`probes.sharding` gives this shard and labels every
series with ``shard`` and ``location``; ``--workers N`` forks N workers on one
``SO_REUSEPORT`` port (:func:`core.serve.serve_workers`), each running its own part of the
shard's journeys and answering any request (``/probe``, and ``/metrics`` merged from every
worker: :mod:`probes.pool`). docs/probe-serve.md is the operator's page.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.serve import run_asgi, serve_workers
from probes.journeys import Journey
from probes.pool import Exposition
from probes.sharding import Shard, owned, split

AppFactory = Callable[[list[Journey], Exposition | None], Any]
SHARD_ENV = "READYGATE_SHARD"
WORKERS_ENV = "READYGATE_WORKERS"



def add_arguments(serve: argparse.ArgumentParser) -> None:
    """``--workers`` and ``--shard`` for ``probe serve``."""
    serve.add_argument("--workers", default=None, metavar="N",
                       help="worker processes sharing the port (SO_REUSEPORT), each running "
                            "its part of the journeys; 'auto': one per CPU this process may "
                            f"use (default 1, or ${WORKERS_ENV})")
    serve.add_argument("--shard", default=None, metavar="I/N",
                       help="run only shard I of N of the journeys (stable hashing of their "
                            "names: every shard of a fleet computes the same split); I may "
                            "be a StatefulSet pod name ending in its ordinal "
                            f"(default ${SHARD_ENV})")


def workers_count(value: str | None) -> int:
    """``--workers``: a positive number, or ``auto`` (CPUs in this process's affinity)."""
    text = (value or os.environ.get(WORKERS_ENV) or "1").strip()
    if text == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"--workers {text!r} is not a positive number or 'auto'")
    return int(text)


def shard_of(value: str | None) -> Shard | None:
    """``--shard`` (or ``$READYGATE_SHARD``), parsed; None when neither is set."""
    text = value or os.environ.get(SHARD_ENV)
    return Shard.parse(text) if text else None


def _fleet_gauges(shard: Shard | None, mine: Sequence[Journey], workers: int
                  ) -> list[tuple[str, str, float]]:
    gauges = [("readygate_serve_workers", "Worker processes of this probe serve.",
               float(workers))]
    if shard is not None:
        gauges += [
            ("readygate_shard_journeys", "Journeys this shard runs (probe serve --shard).",
             float(len(mine))),
            ("readygate_shard_count", "Shards in the fleet (N of --shard I/N).",
             float(shard.count)),
        ]
    return gauges


def _use_uvloop() -> asyncio.AbstractEventLoopPolicy:
    # uvloop (when installed) roughly halves the event loop's share of each probe's CPU
    # (bench.probe_throughput, bench.scheduler_scale); the stock loop works the same, slower.
    previous = asyncio.get_event_loop_policy()
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return previous


def serve(journeys: Sequence[Journey], make_app: AppFactory, *, host: str, port: int,
          location: str, workers: int, shard: Shard | None) -> int:
    """Serve until SIGTERM/SIGINT (``make_app(scheduled, exposition)`` builds a worker's
    app); 0 after a clean stop."""
    mine = owned(journeys, shard.index, shard.count) if shard is not None else list(journeys)
    labels = {"shard": str(shard.index), "location": location} if shard is not None else {}
    gauges = _fleet_gauges(shard, mine, workers)
    previous = _use_uvloop()
    # Everything built so far (imports, config, journey models) lives as long as the
    # process: out of the cyclic GC's reach, a full collection no longer walks it (and
    # forked workers share those pages instead of copying them when the GC touches them).
    gc.collect()
    gc.freeze()
    try:
        if workers == 1:
            # /metrics rendered in a forked child at nice 19 (probes.pool.render_apart):
            # off the GIL of the loop that starts the runs.
            exposition = Exposition(labels=labels, gauges=gauges, fork_render=True)
            run_asgi(make_app(mine, exposition), host, port)
            return 0
        parts = split(mine, workers)
        rundir = Path(tempfile.mkdtemp(prefix="readygate-serve-"))  # 0700: ours only
        sockets = [rundir / f"worker-{i}.sock" for i in range(workers)]
        try:
            def worker(index: int, sock: socket.socket, ready: Callable[[], None]) -> None:
                exposition = Exposition(labels=labels, worker=index, sockets=sockets,
                                        gauges=gauges, fork_render=True)
                app = make_app(parts[index], exposition)
                run_asgi(app, sock=sock, on_ready=lambda url: ready(),
                         announce_ready=False)

            return serve_workers(workers, host, port, worker, name="readygate probe serve")
        finally:
            shutil.rmtree(rundir, ignore_errors=True)
    finally:
        asyncio.set_event_loop_policy(previous)
