"""Fixtures for scenario, drill and load tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from core.procs import ManagedProcess, ProcessSet
from tests.chaos.conftest import ThreadServer, start_proxy, upstream_app


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedProcess]:
    """A fault proxy in front of an echo upstream, started by the test (not by readygate)."""
    server = ThreadServer(upstream_app())
    server.start()
    procs = ProcessSet()
    try:
        yield asyncio.run(start_proxy(procs, tmp_path_factory.mktemp("proxy"), server.url))
    finally:
        procs.stop_all()
        server.stop()
