"""Fixtures: ``readygate sink`` as a real child process (HTTP and OTLP/gRPC on free ports)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.procs import ManagedProcess, python_module

ROOT = Path(__file__).resolve().parents[2]
GRPC_PREFIX = "OTLP_GRPC "


def next_line(proc: ManagedProcess, timeout: float = 10.0) -> str:
    """The child's next stdout line ('' at EOF), waiting at most ``timeout`` seconds."""
    assert proc.proc is not None and proc.proc.stdout is not None
    pool = concurrent.futures.ThreadPoolExecutor(1)
    future = pool.submit(proc.proc.stdout.readline)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        proc.stop()  # EOF on the pipe ends the blocked readline
        raise AssertionError(f"{proc.name}: no line within {timeout:.0f}s") from None
    finally:
        pool.shutdown(wait=True)


@dataclass
class Sink:
    """A running sink: its process, HTTP base URL, OTLP/gRPC address and database file."""

    proc: ManagedProcess
    url: str
    grpc: str | None
    db: Path | None
    # One client for all calls: building an httpx client costs ~70 ms (its SSL context).
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=5.0,
                                                                     trust_env=False))

    def get(self, path: str, **params: str) -> httpx.Response:
        """GET from the query API."""
        return self.http.get(self.url + path, params=params)

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None
             ) -> httpx.Response:
        """POST a raw body."""
        return self.http.post(self.url + path, content=body, headers=headers or {})

    def stop(self) -> None:
        """Stop the process (by PID) and close the client."""
        self.http.close()
        self.proc.stop()

    def rows(self, kind: str, **params: str) -> list[dict[str, Any]]:
        """The rows of ``/api/<kind>`` matching the filters (the request must succeed)."""
        resp = self.get(f"/api/{kind}", **params)
        assert resp.status_code == 200, resp.text
        rows: list[dict[str, Any]] = resp.json()[kind]
        return rows


def start_sink(name: str, args: list[str], log_dir: Path) -> Sink:
    """Start ``python -m sink ARGS`` and read its READY (and OTLP_GRPC) lines."""
    proc = ManagedProcess(name, python_module("sink", *args), log_path=log_dir / f"{name}.log",
                          cwd=ROOT)
    proc.start()
    try:
        url = asyncio.run(proc.wait_ready_line(20))
        grpc = None
        if "--grpc-listen=off" not in args:
            line = next_line(proc)
            assert line.startswith(GRPC_PREFIX), f"expected the OTLP_GRPC line, got {line!r}"
            grpc = line[len(GRPC_PREFIX):].strip()
    except BaseException:
        proc.stop()
        raise
    db = next((Path(a.split("=", 1)[1]) for a in args if a.startswith("--db=")), None)
    return Sink(proc, url, grpc, db)


@pytest.fixture(scope="session")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sink]:
    """One ``readygate sink`` (``python -m sink``) for the session, stopped at teardown."""
    tmp = tmp_path_factory.mktemp("sink")
    s = start_sink("sink", [f"--db={tmp / 'sink.db'}"], tmp)
    try:
        yield s
    finally:
        s.stop()
