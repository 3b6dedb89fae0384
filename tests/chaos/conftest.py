"""Fixtures: a small real upstream (in-process uvicorn) and real fault proxy processes."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from chaos.client import FaultProxyClient
from core.procs import ManagedProcess, ProcessSet, start_python_service
from core.serve import socket_url

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
PROXY_SEED = "20240601"


async def _echo(request: Request) -> Response:
    body = await request.body()
    resp = JSONResponse({
        "method": request.method,
        "path": request.url.path,
        "query": request.url.query,
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.headers.raw],
        "body": body.decode("utf-8", "replace"),
    }, headers={"x-upstream": "yes"})
    # Two Set-Cookie headers: the proxy must keep duplicates, not fold them.
    resp.raw_headers.append((b"set-cookie", b"a=1; Path=/"))
    resp.raw_headers.append((b"set-cookie", b"b=2; Path=/"))
    return resp


async def _status(request: Request) -> Response:
    return Response(b"status", status_code=int(request.path_params["code"]))


async def _upload(request: Request) -> Response:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
    return JSONResponse({"bytes": size, "sha256": digest.hexdigest()})


async def _download(request: Request) -> Response:
    size = int(request.query_params["n"])

    async def chunks() -> AsyncIterator[bytes]:
        sent = 0
        while sent < size:
            part = min(65536, size - sent)
            yield b"x" * part
            sent += part

    return StreamingResponse(chunks(), media_type="application/octet-stream")


def upstream_app() -> Starlette:
    """The stand-in for the service behind the proxy (storage, in the demo)."""
    return Starlette(routes=[
        Route("/status/{code:int}", _status, methods=ALL_METHODS),
        Route("/upload", _upload, methods=["POST", "PUT"]),
        Route("/download", _download, methods=["GET"]),
        Route("/{path:path}", _echo, methods=ALL_METHODS),
    ])


def _nodelay_socket() -> socket.socket:
    """A listening loopback socket created with proto=IPPROTO_TCP.

    asyncio sets TCP_NODELAY on accepted connections only when the listening socket's
    proto is IPPROTO_TCP; with proto 0 every keep-alive response waits ~40 ms on Nagle
    plus delayed ACK.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


class ThreadServer:
    """uvicorn serving an app on a self-bound loopback socket in a background thread."""

    def __init__(self, app: Starlette) -> None:
        self.sock = _nodelay_socket()
        self.url = socket_url(self.sock)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                                    timeout_graceful_shutdown=1))
        self.thread = threading.Thread(target=self._run, name="upstream", daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("upstream test server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def upstream() -> Iterator[str]:
    """URL of a running upstream test service."""
    server = ThreadServer(upstream_app())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (the port was bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def start_proxy(procs: ProcessSet, log_dir: Path, upstream: str, *extra: str,
                      name: str = "fault-proxy") -> ManagedProcess:
    """Start ``python -m chaos.proxy`` as a real process and wait for READY."""
    args = ["--upstream", upstream, "--seed", PROXY_SEED, *extra]
    return await start_python_service(procs, name, "chaos.proxy", args, log_dir=log_dir)


@pytest.fixture(scope="session")
def proxy_procs() -> Iterator[ProcessSet]:
    procs = ProcessSet()
    try:
        yield procs
    finally:
        started = list(procs.procs)
        procs.stop_all()
        leftovers = [p.name for p in started if p.alive()]
        assert not leftovers, f"still running after teardown: {leftovers}"


@pytest.fixture(scope="session")
def proxy(proxy_procs: ProcessSet, upstream: str,
          tmp_path_factory: pytest.TempPathFactory) -> ManagedProcess:
    """The fault proxy in front of the upstream, with a max TTL of 60 s."""
    return asyncio.run(start_proxy(proxy_procs, tmp_path_factory.mktemp("proxy"), upstream,
                                   "--max-ttl", "60"))


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
        yield client


@pytest.fixture
async def faults(proxy: ManagedProcess, http: httpx.AsyncClient
                 ) -> AsyncIterator[FaultProxyClient]:
    """A control client for the shared proxy; every test starts and ends with no faults."""
    assert proxy.url is not None
    client = FaultProxyClient(proxy.url, http)
    await client.clear()
    yield client
    await client.clear()
