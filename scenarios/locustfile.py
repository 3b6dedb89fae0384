"""Locust users that run the user's HTTP journeys with the probes' own step engine.

Run only by Locust, in its own process (``locust -f scenarios/locustfile.py,
scenarios/readygate_stats.py ...``): Locust monkey-patches the whole process with gevent,
so readygate never imports this module. Each journey is one Locust task with its weight;
a task runs the journey exactly as a probe does (:func:`probes.http.run_http`: templating,
per-run cookies, extraction, assertions, retries, readygate's ``traceparent`` and
``X-Request-ID`` on every request) and fires one Locust ``request`` event per step, named
``"journey: step"``, so Locust's stats and failures are per step.

The journeys come from ``READYGATE_LOAD_SPEC`` (JSON in the environment, never argv or a
file: it carries the journeys' secrets). A worker started elsewhere without it asks the
master for it (a Locust custom message) and its users wait until it arrives.

Why one asyncio loop per process, in a greenlet of its own (measured; docs/load.md):
``asyncio.run`` per task works for one user and fails for two ("asyncio.run() cannot be
called from a running event loop": asyncio keeps its running loop per OS thread, and every
greenlet shares that thread, so a second user's loop finds the first one running). One
loop shared by every user of the process, fed with ``run_coroutine_threadsafe``, needs no
second loop; gevent's patched selector makes that loop yield to the other greenlets while
it waits for sockets. Each user gets its own clients (own connections, as Locust's
``HttpUser``), built as the probes build theirs (:func:`probes.clients.probe_client`: the
lean transport for plain http, the journey's ``tls:``): one httpx default pool shared by
every user collapsed at 50 users (37 RPS against a 50 ms endpoint), because httpcore
checks every idle connection with ``select.poll`` on each request and gevent turns each
check into a hub switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import gevent  # type: ignore[import-untyped]
import gevent.event  # type: ignore[import-untyped]
import httpx
from locust import TaskSet, User, events, runners
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner
from pydantic import BaseModel, SecretStr

from core import redact
from core.http import ConnectOptions
from probes.clients import probe_client
from probes.http import run_http
from probes.model import ProbeResult
from probes.spec import HttpJourney

SPEC_ENV = "READYGATE_LOAD_SPEC"
SPEC_REQUEST = "readygate_spec_request"
SPEC_MESSAGE = "readygate_spec"
_SPEC_WAIT_S = 30.0

T = TypeVar("T")


class StepFailed(Exception):
    """A journey step failed (its message is the engine's, secrets masked)."""


@dataclass(frozen=True)
class LoadJourney:
    """One journey as load runs it: its definition, weight and target."""

    name: str
    weight: int
    spec: HttpJourney
    base_url: str
    files_dir: Path | None


@dataclass
class Settings:
    """What the spec configures besides the journeys."""

    wait_min_s: float = 0.1
    wait_max_s: float = 0.5


SETTINGS = Settings()
_configured = gevent.event.Event()
_spec_text: str | None = os.environ.get(SPEC_ENV)


def _secrets(value: Any) -> list[str]:
    """Every SecretStr value inside a validated model's fields."""
    if isinstance(value, SecretStr):
        return [value.get_secret_value()]
    if isinstance(value, BaseModel):
        return [s for name in type(value).model_fields for s in _secrets(getattr(value, name))]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _secrets(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _secrets(v)]
    return []


def parse(text: str) -> list[LoadJourney]:
    """The journeys of a spec document (and the settings, stored in ``SETTINGS``)."""
    data = json.loads(text)
    SETTINGS.wait_min_s = float(data.get("wait_min_s", 0.1))
    SETTINGS.wait_max_s = float(data.get("wait_max_s", 0.5))
    # Workers report to the master every 3 s by default; the timeline wants every interval.
    runners.WORKER_REPORT_INTERVAL = float(data.get("stats_interval_s", 1.0))
    out = []
    for item in data.get("journeys", []):
        spec = HttpJourney.model_validate(item["spec"])
        # The engine masks a run's secrets; registering them masks them everywhere else too.
        redact.register(*_secrets(spec))
        files_dir = item.get("files_dir")
        out.append(LoadJourney(item["name"], int(item["weight"]), spec, item["base_url"],
                               Path(files_dir) if files_dir else None))
    return out


class _Engine:
    """One asyncio event loop for the whole process, run by a greenlet of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.greenlet = gevent.spawn(self.loop.run_forever)
        self.closed = False

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop; this greenlet waits cooperatively for its result."""
        if self.closed:  # stopped at quit: nothing would run the coroutine
            coro.close()
            raise RuntimeError("readygate's load engine has stopped")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            # GreenletExit when Locust stops the user mid-journey: stop the run as well.
            future.cancel()
            raise

    def close(self) -> None:
        """Stop the loop (at exit, after Locust stopped the users and their clients)."""
        if not self.closed:
            self.closed = True
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.greenlet.join(timeout=2)


_engine: _Engine | None = None


def engine() -> _Engine:
    """The process's engine, started on first use (the master never needs one)."""
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


def fire(environment: Environment, journey: str, result: ProbeResult) -> None:
    """One Locust request event per step that ran (skipped steps sent nothing)."""
    for step in result.steps:
        if step.skipped:
            continue
        environment.events.request.fire(  # type: ignore[no-untyped-call]
            request_type=step.method, name=f"{journey}: {step.name}",
            response_time=step.duration_s * 1000, response_length=0,
            exception=None if step.ok else StepFailed(step.error or f"{step.name} failed"),
            context={"trace_id": result.trace_id, "request_id": step.request_id},
            url=step.url)


def journey_task(journey: LoadJourney) -> Callable[[JourneyUser], None]:
    """The Locust task that runs ``journey`` once."""
    def run(user: JourneyUser) -> None:
        coro = run_http(journey.name, journey.spec, user.client_for(journey),
                        journey.base_url, journey.files_dir)
        try:
            result = engine().call(coro)
        except Exception as exc:
            # The engine reports a failing target as a result; a bug still shows in the
            # stats (not only in a log) as a failed journey.
            error = StepFailed(redact.scrub(f"{journey.name}: {type(exc).__name__}: {exc}"))
            user.environment.events.request.fire(
                request_type="JOURNEY", name=journey.name, response_time=0,
                response_length=0, exception=error, context={})
            return
        fire(user.environment, journey.name, result)
    run.__name__ = journey.name
    return run


class JourneyUser(User):
    """A virtual user running the configured HTTP journeys, picked by weight."""

    # tasks: set by configure()

    def wait_time(self) -> float:
        """A pause between tasks, uniform in [wait_min_s, wait_max_s]."""
        return random.uniform(SETTINGS.wait_min_s, SETTINGS.wait_max_s)

    def on_start(self) -> None:
        """Wait for the journeys (workers elsewhere get them from the master)."""
        if not _configured.wait(_SPEC_WAIT_S):
            raise RuntimeError(f"no journeys: {SPEC_ENV} is not set and the master did not "
                               f"send them within {_SPEC_WAIT_S:.0f}s")
        self.clients: dict[ConnectOptions, httpx.AsyncClient] = {}

    def client_for(self, journey: LoadJourney) -> httpx.AsyncClient:
        """This user's client for the journey's TLS options, as the probes build it.

        Own connections per user, as Locust's ``HttpUser`` (plain http on the lean
        transport; TLS contexts are cached per options, so a user costs no TLS setup).
        """
        options = ConnectOptions(tls=journey.spec.tls)
        client = self.clients.get(options)
        if client is None:
            client = self.clients[options] = probe_client(options,
                                                          name=f"journeys.{journey.name}")
        return client

    def on_stop(self) -> None:
        """Close this user's connections."""
        for client in getattr(self, "clients", {}).values():
            with contextlib.suppress(RuntimeError):
                engine().call(client.aclose())


def configure(text: str) -> None:
    """Make one task per journey, repeated by weight (what Locust does with a task dict)."""
    journeys = parse(text)
    tasks: list[TaskSet | Callable[..., Any]] = [
        journey_task(j) for j in journeys for _ in range(max(0, j.weight))]
    JourneyUser.tasks = tasks
    _configured.set()


def _on_spec(environment: Environment, msg: Any, **_kwargs: Any) -> None:
    """Worker: the master's spec arrived."""
    global _spec_text
    if _spec_text is None and isinstance(msg.data, str):
        _spec_text = msg.data
        configure(msg.data)


def _on_spec_request(environment: Environment, msg: Any, **_kwargs: Any) -> None:
    """Master: a worker asks for the spec (it was started without the environment)."""
    if _spec_text is not None and environment.runner is not None:
        environment.runner.send_message(SPEC_MESSAGE, _spec_text, client_id=msg.node_id)


def _on_quit(**_kwargs: Any) -> None:
    # Locust fires ``quit`` after it stopped the users (``quitting`` comes before: a loop
    # stopped then would leave each user's on_stop waiting for it).
    if _engine is not None:
        _engine.close()


def _on_init(environment: Environment, **_kwargs: Any) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        runner.register_message(SPEC_REQUEST, _on_spec_request)
    elif isinstance(runner, WorkerRunner):
        runner.register_message(SPEC_MESSAGE, _on_spec)
        if _spec_text is None:
            runner.send_message(SPEC_REQUEST)


if _spec_text is not None:
    try:
        configure(_spec_text)
    except (ValueError, KeyError, TypeError) as exc:  # never echo the spec: it holds secrets
        sys.stderr.write(f"readygate: {SPEC_ENV} is not a valid load spec "
                         f"({type(exc).__name__})\n")
        raise SystemExit(3) from None
events.init.add_listener(_on_init)  # type: ignore[no-untyped-call]
events.quit.add_listener(_on_quit)  # type: ignore[no-untyped-call]
