"""Fixtures that start the real demo processes (sink, storage, web) on loopback.

One session-wide set is reused by every test; sabotaged variants of ``web`` are started
on first use and cached, and everything is stopped at the end of the session.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from readygate.procs import ManagedProcess, ProcessSet, start_python_service

T = TypeVar("T")


def eventually(fn: Callable[[], T | None], *, timeout: float = 10.0, interval: float = 0.05,
               what: str = "condition") -> T:
    """Poll ``fn`` until it returns something truthy; fail with the last value at the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout:.1f}s; last value: {last!r}")
        time.sleep(interval)


def traceparent() -> tuple[str, str, str]:
    """A fresh (trace_id, parent span id, traceparent header), as readygate's probes send."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


class Demo:
    """The demo processes of one test session, started lazily and stopped together."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.log_dir = workdir / "logs"
        self.procs = ProcessSet()
        self.password = "pw-" + secrets.token_urlsafe(18)
        self.user = "demo"
        self._webs: dict[tuple[str, str], ManagedProcess] = {}
        self._storages: dict[str, ManagedProcess] = {}
        self.sink = self.start("sink", "demo.sink", ["--db", str(workdir / "sink.db")])

    @property
    def sink_url(self) -> str:
        """Base URL of the session's sink."""
        assert self.sink.url is not None
        return self.sink.url

    def start(self, name: str, module: str, args: list[str],
              env: dict[str, str] | None = None) -> ManagedProcess:
        """Start ``python -m module`` and wait for its READY line."""
        return asyncio.run(start_python_service(self.procs, name, module, args, env=env,
                                                log_dir=self.log_dir))

    def storage(self, name: str = "storage") -> ManagedProcess:
        """A storage process by name (started on first use)."""
        if name not in self._storages:
            self._storages[name] = self.start(name, "demo.storage",
                                              ["--sink-url", self.sink_url])
        return self._storages[name]

    def web(self, sabotage: str = "", storage: str = "storage") -> ManagedProcess:
        """A web process with these DEMO_SABOTAGE knobs in front of the named storage."""
        key = (sabotage, storage)
        if key not in self._webs:
            storage_url = self.storage(storage).url
            assert storage_url is not None
            name = "web" + (f"-{sabotage.replace(',', '-')}" if sabotage else "")
            name += "" if storage == "storage" else f"-{storage}"
            self._webs[key] = self.start(
                name, "demo.web", ["--storage-url", storage_url, "--sink-url", self.sink_url],
                env={"DEMO_PASSWORD": self.password, "DEMO_USER": self.user,
                     "DEMO_SABOTAGE": sabotage})
        return self._webs[key]

    def dead_storage(self) -> ManagedProcess:
        """A storage process that was started and then stopped (its URL refuses connections)."""
        proc = self.storage("storage-dead")
        proc.stop()
        return proc

    def sink_get(self, path: str, **params: str) -> httpx.Response:
        """GET from the sink's query API."""
        return httpx.get(self.sink_url + path, params=params, timeout=5.0)

    def sink_logs(self, **params: str) -> list[dict[str, Any]]:
        """The sink's log records matching the filters."""
        resp = self.sink_get("/api/logs", **params)
        resp.raise_for_status()
        logs: list[dict[str, Any]] = resp.json()["logs"]
        return logs

    def close(self) -> None:
        """Stop every process this session started."""
        self.procs.stop_all()


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The session's demo processes; every one is stopped at teardown."""
    d = Demo(tmp_path_factory.mktemp("demo"))
    try:
        yield d
    finally:
        pids = d.procs.pids()
        d.close()
        for proc_dir in (Path(f"/proc/{pid}") for pid in pids):
            # stop() waited for each child, so none may linger (not even as a zombie).
            assert not proc_dir.exists(), f"process {proc_dir.name} still running"


@pytest.fixture(scope="session")
def web(demo: Demo) -> ManagedProcess:
    """The healthy web service, in front of the healthy storage."""
    return demo.web()


@pytest.fixture()
def client(web: ManagedProcess) -> Iterator[httpx.Client]:
    """An HTTP client for the healthy web service."""
    assert web.url is not None
    with httpx.Client(base_url=web.url, timeout=5.0) as c:
        yield c


def api_token(base_url: str, user: str, password: str) -> str:
    """Log in over the API and return the bearer token."""
    resp = httpx.post(base_url + "/api/login", json={"username": user, "password": password},
                      timeout=5.0)
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["token"]
    return token
