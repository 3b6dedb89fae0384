"""How readygate's journeys run inside Locust: the ways to put asyncio under gevent, side by side.

    .venv/bin/python -m bench.load_engine [--users 1,4,10,50] [--seconds 8] [--delay-ms 50]

One target (a raw asyncio server answering after ``--delay-ms``, started here) and, for
each user count, one Locust process per variant, ``--headless -t SECONDS --json``, one
after the other (the machine has two cores: ratios of one run, not absolute figures):

- ``httpuser``: Locust's own ``HttpUser`` (requests) making the same GET, for reference;
- ``asyncio-run``: ``asyncio.run(run_http(...))`` in each task, a new client per run;
- ``user-loop``: an event loop per user (``loop.run_until_complete`` in each task);
- ``shared-pool``: one asyncio loop per process, one httpx default client for all users;
- ``readygate``: scenarios/locustfile.py as load runs it (one loop, a client per user).

The variants other than readygate's are written to a temporary directory: they exist only
to be measured. docs/load.md has the figures and the reasons.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import ROOT, python, start_ready
from core.serve import announce, bind_socket, socket_url
from probes.journeys import Journey
from probes.spec import HttpJourney
from scenarios.config import Load
from scenarios.load import LOCUSTFILE, SPEC_ENV, child_spec

_PRELUDE = '''
import asyncio, os
import httpx
from locust import User, constant, events, task
from probes.http import run_http
from probes.spec import HttpJourney
SPEC = HttpJourney.model_validate({"steps": [{"name": "one", "url": "/"}]})


def fire(result):
    for s in result.steps:
        events.request.fire(request_type=s.method, name="j: " + s.name,
                            response_time=s.duration_s * 1000, response_length=0,
                            exception=None if s.ok else Exception(s.error), context={})
'''

VARIANTS = {
    "httpuser": '''
from locust import HttpUser, constant, task


class U(HttpUser):
    wait_time = constant(0)

    @task
    def t(self):
        self.client.get("/", name="j: one")
''',
    "asyncio-run": _PRELUDE + '''

class U(User):
    wait_time = constant(0)

    @task
    def t(self):
        async def go():
            async with httpx.AsyncClient(trust_env=False) as client:
                return await run_http("j", SPEC, client, self.host)
        try:
            fire(asyncio.run(go()))
        except RuntimeError as exc:
            events.request.fire(request_type="GET", name="j: one", response_time=0,
                                response_length=0, exception=exc, context={})
''',
    "user-loop": _PRELUDE + '''

class U(User):
    wait_time = constant(0)

    def on_start(self):
        self.loop = asyncio.new_event_loop()

    @task
    def t(self):
        async def go():
            async with httpx.AsyncClient(trust_env=False) as client:
                return await run_http("j", SPEC, client, self.host)
        try:
            fire(self.loop.run_until_complete(go()))
        except RuntimeError as exc:
            events.request.fire(request_type="GET", name="j: one", response_time=0,
                                response_length=0, exception=exc, context={})
''',
    "shared-pool": _PRELUDE + '''
import gevent

LOOP = asyncio.new_event_loop()
gevent.spawn(LOOP.run_forever)
CLIENT = httpx.AsyncClient(trust_env=False, limits=httpx.Limits(max_connections=None))


class U(User):
    wait_time = constant(0)

    @task
    def t(self):
        coro = run_http("j", SPEC, CLIENT, self.host)
        fire(asyncio.run_coroutine_threadsafe(coro, LOOP).result())
''',
}


async def _serve(delay_s: float) -> None:
    """The target: ``200 ok`` to every request, ``delay_s`` after it arrived."""
    loop = asyncio.get_running_loop()

    class Http(asyncio.Protocol):
        def __init__(self) -> None:
            self.transport: asyncio.Transport | None = None
            self.buf = b""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while (end := self.buf.find(b"\r\n\r\n")) >= 0:  # GETs only: no bodies
                self.buf = self.buf[end + 4:]
                loop.call_later(delay_s, self.answer)

        def answer(self) -> None:
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")

    sock = bind_socket("127.0.0.1", 0)
    server = await loop.create_server(Http, sock=sock)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    announce(socket_url(sock))
    async with server:
        await stop.wait()


def run_variant(locustfile: Path, url: str, users: int, seconds: int,
                env: dict[str, str]) -> dict[str, float]:
    """One Locust run: requests, failures, RPS, mean latency, CPU per request.

    The CPU is the Locust process's whole, start-up (about 1.5 s) included: compare rows.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", str(users),
         "-r", "1000", "-t", f"{seconds}s", "--host", url, "--json", "--loglevel", "ERROR"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    entries: list[dict[str, Any]] = json.loads(out.stdout[out.stdout.index("["):])
    requests = sum(int(e["num_requests"]) for e in entries)
    span = (max(e["last_request_timestamp"] for e in entries)
            - min(e["start_time"] for e in entries)) if requests else float(seconds)
    return {"requests": requests, "failures": sum(int(e["num_failures"]) for e in entries),
            "rps": requests / span if span else 0.0,
            "mean_ms": sum(e["total_response_time"] for e in entries) / max(requests, 1),
            "cpu_ms_per_request": 1000 * cpu / max(requests, 1)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="1,4,10,50")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--serve", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        await _serve(args.serve)
        return
    with tempfile.TemporaryDirectory(prefix="readygate-bench-load-") as tmp:
        files = {name: Path(tmp) / f"{name.replace('-', '_')}.py" for name in VARIANTS}
        for name, path in files.items():
            path.write_text(VARIANTS[name])
        files["readygate"] = LOCUSTFILE
        target = await start_ready("target", python("bench.load_engine", "--serve",
                                                    str(args.delay_ms / 1000)), Path(tmp))
        try:
            assert target.url is not None
            journey = Journey("j", HttpJourney.model_validate(
                {"steps": [{"name": "one", "url": "/"}]}), target.url)
            env = {**os.environ, "PYTHONPATH": str(ROOT),
                   SPEC_ENV: child_spec(Load(wait_min_s=0, wait_max_s=0), [(journey, 1)])}
            print(f"target answers after {args.delay_ms:g} ms; {args.seconds} s per run")
            print(f"{'variant':<12} {'users':>5} {'requests':>9} {'failures':>9} {'rps':>8} "
                  f"{'mean ms':>8} {'cpu ms/req':>10}")
            for users in (int(u) for u in args.users.split(",")):
                for name, path in files.items():
                    r = await asyncio.to_thread(run_variant, path, target.url, users,
                                                args.seconds, env)
                    print(f"{name:<12} {users:>5} {r['requests']:>9.0f} {r['failures']:>9.0f} "
                          f"{r['rps']:>8.1f} {r['mean_ms']:>8.1f} "
                          f"{r['cpu_ms_per_request']:>10.2f}", flush=True)
        finally:
            target.stop()


if __name__ == "__main__":
    asyncio.run(main())
